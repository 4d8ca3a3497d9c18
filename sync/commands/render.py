"""What people read: plans and run reports, for an HR administrator.

Plain text that reads well under cron and in an e-mail, and the same text in a
terminal; the machine-readable form is the JSON report.
"""

from __future__ import annotations

from sync.commands.review import HELD, LEAVERS, Section, review_of
from sync.core.plan import AdoptUser, GroupLinks, Kind, Operation
from sync.core.report import Report
from sync.errors import ExitCode
from sync.state.journal import RunMode

SHOWN_RECORDS = 25
SHOWN_LEAVERS = 100
"""Leavers come first and are the riskiest: a long list is still shown in full."""
SHOWN_SUMMARY = 15
SHOWN_DETAILS = 8


def _value(text: str) -> str:
    shown = text.replace("\n", ", ")
    return f"'{shown}'" if shown else "(empty)"


def render_operation(op: Operation) -> list[str]:
    lines = [f"  {op.description}"]
    if op.kind in (Kind.CREATE_USER, Kind.ADOPT_USER):
        # A new person: one line of values reads better than five "(empty) →" lines.
        values = ", ".join(f"{c.field}={c.new}" for c in op.changes if c.field != "email")
        origin = op.changes[0].origin if op.changes else ""
        lines.append(f"      {values}" + (f"   [{origin}]" if origin else ""))
        return lines
    if isinstance(op, GroupLinks):
        users = list(op.users)
        more = f" … +{len(users) - 8}" if len(users) > 8 else ""
        lines.append(f"      users: {', '.join(users[:8])}{more}")
        return lines
    for change in op.changes:
        origin = f"   [{change.origin}]" if change.origin else ""
        lines.append(f"      {change.field}: {_value(change.old)} → {_value(change.new)}{origin}")
    return lines


def render_plan(report: Report, *, verbose: bool = False) -> str:
    """The plan for the person who signs it off: a summary, then every class of change
    riskiest first (leavers, removals, overwrites, moves and renames, joiners)."""
    plan = report.plan
    out: list[str] = []
    title = "Plan (dry run, nothing sent)" if report.mode == RunMode.PLAN else "Plan"
    if plan is None:
        return f"{title}: not computed"
    review = review_of(report)
    total = len(plan)
    out.append(
        f"{title}: {total} operation(s) for {plan.desired_users} desired user(s), "
        f"{plan.state_users} known"
    )
    width = max((len(words) for words, _ in review.kinds), default=0)
    for words, count in review.kinds:
        out.append(f"  {words:<{width}} {count:>8}")
    out.extend(_sources(report.mapping))
    if plan.adopted:
        how: dict[str, int] = {}
        for op in plan.operations:
            if isinstance(op, AdoptUser):
                how[op.matched_by] = how.get(op.matched_by, 0) + 1
        matched = ", ".join(f"{n} by {k}" for k, n in sorted(how.items()))
        out.append(f"  existing Pluvo users taken over: {len(plan.adopted)} (matched {matched})")
    if review.summary:
        out.append("")
        out.append("In short:")
        shown = review.summary if verbose else review.summary[:SHOWN_SUMMARY]
        out.extend(f"  {line}" for line in shown)
        if len(shown) < len(review.summary):
            out.append(f"  … and {len(review.summary) - len(shown)} more (use --verbose)")
    for section in review.sections:
        out.append("")
        out.extend(render_section(section, verbose=verbose))
    out.extend(_rejections(report))
    if report.guards:
        out.append("")
        out.append("STOPPED by safety guard(s), nothing applied:")
        out.extend(f"  {g}" for g in report.guards)
    if report.holding:
        out.append("")
        out.append("HELD by safety guard(s) (safety.on_exceed: hold), the rest applies:")
        out.extend(f"  {g}" for g in report.holding)
    return "\n".join(out)


def render_section(section: Section, *, verbose: bool = False) -> list[str]:
    items = section.items
    out = [f"{section.title} ({len(items)}):"]
    out.extend(f"  {note}" for note in section.notes)
    limit = SHOWN_LEAVERS if section.risk in (HELD, LEAVERS) else SHOWN_RECORDS
    shown = items if verbose else items[:limit]
    for item in shown:
        origin = f"   [{item.origin}]" if item.origin else ""
        out.append(f"  {item.subject}: {item.text}{origin}")
        details = list(item.details)
        if not verbose and len(details) > SHOWN_DETAILS:
            more = len(details) - SHOWN_DETAILS
            details = [*details[:SHOWN_DETAILS], f"… and {more} more (use --verbose)"]
        out.extend(f"      {line}" for line in details)
    if len(shown) < len(items):
        out.append(f"  … and {len(items) - len(shown)} more (use --verbose or --out plan.json)")
    return out


def _sources(mapping: dict[str, dict[str, int]]) -> list[str]:
    """Where every row went, so rows that silently vanish (filters) are seen too."""
    lines = []
    for name, stats in mapping.items():
        parts = [f"{stats.get('users', 0)} user(s)"]
        for key, label in (
            ("pending", "pre-hire(s) not yet due"),
            ("ended", "past their end date"),
            ("filtered", "filtered out"),
            ("rejected", "rejected"),
        ):
            if stats.get(key):
                parts.append(f"{stats[key]} {label}")
        lines.append(f"  source {name}: {stats.get('rows', 0)} row(s): {', '.join(parts)}")
    return lines


def _rejections(report: Report) -> list[str]:
    desired = report.desired
    if desired is None or desired.rejections.empty:
        return []
    from sync.model import is_warning, shown_reason

    rows = desired.rejections
    warnings = int(is_warning(rows).sum())
    errors = len(rows) - warnings
    title = f"Rejected rows: {errors} (they are not synced; fix them in the HR system)"
    if report.known_rejections and errors:
        title = (
            f"Rejected rows: {errors}, {report.new_rejected} new since the last run "
            "(they are not synced; fix them in the HR system)"
        )
    if warnings:
        title += f"; {warnings} warning(s) (the row syncs, one link is dropped)"
    out = ["", title]
    for rec in rows.head(SHOWN_RECORDS).to_dict(orient="records"):
        column = f" {rec['column']}" if rec.get("column") else ""
        # Marked only beside rows a previous run rejected: the first run's are all new.
        new = bool(report.known_rejections) and report.is_new_rejection(rec)
        mark = " (new)" if new else ""
        out.append(f"  {rec['file']}:{rec['line']}{column}: {shown_reason(rec)}{mark}")
    if len(rows) > SHOWN_RECORDS:
        out.append(f"  … and {len(rows) - SHOWN_RECORDS} more in the report")
    return out


def render_report(report: Report) -> str:
    status = str(report.status)
    if report.exit_code == ExitCode.PARTIAL and report.rejected:
        status += f", {report.rejected} row(s) rejected"
        if report.known_rejections:
            status += f" ({report.new_rejected} new)"
    out = [f"{report.mode.capitalize()} {report.run_id}: {status} (exit {report.exit_code})"]
    ex = report.execution
    if ex is not None:
        applied = ", ".join(f"{k} {v}" for k, v in ex.done.items()) or "nothing"
        out.append(f"  applied: {applied}")
        if ex.failed:
            out.append(f"  failed: {len(ex.failed)} operation(s) (retried by the next run)")
            for failure in ex.failed[:SHOWN_RECORDS]:
                out.append(
                    f"    {failure.kind} {failure.ref} [{failure.error_class}]: {failure.error}"
                )
        if ex.skipped:
            out.append(f"  not attempted: {ex.skipped} operation(s)")
        if report.plan is not None and report.plan.held:
            out.append(
                f"  held for release: {len(report.plan.held)} change(s) "
                "(`pluvo-sync held` lists them; `release` applies, `discard` drops them)"
            )
        out.append(f"  requests: {ex.requests} in {ex.seconds:.1f} s")
    if report.message:
        out.append(f"  {report.message}")
    if report.report_file:
        out.append(f"  report: {report.report_file}")
    return "\n".join(out)
