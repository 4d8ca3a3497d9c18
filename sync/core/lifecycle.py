"""A run's life in the state store, written once for every command that records a run.

`run`, `plan`, `release`, `discard` and `reconcile` each open the store, refuse an
unmigrated one, take the lock, settle the runs that died holding it, record their own
run, and record how it ended, whatever ended it. Written out in each command, those
steps drifted apart (only `run` turned a store failing mid-run into a state error
that says the next run settles it). Here they are one context:

    with opened(config, RunMode.RELEASE) as run:
        ...                       # reads that need no lock (is anything held?)
        with run.locked():        # lock, settle, run row; failures recorded
            ...

`Run` carries the config, store and report that travel together through the core.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import SQLAlchemyError

from sync.config import Config, LocalConfig
from sync.core.executor import settle_dead_runs
from sync.core.report import Report
from sync.errors import ExitCode, StateError, SyncError
from sync.logs import set_run_id
from sync.state import journal
from sync.state.journal import ErrorClass, RunMode, RunStatus
from sync.state.store import StateStore, now, require_current, safe_url

log = logging.getLogger(__name__)


def new_run_id() -> str:
    """A new run's id, which every log line from here on carries."""
    run_id = f"{datetime.now().strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(3)}"
    set_run_id(run_id)
    return run_id


@dataclass
class Run:
    """One command's run: its settings, the store it records in, and its report."""

    config: Config | LocalConfig
    store: StateStore
    report: Report

    @contextmanager
    def locked(self, *, plan_hash: str | None = None) -> Iterator[None]:
        """Hold the run lock, settle dead runs and record this run (with the hash of
        the saved plan it applies, if any). A run that fails before it finishes is
        recorded as failed with its reason; one refused before anything was applied
        (a guard, a stale saved plan) as guarded."""
        store, report = self.store, self.report
        store.acquire_lock(report.run_id)
        try:
            settled = settle_dead_runs(store)
            if settled:
                log.warning("settled %d interrupted run(s): %s", len(settled), ", ".join(settled))
            store.start_run(report.run_id, report.mode, plan_hash=plan_hash)
            try:
                yield
            except SyncError as exc:
                self._failed(exc)
                raise
        finally:
            store.release_lock(report.run_id)

    def _failed(self, exc: SyncError) -> None:
        report = self.report
        refused = exc.exit_code == ExitCode.GUARD
        with self.store.session() as session, session.begin():
            # What the failure stopped from leaving is journaled as such, not left
            # pending under a finished run.
            journal.close_open(
                session,
                [report.run_id],
                now(),
                sent=f"the run failed after sending this, before an answer: {exc}",
                unsent=f"never sent: the run failed before it: {exc}",
                why=ErrorClass.FATAL,
            )
        self.store.finish_run(
            report.run_id,
            status=RunStatus.GUARDED if refused else RunStatus.FAILED,
            exit_code=int(exc.exit_code),
            summary=report.summary(),
            source_rows=report.source_rows,
            message=str(exc),
        )


@contextmanager
def opened(config: Config | LocalConfig, mode: RunMode) -> Iterator[Run]:
    """A new run of `mode` on the configured store, migrated to the current schema; the
    store is closed however the run ends. A store that fails under the run (locked,
    full, gone) is a `StateError` naming it without its password: what Pluvo
    acknowledged but the store could not record is re-sent by the next run, which
    settles this one."""
    report = Report(run_id=new_run_id(), mode=mode, started_at=now())
    url = config.state_url()
    store = StateStore(url)
    try:
        require_current(store.engine)
        yield Run(config, store, report)
    except SQLAlchemyError as exc:
        reason = getattr(exc, "orig", None) or exc.__class__.__name__
        raise StateError(
            f"state store {safe_url(url)} failed during the {mode}: {reason}",
            hint="fix the store; the next run settles this one and re-sends what is unrecorded",
        ) from None
    finally:
        store.close()
