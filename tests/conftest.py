"""Fixtures that the library's own tests share."""

from __future__ import annotations

import pytest

from resclaims.datasets.cifar10 import Cifar10
from resclaims.kernels.cifar.timing import cpu_threads


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
