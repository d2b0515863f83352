"""Stop signals of a training run: SIGINT/SIGTERM set a flag; the loop checkpoints at the next step and exits."""

from __future__ import annotations

import signal

from srpipe.errors import SrpipeError


class Interrupted(SrpipeError):
    """Training stopped by SIGINT/SIGTERM after saving a checkpoint (exit code 130)."""

    exit_code = 130


class StopFlag:
    """Turns SIGINT/SIGTERM into a flag the training loop polls (handlers restored on exit)."""

    def __init__(self):
        self.signal: int | None = None
        self._old: dict[int, object] = {}

    def __enter__(self):
        for s in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[s] = signal.signal(s, self._handle)
            except ValueError:  # not the main thread (e.g. inside a test runner thread): no handler
                pass
        return self

    def _handle(self, signum, frame):
        if self.signal is not None:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.signal = signum

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)

    def __bool__(self) -> bool:
        return self.signal is not None
