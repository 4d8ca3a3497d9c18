"""A graceful stop: cron timeouts, `systemctl stop` and Kubernetes send SIGTERM.

The first SIGTERM or SIGINT asks the run to stop: no new request is sent, the ones in
flight finish (or time out), and the journal, report and lock are settled as for any
run that ends early (exit 1, "stopped by signal"). A second signal stops at once; the
journal makes that safe too, as it does a kill.

The request is a process-wide flag that the Pluvo client checks before each batch and
the executor before each phase; only the command line installs the handlers.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from types import FrameType

log = logging.getLogger(__name__)

_requested = threading.Event()
_reason = ""


def request(reason: str) -> None:
    global _reason
    _reason = reason
    _requested.set()


def requested() -> str | None:
    """Why a stop was asked for, or None while the run may go on."""
    return _reason if _requested.is_set() else None


def clear() -> None:
    """Forget a stop request (tests run several commands in one process)."""
    global _reason
    _reason = ""
    _requested.clear()


def install() -> None:
    """SIGTERM and SIGINT: the first stops gracefully, a second at once."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if _requested.is_set():
            log.warning("%s again: stopping at once", name)
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        request(f"stopped by signal {name}")
        log.warning(
            "%s: stopping after the requests in flight (send it again to stop at once)", name
        )

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, handler)
