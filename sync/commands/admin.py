"""`status` and `history`: reading the journal back for people."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from sync.config import Config, LocalConfig
from sync.errors import SyncError
from sync.state import held as held_store
from sync.state import journal
from sync.state.journal import OpStatus
from sync.state.models import OperationRow
from sync.state.read import StoreCounts, store_counts
from sync.state.store import StateStore, require_current

Settings = Config | LocalConfig
"""Both commands are offline: the state store is all they read."""


def _open(config: Settings) -> StateStore:
    store = StateStore(config.state_url())
    require_current(store.engine)
    return store


def iso_time(value: datetime | None) -> str | None:
    """ISO 8601 with the zone offset: the store writes UTC, and SQLite gives it back
    without its zone, which a monitor would read as local time."""
    if value is None:
        return None
    return (value if value.tzinfo is not None else value.replace(tzinfo=UTC)).isoformat()


def _failed_operations(session: Session, run_ids: list[str]) -> dict[str, int]:
    """Operations the journal records as failed, per run: a run that stopped before its
    summary was written (an outage, refused credentials) has no count of its own."""
    if not run_ids:
        return {}
    rows = session.execute(
        select(OperationRow.run_id, func.count())
        .where(OperationRow.run_id.in_(run_ids), OperationRow.status == OpStatus.FAILED)
        .group_by(OperationRow.run_id)
    )
    return {str(run_id): int(count) for run_id, count in rows}


def status_data(config: Settings, *, limit: int = 10) -> dict[str, Any]:
    """What `status` shows, as data: `status --json` prints it for monitoring."""
    store = _open(config)
    try:
        with store.session() as session:
            runs = journal.recent_runs(session, limit)
            failed = _failed_operations(session, [r.id for r in runs])
            open_ops = journal.needing_attention(session)
            held = Counter(item.risk for item in held_store.active(session))
        counts = store_counts(store.engine)
    finally:
        store.close()
    return {
        "runs": [
            {
                "id": r.id,
                "mode": r.mode,
                "status": r.status,
                "exit_code": r.exit_code,
                "started_at": iso_time(r.started_at),
                "finished_at": iso_time(r.finished_at),
                "applied": sum((r.summary or {}).get("applied", {}).values()),
                "failed": _failed_count(r.summary, failed.get(r.id, 0)),
                "rejected": (r.summary or {}).get("rejected"),
                "message": r.message,
            }
            for r in runs
        ],
        "needing_attention": dict(open_ops),
        "held": {"total": sum(held.values()), **dict(sorted(held.items()))},
        "store": _store(counts),
    }


def _failed_count(summary: dict[str, Any] | None, journaled: int) -> int:
    """The run's own count, else what its journal records (never "unknown")."""
    counted = (summary or {}).get("failed")
    return int(counted) if counted is not None else journaled


def _store(counts: StoreCounts) -> dict[str, Any]:
    users = {"active": 0, "archived": 0, "deactivated": 0, "adopted": 0}
    for owned, left, count in counts.users:
        key = {"archive": "archived", "deactivate": "deactivated"}.get(left or "", "active")
        users[key] += count
        if owned == "adopted":
            users["adopted"] += count
    return {
        "users": users,
        "groups": counts.groups,
        "memberships": counts.memberships,
        "managers": counts.managers,
    }


def status(config: Settings, *, limit: int = 10) -> str:
    return render_status(status_data(config, limit=limit))


def render_status(data: dict[str, Any]) -> str:
    out = ["Last runs:"]
    if data["runs"]:
        rows = [
            {
                "run": r["id"],
                "mode": r["mode"],
                "status": r["status"],
                "exit": "" if r["exit_code"] is None else r["exit_code"],
                "started": r["started_at"][:19].replace("T", " "),
                "applied": r["applied"],
                "failed": "" if r["failed"] is None else r["failed"],
                "rejected": "" if r["rejected"] is None else r["rejected"],
            }
            for r in data["runs"]
        ]
        out.append(table(rows, list(rows[0])))
    else:
        out.append("  none yet")
    out.append("")
    out.append("Journal entries needing attention (all runs):")
    if data["needing_attention"]:
        out.extend(f"  {s}: {n}" for s, n in data["needing_attention"].items())
    else:
        out.append("  none")
    held = data.get("held", {})
    if held.get("total"):
        each = ", ".join(f"{n} {risk}" for risk, n in held.items() if risk != "total")
        out.append("")
        out.append(
            f"Held for release: {held['total']} change(s) ({each}); `pluvo-sync held` lists them"
        )
    out.append("")
    out.append("State store:")
    store = data["store"]
    users = store["users"]
    out.append(
        f"  users: {users['active']} active, {users['archived']} archived, "
        f"{users['deactivated']} deactivated ({users['adopted']} adopted)"
    )
    out.append(
        f"  groups: {store['groups']}, memberships: {store['memberships']}, "
        f"managers: {store['managers']}"
    )
    return "\n".join(out)


def history(config: Settings, run_id: str | None, *, only_failed: bool = False) -> str:
    store = _open(config)
    try:
        with store.session() as session:
            run, ops = journal.run_operations(session, run_id, only_failed=only_failed)
    finally:
        store.close()
    if run is None:
        raise SyncError("no runs recorded yet" if run_id is None else f"no run with id {run_id}")
    out = [
        f"Run {run.id} ({run.mode}): {run.status}, exit {run.exit_code}, "
        f"started {run.started_at:%Y-%m-%d %H:%M:%S}",
    ]
    if run.message:
        out.append(f"  {run.message}")
    rows = [
        {
            "#": op.seq,
            "kind": op.kind,
            "ref": op.ref,
            "status": op.status,
            "why": op.error_class or "",
            "error": op.error or "",
        }
        for op in ops
    ]
    columns = ["#", "kind", "ref", "status", "why", "error"]
    out.append(table(rows, columns) if rows else "  no operations")
    return "\n".join(out)


def table(rows: Iterable[dict[str, Any]], columns: list[str]) -> str:
    rows = list(rows)
    widths = {c: max([len(c), *(len(str(r.get(c, ""))) for r in rows)]) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns)]
    for row in rows:
        lines.append("  ".join(str(row.get(c, "")).ljust(widths[c]) for c in columns))
    return "\n".join(line.rstrip() for line in lines)


def unlock(config: Any) -> str:
    """Clear the run lock by hand, and journal that it was done (a run of mode unlock).

    Locks release themselves when their process dies (sync/state/lock.py); this is for
    the exceptional case, e.g. a holder that hangs. On PostgreSQL the session holding
    the lock is ended.
    """
    from sync.core.lifecycle import new_run_id
    from sync.state.journal import RunMode, RunStatus
    from sync.state.lock import force_unlock

    store = _open(config)
    try:
        run_id = new_run_id()
        store.start_run(run_id, RunMode.UNLOCK)
        row = force_unlock(store.engine)
        if row is None:
            message = "no run held the lock"
        else:
            message = (
                f"cleared by hand: the lock of run {row['run_id']} ({row['holder']}, "
                f"since {row['acquired_at']:%Y-%m-%d %H:%M:%S})"
            )
        store.finish_run(
            run_id,
            status=RunStatus.SUCCEEDED,
            exit_code=0,
            summary={},
            source_rows={},
            message=message,
        )
    finally:
        store.close()
    return message
