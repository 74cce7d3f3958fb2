"""Training progress: a bar per claim and arm in a terminal, one line per training in logs (CI)."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator

import pytest
from tqdm.auto import tqdm


class Progress:
    """Training progress: a bar in a terminal, one line per training in logs (CI)."""

    def __init__(self, config: pytest.Config) -> None:
        self.capture = config.pluginmanager.getplugin("capturemanager")
        self.terminal = config.pluginmanager.getplugin("terminalreporter")
        self.interactive = sys.__stderr__ is not None and sys.__stderr__.isatty() and not os.environ.get("CI")

    @contextlib.contextmanager
    def track(self, claim: str, condition: str, seeds: int, epochs: int) -> Iterator[Callable[[int], None]]:
        """Yields ``on_epoch`` for a kernel; prints a line when training happened."""
        bar, trained, start = None, [], time.perf_counter()

        def on_epoch(epoch: int) -> None:
            nonlocal bar
            with self._uncaptured():
                if bar is None:
                    bar = tqdm(total=epochs, desc=f"{claim}: {condition}, {seeds} seeds", unit="epoch",
                               leave=False, disable=not self.interactive, file=sys.__stderr__)
                bar.update(1)
            trained.append(epoch)

        yield on_epoch
        if bar is not None:
            with self._uncaptured():
                bar.close()
        if trained and self.terminal is not None:
            with self._uncaptured():
                self.terminal.write_line(f"resclaims: {claim}: trained {condition}, {seeds} seeds x {epochs} epochs "
                                         f"in {time.perf_counter() - start:.1f} s")

    def _uncaptured(self):
        return self.capture.global_and_fixture_disabled() if self.capture else contextlib.nullcontext()
