"""The CIFAR-10 loader on small archives made here: the official pickle format and image-folder trees."""

from __future__ import annotations

import hashlib
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from resclaims.datasets import DataError, DataUnavailable, cifar10
from resclaims.datasets.download import DownloadError

ROWS = 3  # images per official batch in the generated archives


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    """Every test gets its own empty download cache (decoded arrays land there)."""
    path = tmp_path / "cache"
    monkeypatch.setenv("RESCLAIMS_CACHE", str(path))
    return path


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def add_file(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    archive.addfile(info, io.BytesIO(data))


def official_archive(path: Path, rng: np.random.Generator, drop: str | None = None) -> dict[str, np.ndarray]:
    """A cifar-10-python.tar.gz with ROWS rows per batch; returns the images it holds (N, 32, 32, 3)."""
    batches = {f"data_batch_{i}": i for i in range(1, 6)} | {"test_batch": 6}
    images, labels = {"train": [], "test": []}, {"train": [], "test": []}
    with tarfile.open(path, "w:gz") as archive:
        add_file(archive, "cifar-10-batches-py/batches.meta", pickle.dumps({b"label_names": []}))
        for name in batches:
            x = rng.integers(0, 256, (ROWS, 32, 32, 3), dtype=np.uint8)
            y = rng.integers(0, 10, ROWS).tolist()
            rows = x.transpose(0, 3, 1, 2).reshape(ROWS, 3072)  # 1,024 red, 1,024 green, 1,024 blue, row-major
            split = "test" if name == "test_batch" else "train"
            images[split].append(x), labels[split].append(y)
            if name != drop:
                add_file(archive, f"cifar-10-batches-py/{name}", pickle.dumps({b"data": rows, b"labels": y}))
    return {
        "x_train": np.concatenate(images["train"]), "y_train": np.concatenate(labels["train"]),
        "x_test": np.concatenate(images["test"]), "y_test": np.concatenate(labels["test"]),
    }  # fmt: skip


def image_tree(root: Path, rng: np.random.Generator, fmt: str = "png", per_class: int = 2) -> dict[str, np.ndarray]:
    """{train,test}/<class>/NNNN.<fmt> for every class; returns the pixels written, in class then file order."""
    out = {}
    for split in ("train", "test"):
        xs, ys = [], []
        for label, name in enumerate(cifar10.CLASSES):
            (root / split / name).mkdir(parents=True)
            for i in range(per_class):  # smooth images (a colour and a ramp), which JPEG keeps close
                ramp = np.arange(32)[:, None, None] * rng.integers(-3, 4, 3)
                x = np.clip(rng.integers(60, 196, 3) + ramp + np.zeros((32, 32, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(x).save(root / split / name / f"{i:04d}.{fmt}", quality=95)
                xs.append(x), ys.append(label)
        out[f"x_{split}"], out[f"y_{split}"] = np.stack(xs), np.array(ys)
    return out


def tar_tree(root: Path, dest: Path, prefix: str = "cifar10-images") -> Path:
    with tarfile.open(dest, "w:gz") as archive:
        archive.add(root, arcname=prefix)
    return dest


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


# -- the official archive ---------------------------------------------------------------
def test_official_archive_is_read_row_major_rgb(tmp_path):
    path = tmp_path / cifar10.OFFICIAL_FILE
    expected = official_archive(path, np.random.default_rng(0))
    data = cifar10.read_official(path, md5=md5(path))
    for key, value in expected.items():
        np.testing.assert_array_equal(getattr(data, key), value, err_msg=key)
    assert data.x_train.shape == (5 * ROWS, 32, 32, 3) and data.x_train.dtype == np.uint8
    assert data.official_order and data.name == "CIFAR-10"
    assert data.provenance() == {"title": "CIFAR-10", "source": str(path), "md5": md5(path)}


def test_official_archive_with_wrong_checksum_names_the_file(tmp_path):
    path = tmp_path / cifar10.OFFICIAL_FILE
    official_archive(path, np.random.default_rng(0))
    with pytest.raises(DataError, match=f"{path}.*md5.*does not match.*fetch-data cifar10"):
        cifar10.read_official(path, md5="0" * 32)


def test_truncated_official_archive_is_a_data_error(tmp_path):
    path = tmp_path / cifar10.OFFICIAL_FILE
    official_archive(path, np.random.default_rng(0))
    truncate(path)
    with pytest.raises(DataError, match=str(path)):
        cifar10.read_official(path, md5=md5(path))  # the right digest of the broken file: decoding must catch it


def test_official_archive_missing_a_batch_is_a_data_error(tmp_path):
    path = tmp_path / cifar10.OFFICIAL_FILE
    official_archive(path, np.random.default_rng(0), drop="data_batch_3")
    with pytest.raises(DataError, match="data_batch_3 missing"):
        cifar10.read_official(path, md5=md5(path))


# -- image-folder trees -----------------------------------------------------------------
def test_png_tree_is_read_exactly_in_class_order(tmp_path):
    expected = image_tree(tmp_path / "tree", np.random.default_rng(1))
    data = cifar10.read_folder(tmp_path / "tree")
    for key, value in expected.items():
        np.testing.assert_array_equal(getattr(data, key), value, err_msg=key)
    assert not data.official_order and data.algorithm == "tree"


def test_jpeg_tree_inside_tar_gz_matches_the_folder(tmp_path):
    expected = image_tree(tmp_path / "tree", np.random.default_rng(2), fmt="jpg")
    archive = tar_tree(tmp_path / "tree", tmp_path / "images.tar.gz")
    from_folder = cifar10.read_folder(tmp_path / "tree")
    from_archive = cifar10.read_folder(archive, sha256=hashlib.sha256(archive.read_bytes()).hexdigest(), name="copy")
    for key in expected:
        np.testing.assert_array_equal(getattr(from_archive, key), getattr(from_folder, key), err_msg=key)
    np.testing.assert_array_equal(from_archive.y_train, expected["y_train"])
    error = np.abs(from_archive.x_train.astype(int) - expected["x_train"]).mean()
    assert error < 4  # lossy JPEG, but the same images
    assert from_archive.name == "copy" and from_archive.algorithm == "sha256"


def test_tree_archive_with_wrong_checksum_names_the_file(tmp_path):
    image_tree(tmp_path / "tree", np.random.default_rng(3))
    archive = tar_tree(tmp_path / "tree", tmp_path / "images.tar.gz")
    with pytest.raises(DataError, match=f"{archive}.*sha256.*does not match"):
        cifar10.read_folder(archive, sha256="f" * 64)


def test_truncated_tree_archive_is_a_data_error(tmp_path):
    image_tree(tmp_path / "tree", np.random.default_rng(4))
    archive = tar_tree(tmp_path / "tree", tmp_path / "images.tar.gz")
    truncate(archive)
    with pytest.raises(DataError, match=str(archive)):
        cifar10.read_folder(archive)


def test_unknown_class_and_wrong_size_are_data_errors(tmp_path):
    image_tree(tmp_path / "a", np.random.default_rng(5), per_class=1)
    (tmp_path / "a" / "train" / "unicorn").mkdir()
    Image.new("RGB", (32, 32)).save(tmp_path / "a" / "train" / "unicorn" / "0.png")
    with pytest.raises(DataError, match="unknown class folder 'unicorn'"):
        cifar10.read_folder(tmp_path / "a")
    image_tree(tmp_path / "b", np.random.default_rng(5), per_class=1)
    Image.new("RGB", (64, 48)).save(tmp_path / "b" / "test" / "cat" / "0000.png")
    with pytest.raises(DataError, match="64x48"):
        cifar10.read_folder(tmp_path / "b")


def test_tree_without_a_test_split_is_a_data_error(tmp_path):
    image_tree(tmp_path / "tree", np.random.default_rng(6), per_class=1)
    for file in (tmp_path / "tree" / "test").rglob("*.png"):
        file.unlink()
    with pytest.raises(DataError, match="no images under test"):
        cifar10.read_folder(tmp_path / "tree")


# -- the decoded-array cache ------------------------------------------------------------
def test_decoded_arrays_are_cached_by_checksum(tmp_path, cache, monkeypatch):
    image_tree(tmp_path / "tree", np.random.default_rng(7), fmt="jpg", per_class=1)
    archive = tar_tree(tmp_path / "tree", tmp_path / "images.tar.gz")
    first = cifar10.read_folder(archive)
    assert len(list(cache.glob("cifar10-sha256-*.npz"))) == 1

    def no_decoding(*args):
        raise AssertionError("decoded again despite the cache")

    monkeypatch.setattr(cifar10, "_decode_tree", no_decoding)
    second = cifar10.read_folder(archive)
    np.testing.assert_array_equal(first.x_train, second.x_train)
    np.testing.assert_array_equal(first.y_test, second.y_test)


def test_a_damaged_cache_entry_is_rebuilt(tmp_path, cache):
    path = tmp_path / cifar10.OFFICIAL_FILE
    expected = official_archive(path, np.random.default_rng(8))
    cifar10.read_official(path, md5=md5(path))
    (entry,) = cache.glob("cifar10-*.npz")
    entry.write_bytes(b"not an npz file")
    np.testing.assert_array_equal(cifar10.read_official(path, md5=md5(path)).x_test, expected["x_test"])


# -- where load() looks, and what happens when nothing is there ---------------------------
def test_load_prefers_the_official_archive_then_the_jpeg_copy_then_a_folder(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(cifar10, "read_official", lambda path: calls.append(("official", path.name)) or "official")
    monkeypatch.setattr(cifar10, "read_folder", lambda path, **kw: calls.append(("folder", path.name, kw)) or "folder")
    (tmp_path / "cifar10").mkdir()
    assert cifar10.load(tmp_path, download_missing=False) == "folder"
    (tmp_path / cifar10.JPEG_COPY_FILE).write_bytes(b"")
    cifar10.load(tmp_path, download_missing=False)
    assert calls[-1] == ("folder", cifar10.JPEG_COPY_FILE, {"sha256": cifar10.JPEG_COPY_SHA256, "name": "CIFAR-10 (JPEG q75 copy)"})
    (tmp_path / cifar10.OFFICIAL_FILE).write_bytes(b"")
    assert cifar10.load(tmp_path, download_missing=False) == "official"


def test_load_finds_the_official_archive_in_the_cache(tmp_path, cache):
    cache.mkdir()
    path = cache / cifar10.OFFICIAL_FILE
    official_archive(path, np.random.default_rng(9))
    with pytest.raises(DataError, match="does not match"):  # found in the cache, checked against the real MD5
        cifar10.load(None, download_missing=False)


def test_missing_data_offline_is_unavailable_with_instructions(tmp_path, monkeypatch):
    with pytest.raises(DataUnavailable) as missing:
        cifar10.load(tmp_path, download_missing=False)
    message = str(missing.value)
    assert "--data-dir" in message and "RESCLAIMS_DATA" in message and "fetch-data cifar10" in message

    def offline(*args, **kwargs):
        raise DownloadError("https://www.cs.toronto.edu/...: download failed (no network)")

    monkeypatch.setattr(cifar10, "download", offline)
    with pytest.raises(DataUnavailable, match="download failed.*--data-dir"):
        cifar10.load(tmp_path)


def test_fetch_downloads_the_official_archive_with_its_md5(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(cifar10, "download", lambda url, dest, **kw: calls.append((url, dest, kw)) or dest)
    assert cifar10.fetch(tmp_path) == tmp_path / "cifar-10-python.tar.gz"
    assert calls == [(cifar10.OFFICIAL_URL, tmp_path / "cifar-10-python.tar.gz",
                      {"checksum": "c58f30108f718f92721af3b95e74349a", "algorithm": "md5"})]  # fmt: skip


def test_fetcher_is_registered_for_the_command_line():
    from resclaims.datasets import FETCHERS

    module, function = FETCHERS["cifar10"].split(":")
    assert module == cifar10.__name__ and callable(getattr(cifar10, function))
