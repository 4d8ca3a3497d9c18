"""Waiting on a CLI that runs in the background: always with a deadline, never silently.

Every poll loop of the end-to-end and reliability tests goes through `wait_until`, so
none can spin forever: it fails naming what it waited for when the deadline passes or
when the process it watches ends first (with the end of that process's stderr). The
deadlines guard against hangs only; they are generous and assert nothing about speed.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from tests.support.workspace import Progress, Workspace

T = TypeVar("T")

HANG = 240.0
"""Seconds after which a wait is a hang, not a slow machine."""


def _tail(process: subprocess.Popen[Any]) -> str:
    """The end of an ended process's stderr (its stdout is not needed to explain a hang)."""
    if process.stderr is None or process.stderr.closed:
        return ""
    text = process.stderr.read()
    return (text.decode(errors="replace") if isinstance(text, bytes) else text)[-2000:]


def wait_until(
    condition: Callable[[], T],
    *,
    what: str,
    timeout: float = HANG,
    process: subprocess.Popen[Any] | None = None,
    interval: float = 0.01,
) -> T:
    """Poll `condition` until it returns something truthy, and return that.

    Fails when `timeout` seconds pass, or when `process` ends before the condition holds.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if process is not None and process.poll() is not None:
            raise AssertionError(
                f"waiting for {what}: the process ended first "
                f"(exit {process.returncode}): {_tail(process)}"
            )
        if time.monotonic() >= deadline:
            raise AssertionError(f"waiting for {what}: still not so after {timeout:g} s")
        time.sleep(interval)


@contextmanager
def running(ws: Workspace, *args: str) -> Iterator[subprocess.Popen[str]]:
    """`pluvo-sync <args>` in the background; killed (if still alive) and reaped on exit."""
    process = ws.start(*args)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=60)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def finish(
    process: subprocess.Popen[str], timeout: float = HANG
) -> subprocess.CompletedProcess[str]:
    """Wait for a background command to end on its own and collect its output."""
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the command did not end within {timeout:g} s") from None
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def wait_for_progress(
    ws: Workspace,
    process: subprocess.Popen[str],
    reached: Callable[[Progress], bool],
    *,
    what: str,
    timeout: float = HANG,
) -> Progress:
    """Wait until the running run's journal satisfies `reached`; returns that progress."""

    def check() -> Progress | None:
        progress = ws.run_progress()
        return progress if progress.open and reached(progress) else None

    return wait_until(check, what=what, timeout=timeout, process=process)


def kill_when(
    ws: Workspace,
    reached: Callable[[Progress], bool],
    *,
    what: str,
    timeout: float = HANG,
) -> Progress:
    """Start `run`, SIGKILL it as soon as its journal satisfies `reached`; returns where."""
    with running(ws, "run") as process:
        progress = wait_for_progress(ws, process, reached, what=what, timeout=timeout)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
    return progress


def kill_after(ws: Workspace, done_ops: int) -> int:
    """Start `run`, SIGKILL it once `done_ops` operations are finished; returns how many were."""
    progress = kill_when(
        ws, lambda p: p.done >= done_ops, what=f"{done_ops} finished operations before the kill"
    )
    return progress.done
