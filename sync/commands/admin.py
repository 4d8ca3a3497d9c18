"""`status` and `history`: reading the journal back for people."""

from __future__ import annotations

from sync.commands.render import table
from sync.config import Config
from sync.errors import SyncError
from sync.state import journal
from sync.state.read import store_counts
from sync.state.store import StateStore, require_current


def _open(config: Config) -> StateStore:
    store = StateStore(config.state_url())
    require_current(store.engine)
    return store


def status(config: Config, *, limit: int = 10) -> str:
    store = _open(config)
    try:
        with store.session() as session:
            runs = journal.recent_runs(session, limit)
            open_ops = journal.needing_attention(session)
        counts = store_counts(store.engine)
    finally:
        store.close()
    out = ["Last runs:"]
    if runs:
        rows = [
            {
                "run": r.id,
                "mode": r.mode,
                "status": r.status,
                "exit": "" if r.exit_code is None else r.exit_code,
                "started": f"{r.started_at:%Y-%m-%d %H:%M:%S}",
                "applied": sum((r.summary or {}).get("applied", {}).values()),
                "failed": (r.summary or {}).get("failed", ""),
                "rejected": (r.summary or {}).get("rejected", ""),
            }
            for r in runs
        ]
        out.append(table(rows, list(rows[0])))
    else:
        out.append("  none yet")
    out.append("")
    out.append("Journal entries needing attention (all runs):")
    if open_ops:
        out.extend(f"  {s}: {n}" for s, n in open_ops)
    else:
        out.append("  none")
    out.append("")
    out.append("State store:")
    total = {"active": 0, "archived": 0, "deactivated": 0, "adopted": 0}
    for owned, left, count in counts.users:
        key = {"archive": "archived", "deactivate": "deactivated"}.get(left or "", "active")
        total[key] += count
        if owned == "adopted":
            total["adopted"] += count
    out.append(
        f"  users: {total['active']} active, {total['archived']} archived, "
        f"{total['deactivated']} deactivated ({total['adopted']} adopted)"
    )
    out.append(
        f"  groups: {counts.groups}, memberships: {counts.memberships}, managers: {counts.managers}"
    )
    return "\n".join(out)


def history(config: Config, run_id: str | None, *, only_failed: bool = False) -> str:
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
