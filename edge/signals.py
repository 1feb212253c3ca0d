"""Stop signals that finish the outputs instead of losing them.

The first SIGINT or SIGTERM calls `on_stop` (the runner closes its source: capture stops, the
frames already queued are decoded and written, the video is finalised, COCO results saved), and
the command exits 128 + the signal number. A second signal interrupts at once (KeyboardInterrupt).
Handlers are installed by the commands, never on import. Installing one also matters as PID 1 in
a container, where a signal with the default disposition is ignored and `docker stop` ends in
SIGKILL.
"""

from __future__ import annotations

import signal
import threading
from typing import Any, Callable, Dict, Optional

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    def __init__(self, on_stop: Callable[[], None]) -> None:
        self.on_stop = on_stop
        self.received: Optional[int] = None
        self._previous: Dict[int, Any] = {}

    def _handle(self, signum: int, _frame: Any) -> None:
        if self.received is not None:
            raise KeyboardInterrupt
        self.received = signum
        self.on_stop()

    @property
    def name(self) -> str:
        return signal.Signals(self.received).name if self.received is not None else ""

    @property
    def exit_code(self) -> int:
        return 128 + int(self.received) if self.received is not None else 0

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()
