"""Reconcile's readable report: drift by kind with examples, corrections, outcome."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pandas as pd

from sync.commands.render import render_operation

if TYPE_CHECKING:
    from sync.commands.reconcile.command import Reconciliation

SHOWN = 10
"""Examples per drift kind in the readable report (the JSON has them all)."""


_TITLES = {
    "unknown_users": "users in Pluvo unknown to HR (left alone)",
    "field_drift": "user fields changed in Pluvo",
    "value_drift": "extra values changed in Pluvo",
    "membership_drift": "memberships/managers the engine added, gone from Pluvo",
    "foreign_members": "members/managers of owned groups the engine did not add (left alone)",
    "vanished": "state rows whose Pluvo object vanished",
}


def _shown(text: Any) -> str:
    value = "" if text is None or (isinstance(text, float) and pd.isna(text)) else str(text)
    value = value.replace("\n", ", ")
    return f"'{value}'" if value else "(empty)"


def _example(kind: str, rec: Mapping[Any, Any]) -> str:
    if kind == "unknown_users":
        state = " (archived)" if rec["archived"] else ""
        return f"{rec['ref'] or '(no ref)'} <{rec['email']}> {rec['name']}{state}"
    if kind == "field_drift":
        return f"{rec['ref']} {rec['field']}: {_shown(rec['applied'])} → {_shown(rec['live'])}"
    if kind == "value_drift":
        return f"{rec['ref']} {rec['category']}: {_shown(rec['applied'])} → {_shown(rec['live'])}"
    if kind == "membership_drift":
        return f"{rec['relation']} {rec['user_ref']} of group {rec['group_ref']}: missing"
    if kind == "foreign_members":
        return f"{rec['relation']} {rec['user_ref']} of group {rec['group_ref']}"
    moved = f", now ref {rec['now_ref']}" if rec.get("now_ref") else ""
    again = ", recreated by --apply" if rec["desired"] else ""
    return f"{rec['kind']} {rec['ref']}{moved}{again}"


def render_reconcile(result: Reconciliation, *, verbose: bool = False) -> str:
    report = result.report
    title = "Reconcile --apply" if result.applying else "Reconcile (report only, nothing sent)"
    live = report.sections.get("live", {})
    out = [
        f"{title}: live Pluvo has {live.get('users', 0)} user(s), {live.get('groups', 0)} group(s)"
    ]
    if result.drift is not None:
        for kind, frame in result.drift.frames().items():
            out.append(f"  {kind:<18} {len(frame):>8}  {_TITLES[kind]}")
        if report.plan is not None and len(report.plan) and not result.drift.owned_total:
            out.append(
                f"  {'not_yet_synced':<18} {len(report.plan):>8}  changes from HR no run "
                "applied yet (not drift; `pluvo-sync run` applies them)"
            )
        for kind, frame in result.drift.frames().items():
            if frame.empty:
                continue
            limit = len(frame) if verbose else SHOWN
            out.append("")
            out.append(f"{_TITLES[kind].capitalize()}:")
            for rec in frame.head(limit).to_dict(orient="records"):
                out.append(f"  {_example(kind, rec)}")
            if len(frame) > limit:
                out.append(f"  … and {len(frame) - limit} more (use --verbose or --out)")
    plan = report.plan
    if plan is not None:
        counts = plan.counts()
        out.append("")
        verb = "Corrections applied from" if report.execution else "Corrections --apply would send"
        out.append(f"{verb}: {sum(counts.values())} operation(s)")
        for kind, count in counts.items():
            out.append(f"  {kind:<18} {count:>8}")
        shown = plan.operations if verbose else plan.operations[:SHOWN]
        for op in shown:
            out.extend(render_operation(op))
        if len(shown) < len(plan):
            out.append(f"  … and {len(plan) - len(shown)} more")
    if report.rejected:
        out.append(f"Rejected HR rows: {report.rejected} (see `pluvo-sync plan`)")
    if report.guards:
        out.append("")
        out.append("STOPPED by safety guard(s), nothing applied:")
        out.extend(f"  {g}" for g in report.guards)
    ex = report.execution
    if ex is not None:
        out.append("")
        applied = ", ".join(f"{k} {v}" for k, v in ex.done.items()) or "nothing"
        out.append(f"Applied: {applied}")
        for failure in ex.failed[:SHOWN]:
            out.append(f"  failed {failure.kind} {failure.ref}: {failure.error}")
        if ex.skipped:
            out.append(f"  not attempted: {ex.skipped} operation(s)")
    if result.refresh is not None:
        changed = {k: v for k, v in result.refresh.counts().items() if v}
        text = ", ".join(f"{k} {v}" for k, v in changed.items()) or "nothing to learn"
        out.append(f"State store refreshed from Pluvo: {text}")
    out.append("")
    out.append(
        f"Reconcile {report.run_id}: {report.status} (exit {report.exit_code}), "
        f"{report.requests} request(s)"
    )
    if report.message:
        out.append(f"  {report.message}")
    why = _why_drift(result)
    if why:
        out.append(f"  {why}")
    return "\n".join(out)


def _why_drift(result: Reconciliation) -> str | None:
    """What a `drift` outcome is made of. Its corrections are the difference between HR
    and live Pluvo, so HR changes no run applied yet count too: without this line a
    report whose drift counts are all 0 would end "drift (exit 3)" unexplained."""
    report, drift, plan = result.report, result.drift, result.report.plan
    if report.status != "drift" or drift is None or plan is None:  # RunStatus is a StrEnum
        return None
    if drift.owned_total:
        return (
            f"drift: {drift.owned_total} difference(s) in what the engine owns; "
            f"--apply sends {len(plan)} correction(s)"
        )
    return (
        f"no drift in Pluvo: {len(plan)} change(s) from HR are not applied yet "
        "(`pluvo-sync run` or `reconcile --apply` sends them)"
    )
