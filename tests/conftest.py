"""Fixtures that the library's own tests share."""

from __future__ import annotations

import shutil

import pytest

from resclaims.datasets.cifar10 import Cifar10
from resclaims.kernels.cifar.timing import cpu_threads


def pytest_collection_modifyitems(config, items):
    """An ``exhaustive`` test (a validation sweep of most of an hour) runs only when the marker expression names it
    (``pytest tests -m exhaustive``): ``pytest tests``, the README's commands and CI leave it out, and say so."""
    if "exhaustive" in (config.option.markexpr or ""):
        return
    skip = pytest.mark.skip(reason="exhaustive (most of an hour): run it with pytest tests -m exhaustive")
    for item in items:
        if item.get_closest_marker("exhaustive"):
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def empty_store(tmp_path_factory, monkeypatch):
    """Every test reads an empty published run store, not the repository's (whose runs grow session by session):
    its own sessions, plans and fills included (they inherit RESCLAIMS_STORE). The spot check reads the
    repository's store by its path."""
    monkeypatch.setenv("RESCLAIMS_STORE", str(tmp_path_factory.mktemp("store")))


@pytest.fixture
def one_thread():
    """Tiny models run fastest on one thread, and a shared CPU cannot stall them (or change their sums)."""
    with cpu_threads(1):
        yield


@pytest.fixture(scope="module")
def cifar_data() -> Cifar10:
    """200 training and 60 test images of noise with a class-dependent brightness, so that models learn."""
    return Cifar10.synthetic()


@pytest.fixture(scope="session")
def _validation_files(tmp_path_factory) -> list:
    """The validation tables (the fixed cells and the sequential ones), computed once per test process: they depend
    on the code alone, and a session's report takes half a minute to compute them."""
    from resclaims.report import validation, validation_sequential

    folder = tmp_path_factory.mktemp("validation-tables")
    validation.cached(folder), validation_sequential.cached(folder)
    return sorted(folder.glob("validation-*.json"))


@pytest.fixture
def validation_tables(tmp_path, _validation_files):
    """``tmp_path / "cache"``, the run cache of the sessions a test runs, holding the validation tables already (a
    session reads them by the code's fingerprint, as from any run cache, instead of computing them again)."""
    cache = tmp_path / "cache"
    cache.mkdir(exist_ok=True)
    for path in _validation_files:
        shutil.copy(path, cache / path.name)
    return cache
