"""CIFAR-10, read from the official archive or from an image-folder tree, decoded once and cached.

Two formats are read:

- the official ``cifar-10-python.tar.gz`` (MD5 ``c58f30108f718f92721af3b95e74349a``):
  pickled batches ``cifar-10-batches-py/data_batch_1..5`` and ``test_batch``, each
  row 3,072 uint8 values (1,024 red, 1,024 green, 1,024 blue, row-major), read
  straight from the archive;
- an image-folder tree ``{train,test}/<class>/*.{png,jpg,jpeg}`` with the ten
  CIFAR-10 class names, as a folder or inside a ``.tar.gz``. The JPEG copy
  ``cifar10-jpeg.tar.gz`` that the project's CI uses is one; it is not bit-exact
  CIFAR-10 (re-encoded at JPEG quality 75) and every report names it
  ``"CIFAR-10 (JPEG q75 copy)"``.

:func:`load` looks in the user's data directory, then in the download cache, and
downloads the official archive into the cache when neither has a copy. Decoded
images are cached as uint8 arrays in the download cache, keyed by the checksum
of what they were decoded from, so the 60,000 JPEG decodes (about 15 s) happen
once. Image-folder trees lose the official order of the training set (files are
grouped by class); :attr:`Cifar10.official_order` says which order a copy has.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import re
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from resclaims.datasets import DataError, DataUnavailable, cache_dir, unavailable_message
from resclaims.datasets.download import DownloadError, file_digest
from resclaims.datasets.download import fetch as download

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
OFFICIAL_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
OFFICIAL_FILE = "cifar-10-python.tar.gz"
OFFICIAL_MD5 = "c58f30108f718f92721af3b95e74349a"
OFFICIAL_NAME = "CIFAR-10"
JPEG_COPY_FILE = "cifar10-jpeg.tar.gz"
JPEG_COPY_SHA256 = "00a78acaf3d7c27307ba029958650e48cba76f3704c03e4cd1dd6bf77963ed47"
JPEG_COPY_NAME = "CIFAR-10 (JPEG q75 copy)"
FOLDER_DIR = "cifar10"  # an image-folder tree: <data dir>/cifar10/{train,test}/<class>/
FOLDER_NAME = "CIFAR-10 (image folder)"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_TREE_MEMBER = re.compile(r"^(?:.*/)?(train|test)/([^/]+)/([^/]+)$")


@dataclass(frozen=True)
class Cifar10:
    """The data set as uint8 arrays, with where it came from."""

    x_train: np.ndarray  # (50000, 32, 32, 3) uint8, HWC
    y_train: np.ndarray  # (50000,) int64 in 0..9
    x_test: np.ndarray  # (10000, 32, 32, 3) uint8
    y_test: np.ndarray  # (10000,) int64
    name: str  # what reports call it: "CIFAR-10", "CIFAR-10 (JPEG q75 copy)", ...
    source: str  # the file or folder it was read from
    algorithm: str  # checksum algorithm of `source`: md5, sha256, or "tree" for a folder's listing
    checksum: str  # hex digest of `source`
    official_order: bool  # the training set is in the official batch order (folders are class-sorted)

    def provenance(self) -> dict[str, str]:
        """What ``report.add_data`` records: the title reports use, the source and its checksum."""
        return {"title": self.name, "source": self.source, self.algorithm: self.checksum}

    @classmethod
    def synthetic(cls, n_train: int = 200, n_test: int = 60, seed: int = 0) -> "Cifar10":
        """Noise images whose brightness depends on the class, so that models learn: tests of training code."""
        rng = np.random.default_rng(seed)

        def split(n: int) -> tuple[np.ndarray, np.ndarray]:
            y = rng.integers(0, 10, n)
            return np.clip(rng.normal(25 * y[:, None, None, None] + 10, 40, (n, 32, 32, 3)), 0, 255).astype(np.uint8), y

        (x_train, y_train), (x_test, y_test) = split(n_train), split(n_test)
        return cls(x_train, y_train, x_test, y_test, "synthetic", "memory", "none", "", official_order=False)


# -- readers ------------------------------------------------------------------
def read_official(path: Path, md5: str = OFFICIAL_MD5) -> Cifar10:
    """Read the official pickled archive at ``path``, verified against ``md5`` first."""
    path = Path(path)
    _verify(path, md5, "md5")
    arrays = _cached(f"md5-{md5}", lambda: _decode_official(path))
    return Cifar10(**arrays, name=OFFICIAL_NAME, source=str(path), algorithm="md5", checksum=md5, official_order=True)


def read_folder(path: Path, sha256: str | None = None, name: str = FOLDER_NAME) -> Cifar10:
    """Read an image-folder tree at ``path``: a folder, or a ``.tar.gz`` holding one.

    An archive is verified against ``sha256`` when it is given and cached under
    its digest; a folder is cached under a digest of its file listing (paths,
    sizes and modification times).
    """
    path = Path(path)
    if path.is_dir():
        algorithm, checksum = "tree", _listing_digest(path)
        decode = lambda: _decode_tree(_folder_files(path), path)  # noqa: E731
    elif path.is_file():
        algorithm = "sha256"
        checksum = _verify(path, sha256, "sha256") if sha256 else file_digest(path, "sha256")
        decode = lambda: _decode_tree(_archive_files(path), path)  # noqa: E731
    else:
        raise DataError(f"{path}: no such file or folder; point --data-dir at the folder that holds CIFAR-10")
    arrays = _cached(f"{algorithm}-{checksum}", decode)
    return Cifar10(**arrays, name=name, source=str(path), algorithm=algorithm, checksum=checksum, official_order=False)


def load(data_dir: Path | None = None, *, download_missing: bool = True) -> Cifar10:
    """CIFAR-10 from the first place that has it.

    Looked for, in order, in ``data_dir`` then the download cache: the official
    archive ``cifar-10-python.tar.gz``, the JPEG copy ``cifar10-jpeg.tar.gz``, a
    folder tree ``cifar10/``. With none found, the official archive is downloaded
    into the cache (unless ``download_missing`` is false); if that fails,
    :class:`DataUnavailable` says how to provide the data.
    """
    places = [Path(p) for p in (data_dir, cache_dir()) if p is not None]
    for place in places:
        if (place / OFFICIAL_FILE).is_file():
            return read_official(place / OFFICIAL_FILE)
        if (place / JPEG_COPY_FILE).is_file():
            return read_folder(place / JPEG_COPY_FILE, sha256=JPEG_COPY_SHA256, name=JPEG_COPY_NAME)
        if (place / FOLDER_DIR).is_dir():
            return read_folder(place / FOLDER_DIR)
    looked = ", ".join(str(p) for p in places)
    if not download_missing:
        raise DataUnavailable(unavailable_message("cifar10", f"looked in {looked}"))
    try:
        return read_official(fetch(cache_dir()))
    except DownloadError as error:
        raise DataUnavailable(unavailable_message("cifar10", f"looked in {looked}; download failed: {error}")) from error


def fetch(directory: Path) -> Path:
    """Download the official archive into ``directory`` (progress bar, MD5-verified, atomic)."""
    return download(OFFICIAL_URL, Path(directory) / OFFICIAL_FILE, checksum=OFFICIAL_MD5, algorithm="md5")


# -- decoding -----------------------------------------------------------------
def _decode_official(path: Path) -> dict[str, np.ndarray]:
    """Unpickle the six batches from the archive (the checksum was verified by the caller)."""
    wanted = {f"data_batch_{i}" for i in range(1, 6)} | {"test_batch"}
    batches: dict[str, dict] = {}
    try:
        with tarfile.open(path, "r:gz") as archive:
            for member in archive:
                name = member.name.rsplit("/", 1)[-1]
                if member.isfile() and name in wanted:
                    batches[name] = pickle.load(archive.extractfile(member), encoding="bytes")
    except (tarfile.TarError, EOFError, OSError, zlib.error, pickle.UnpicklingError) as error:
        raise DataError(f"{path}: unreadable CIFAR-10 archive ({error}); delete it and run `python -m resclaims fetch-data cifar10`") from error
    missing = sorted(wanted - batches.keys())
    if missing:
        raise DataError(f"{path}: not the official CIFAR-10 archive, {', '.join(missing)} missing from cifar-10-batches-py/")

    def rows(names: list[str]) -> tuple[np.ndarray, np.ndarray]:
        data = np.concatenate([np.asarray(batches[n][b"data"], dtype=np.uint8) for n in names])  # (N, 3072)
        labels = np.concatenate([np.asarray(batches[n][b"labels"], dtype=np.int64) for n in names])
        return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy(), labels  # (N, 32, 32, 3)

    x_train, y_train = rows([f"data_batch_{i}" for i in range(1, 6)])
    x_test, y_test = rows(["test_batch"])
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def _folder_files(root: Path):
    """(relative path, bytes reader) for every file under a folder tree."""
    for file in sorted(root.rglob("*")):
        if file.is_file():
            yield file.relative_to(root).as_posix(), file.read_bytes


def _archive_files(path: Path):
    """(member name, bytes reader) for every file in a ``.tar.gz``, in archive order."""
    try:
        with tarfile.open(path, "r:gz") as archive:
            for member in archive:
                if member.isfile():
                    data = archive.extractfile(member).read()
                    yield member.name, lambda data=data: data
    except (tarfile.TarError, EOFError, OSError, zlib.error) as error:
        raise DataError(f"{path}: unreadable archive ({error}); replace it with a complete copy") from error


def _decode_tree(files, source: Path) -> dict[str, np.ndarray]:
    """Decode ``{train,test}/<class>/<image>`` files into arrays, sorted by split, class and file name."""
    found: dict[str, list[tuple[int, str, bytes]]] = {"train": [], "test": []}
    for name, read in files:
        match = _TREE_MEMBER.match(name)
        if not match or not name.lower().endswith(IMAGE_SUFFIXES):
            continue
        split, label, file = match.groups()
        if label not in CLASSES:
            raise DataError(f"{source}: {name}: unknown class folder {label!r}; expected one of {', '.join(CLASSES)}")
        found[split].append((CLASSES.index(label), file, read()))
    arrays = {}
    for split, items in found.items():
        if not items:
            raise DataError(f"{source}: no images under {split}/<class>/; expected a {{train,test}}/<class>/*.png|jpg tree")
        items.sort(key=lambda item: (item[0], item[1]))
        arrays[f"x_{split}"] = np.stack([_decode_image(data, f"{source}: {split}/{CLASSES[y]}/{f}") for y, f, data in items])
        arrays[f"y_{split}"] = np.array([y for y, _, _ in items], dtype=np.int64)
    return arrays


def _decode_image(data: bytes, where: str) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data)) as image:
            pixels = np.asarray(image.convert("RGB"), dtype=np.uint8)  # (32, 32, 3)
    except (UnidentifiedImageError, OSError) as error:
        raise DataError(f"{where}: not a readable image ({error})") from error
    if pixels.shape != (32, 32, 3):
        raise DataError(f"{where}: image is {pixels.shape[1]}x{pixels.shape[0]}, CIFAR-10 images are 32x32")
    return pixels


# -- checksums and the decoded-array cache --------------------------------------
def _verify(path: Path, expected: str, algorithm: str) -> str:
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    actual = file_digest(path, algorithm)
    if actual != expected:
        raise DataError(
            f"{path}: {algorithm} {actual} does not match the expected {expected}; the file is corrupt or "
            "not the one expected: delete it and run `python -m resclaims fetch-data cifar10`"
        )
    return actual


def _listing_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for file in sorted(root.rglob("*")):
        if file.is_file():
            stat = file.stat()
            digest.update(f"{file.relative_to(root).as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _cached(key: str, decode) -> dict[str, np.ndarray]:
    """The decoded arrays for ``key``: from the cache, or decoded now and written atomically."""
    path = cache_dir() / f"cifar10-{key}.npz"
    if path.is_file():
        try:
            with np.load(path) as cached:
                return {k: cached[k] for k in ("x_train", "y_train", "x_test", "y_test")}
        except (OSError, ValueError, KeyError, zlib.error):
            path.unlink(missing_ok=True)  # a damaged cache entry is rebuilt below
    arrays = decode()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return arrays
