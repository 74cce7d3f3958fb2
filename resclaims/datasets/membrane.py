"""The ISBI 2012 membrane labels: the 30 binary 512x512 targets of source 000.

Source 000 trains a ResNet block to reproduce "the cell membrane dataset used in
the U-net paper", read as ``np.asarray(Image.open(path), dtype=np.float32) / 255``.
These are the 30 label PNGs of the ``zhixuhao/unet`` repository
(``data/membrane/train/label/{0..29}.png``, 8-bit grayscale, values 0 and 255).

Where they are looked for, in order:

1. ``<data dir>/membrane/train/label/`` (``--data-dir`` or ``RESCLAIMS_DATA``);
2. ``<cache>/membrane/train/label/`` (the download cache, see :func:`resclaims.datasets.cache_dir`);
3. downloaded into the cache from :data:`BASE_URL`.

Every file is checked against the pinned SHA-256 digests in :data:`SHA256`, in
the data dir as in the cache. A wrong or missing file in the data dir, an image
that does not decode, or one that is not binary raises
:class:`~resclaims.datasets.DataError` naming the file. No data and no network
raises :class:`~resclaims.datasets.DataUnavailable` (claims are skipped with its
message).
"""

from __future__ import annotations

import functools
import hashlib
import urllib.error
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from resclaims.datasets import DataError, DataUnavailable, cache_dir, unavailable_message
from resclaims.datasets.download import DownloadError, file_digest
from resclaims.datasets.download import fetch as download

NAME = "membrane"
LABELS = Path("membrane/train/label")  # layout under a data dir and under the cache
BASE_URL = "https://raw.githubusercontent.com/zhixuhao/unet/master/data/membrane/train/label/"

# SHA-256 of each label PNG of zhixuhao/unet@master, data/membrane/train/label/.
SHA256 = {
    "0.png": "13b67edd7607a1f284c09170c96a27d38422b0ffaf88024ea5b689acb5e1b4b0",
    "1.png": "cff60a00de2901e67165c91d7708d784e4c5bcc9d1c8c677922c905d63bbc3d1",
    "2.png": "a578af998c017f56763b81941c4dc612dde5731809b2cea0e8ebc37aecb84dbb",
    "3.png": "c8ae3b843fed02e09411a24c10850160922c331041b17c2674025f05a99b8834",
    "4.png": "a2f19c01b5d982a97923a0d29e64127a05e3f496731480ac9d9d302b5427f7ff",
    "5.png": "2dd5779118f6f4d87f88ec112f1cea20663b50acb8c748b0db1f23eda82b5118",
    "6.png": "2b0984e9f31fb41d4c5f4a754a3e080036b7321a0cbd9591a62010d20a574ce7",
    "7.png": "2ebc8c835999589bfd7d80d81f83d24e5c41138362b0faafef0f009e1ce82144",
    "8.png": "db979010ca4fbdb38c8b32d455aed0da90d598153f2a0046b63d02a6efa32b9e",
    "9.png": "8ee6c79adbb740595c4d61776e065e7164c00d52c7dd7562b5279041e7f3567b",
    "10.png": "b0156cc8186b0ee521927ac95645b406a42d27564607a6fea3a59c34add78f7c",
    "11.png": "e47b3aa0cfb3106476af1666e631d45bd16dbf2aff88260ee65d16e4134332db",
    "12.png": "85a7a899c0b72b81633ad122887ba5161d650385d7775a5b3074eb00131b3620",
    "13.png": "88549c22fd647312d6b37e17d33e90800d347d60ccb1156a8dde5e67394f9f3d",
    "14.png": "bcd775017eb4fdbdfe7ad6cc6420b2f16aa9d0576894d08370edcf564b46680a",
    "15.png": "59a854887b504ff00a5b4b93b2299bbc0bf0cbe54dea58d2b31969229b28b369",
    "16.png": "b34eb88cdc3313a6f4190f5753465df7f69d8f3c243a5c25427b1b99ecfe2499",
    "17.png": "4fa076cbeb744803d987dc46cf308dc3026408e7a5188838e30e25fe3ea67dbe",
    "18.png": "bd009dda57f204804732f592ed1d41ba18961d83c492413fe71548efa4a288d9",
    "19.png": "bf38407c55b6033c1677230228ecb100a11294aa74a7b92e5edfdc4abadcfef9",
    "20.png": "7af7296f2e892866669d4e4f9c0d4178987e6ec6e7d0751ec238d1bbe2da9c55",
    "21.png": "772c722acb2eac01769b53fa5037a3d62745e53102398bf9b2202df605cadda4",
    "22.png": "b19f5533ec24077a2395a085fe53af75dd350ef03798c4ff40ba9ebecb2ee0ad",
    "23.png": "2d8f1df5c9ee83e59eb2d709eb153b0570f12e726690f586154b01b0a88bb540",
    "24.png": "6ab02d922b5c937ecfe2a479be87a5d3e5ef950dc48da09d31f37b47d899ca9c",
    "25.png": "c5ea59aca7789dd507ac31c4a82bbd4c172f9e3544f8e040442c20d1dfa9e16d",
    "26.png": "b056fae9f358111b6c9e2494bdba645f206be581959b8d3763e97d62a65dd961",
    "27.png": "5be3823a57c82b632cead6eb09f438c6010a244dc0975f2a3e466f45d2c06840",
    "28.png": "c0b0e2a2b7aad46919d1afc980f7d5e39101fb07948ce65d9cac802d8b47682e",
    "29.png": "1e8839a97178914171defd6a97158f06fcac1fc3f0d45f2acdff9c49ab3fced9",
}


@dataclass(frozen=True)
class Membrane:
    """The label images and where they came from."""

    images: np.ndarray  # (30, 1, 512, 512) float32 in {0, 1}, read-only; 0 = black (membrane)
    folder: Path  # the folder the PNGs were read from
    source: str  # "data dir" or "download cache"
    sha256_of_sums: str  # digest of the pinned checksum list: names the data set version

    @property
    def checksum(self) -> str:
        """What the run cache keys runs on: the digest of the pinned checksum list."""
        return self.sha256_of_sums

    def provenance(self) -> dict[str, str]:
        """What ``report.add_data`` records: where the files were read from and the checksum list's digest."""
        return {"source": f"{self.source}: {self.folder}", "sha256_of_sums": self.sha256_of_sums,
                "origin": "zhixuhao/unet, data/membrane/train/label/{0..29}.png"}


def sums_digest(checksums: dict[str, str] = SHA256) -> str:
    """SHA-256 of the checksum list written as ``sha256sum`` writes it (``<digest>  label/<name>``)."""
    text = "".join(f"{digest}  label/{name}\n" for name, digest in checksums.items())
    return hashlib.sha256(text.encode()).hexdigest()


def verify(folder: Path, checksums: dict[str, str] = SHA256) -> None:
    """Check that ``folder`` holds every pinned file with its pinned digest."""
    for name, digest in checksums.items():
        path = folder / name
        if not path.is_file():
            raise DataError(f"{path}: missing; {folder} must hold the {len(checksums)} label PNGs of zhixuhao/unet")
        if file_digest(path) != digest:
            raise DataError(
                f"{path}: SHA-256 {file_digest(path)} does not match the pinned {digest}; "
                "replace it with the file from zhixuhao/unet (data/membrane/train/label/)"
            )


def fetch(cache: Path, *, base_url: str = BASE_URL, checksums: dict[str, str] = SHA256, timeout: float = 30.0) -> Path:
    """Download the label PNGs into ``cache/membrane/train/label`` (verified, atomic); return the folder.

    Files already there with the right digest are kept. This is the ``FETCHERS``
    entry behind ``python -m resclaims fetch-data membrane``.
    """
    folder = Path(cache) / LABELS
    for name, digest in tqdm(checksums.items(), desc=NAME, unit="file", leave=False):
        download(base_url + name, folder / name, checksum=digest, progress=False, timeout=timeout)
    return folder


def _unreachable(error: DownloadError) -> bool:
    """True when the server could not be reached at all (offline), not when a transfer went wrong."""
    cause = error.__cause__
    return isinstance(cause, urllib.error.URLError) and not isinstance(cause, urllib.error.HTTPError)


def locate(
    data_dir: Path | None,
    *,
    cache: Path | None = None,
    base_url: str = BASE_URL,
    checksums: dict[str, str] = SHA256,
) -> tuple[Path, str]:
    """The verified label folder and its kind ("data dir" or "download cache"), downloading if needed."""
    if data_dir is not None and (Path(data_dir) / LABELS).is_dir():
        folder = Path(data_dir) / LABELS
        verify(folder, checksums)
        return folder, "data dir"
    cache = cache_dir() if cache is None else Path(cache)
    try:
        return fetch(cache, base_url=base_url, checksums=checksums), "download cache"
    except DownloadError as error:
        if _unreachable(error):
            where = f"no {LABELS} under " + (f"{data_dir} or " if data_dir else "") + f"{cache}, and {base_url} is unreachable"
            raise DataUnavailable(unavailable_message(NAME, where)) from error
        raise


def decode(path: Path) -> np.ndarray:
    """One label PNG as its raw 8-bit pixels, shape (H, W); DataError if it is not a grayscale image."""
    try:
        with Image.open(path) as image:
            if image.mode != "L":
                raise DataError(f"{path}: PIL mode {image.mode}, expected 8-bit grayscale (L); is this a membrane label?")
            return np.asarray(image, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise DataError(f"{path}: cannot decode as PNG ({error}); delete it and fetch the data again") from error


@functools.lru_cache(maxsize=4)
def _decoded(folder: Path, names: tuple[str, ...]) -> np.ndarray:
    """Decode ``names`` once per process: (N, 1, H, W) float32 in {0, 1}, read-only."""
    pixels = []
    for name in names:
        raw = decode(folder / name)
        odd = np.setdiff1d(np.unique(raw), [0, 255])
        if odd.size:
            raise DataError(f"{folder / name}: not binary, has pixel values {odd[:5].tolist()} besides 0 and 255")
        if pixels and raw.shape != pixels[0].shape:
            raise DataError(f"{folder / name}: shape {raw.shape}, but {folder / names[0]} has {pixels[0].shape}")
        pixels.append(raw)
    images = (np.stack(pixels).astype(np.float32) / 255)[:, None]  # as the source: float32 / 255
    images.flags.writeable = False
    return images


def load(data_dir: Path | None, **where) -> Membrane:
    """Find (or fetch), verify and decode the labels; ``where`` goes to :func:`locate`."""
    checksums = where.get("checksums", SHA256)
    folder, source = locate(data_dir, **where)
    return Membrane(_decoded(folder.resolve(), tuple(checksums)), folder, source, sums_digest(checksums))
