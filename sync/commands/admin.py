"""`status` and `history`: reading the journal back for people."""

from __future__ import annotations

from sqlalchemy import func, select

from sync.commands.render import table
from sync.config import Config
from sync.errors import SyncError
from sync.state.models import GroupRow, ManagerRow, MembershipRow, OperationRow, RunRow, UserRow
from sync.state.store import StateStore, require_current


def _open(config: Config) -> StateStore:
    store = StateStore(config.state_url())
    require_current(store.engine)
    return store


def status(config: Config, *, limit: int = 10) -> str:
    store = _open(config)
    try:
        with store.session() as session:
            runs = session.scalars(
                select(RunRow).order_by(RunRow.started_at.desc()).limit(limit)
            ).all()
            open_ops = session.execute(
                select(OperationRow.status, func.count())
                .where(OperationRow.status.in_(["pending", "started", "failed", "abandoned"]))
                .group_by(OperationRow.status)
            ).all()
            users = session.execute(
                select(UserRow.owned, UserRow.left_action, func.count()).group_by(
                    UserRow.owned, UserRow.left_action
                )
            ).all()
            groups = session.scalar(select(func.count()).select_from(GroupRow)) or 0
            members = session.scalar(select(func.count()).select_from(MembershipRow)) or 0
            managers = session.scalar(select(func.count()).select_from(ManagerRow)) or 0
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
    for owned, left, count in users:
        key = {"archive": "archived", "deactivate": "deactivated"}.get(left or "", "active")
        total[key] += count
        if owned == "adopted":
            total["adopted"] += count
    out.append(
        f"  users: {total['active']} active, {total['archived']} archived, "
        f"{total['deactivated']} deactivated ({total['adopted']} adopted)"
    )
    out.append(f"  groups: {groups}, memberships: {members}, managers: {managers}")
    return "\n".join(out)


def history(config: Config, run_id: str | None, *, only_failed: bool = False) -> str:
    store = _open(config)
    try:
        with store.session() as session:
            if run_id is None:
                run = session.scalars(select(RunRow).order_by(RunRow.started_at.desc())).first()
            else:
                run = session.get(RunRow, run_id)
            if run is None:
                raise SyncError(
                    "no runs recorded yet" if run_id is None else f"no run with id {run_id}"
                )
            query = select(OperationRow).where(OperationRow.run_id == run.id)
            if only_failed:
                query = query.where(OperationRow.status.in_(["failed", "abandoned", "skipped"]))
            ops = session.scalars(query.order_by(OperationRow.seq)).all()
    finally:
        store.close()
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
            "error": op.error or "",
        }
        for op in ops
    ]
    out.append(table(rows, ["#", "kind", "ref", "status", "error"]) if rows else "  no operations")
    return "\n".join(out)
