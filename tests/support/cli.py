"""The command line run in-process (click's CliRunner) against a Workspace's config.

A subprocess costs a Python start and every import, about a second on a busy machine;
in-process, a command costs what it does, so the fast tier can check what a user sees
(exit code, stderr) of runs that take a fraction of that. What a command changes in the
process beyond its own run is put back afterwards: the signal handlers it installs for
a graceful stop, a stop request, and the `py.warnings` logger it routes warnings to.
"""

from __future__ import annotations

import contextlib
import logging
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from click.testing import CliRunner, Result

from sync import stopping
from sync.cli import cli
from tests.support.workspace import SECRET_ENV, Workspace


@contextmanager
def _process_kept() -> Iterator[None]:
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    captured = logging.getLogger("py.warnings")
    saved = (list(captured.handlers), list(captured.filters), captured.propagate, captured.level)
    stopping.clear()
    try:
        yield
    finally:
        stopping.clear()
        logging.captureWarnings(False)
        captured.handlers[:], captured.filters[:] = saved[0], saved[1]
        captured.propagate = saved[2]
        captured.setLevel(saved[3])
        for signum, handler in handlers.items():
            signal.signal(signum, handler)


def invoke(ws: Workspace, *args: str) -> Result:
    """`pluvo-sync COMMAND -c CONFIG ARGS...` in this process, from the workspace's
    folder (as cron would run it there); stdout and stderr apart."""
    command = [*args[:1], "-c", str(ws.config_file), *args[1:]]
    return invoke_in(ws.root, *command, env={SECRET_ENV: "sandbox-secret"})


def invoke_in(folder: Path, *args: str, env: dict[str, str | None] | None = None) -> Result:
    """`pluvo-sync ARGS...` in this process, from `folder`, with `env` set (and no
    $PLUVO_SYNC_CONFIG unless `env` gives one); stdout and stderr apart."""
    with _process_kept(), contextlib.chdir(folder):
        return CliRunner().invoke(
            cli,
            list(args),
            env={"PLUVO_SYNC_CONFIG": None, **(env or {})},
            prog_name="pluvo-sync",
            catch_exceptions=False,
        )
