"""`held`: the changes the safety policy holds, for the person who releases them.

Offline: the state store is all it reads. Each held change is shown as the plan
showed it (who, what, in words), with why it is held and since when.
"""

from __future__ import annotations

from typing import Any

from sync.commands.admin import Settings, iso_time
from sync.commands.review import build_review
from sync.core.plan import GroupLinks, Operation, Plan, operation_from_json
from sync.core.release import NOTHING_HELD
from sync.core.report import Report
from sync.state import held as held_store
from sync.state.read import names_and_emails
from sync.state.store import StateStore, require_current


def held_data(config: Settings) -> list[dict[str, Any]]:
    """Every change held now, oldest first, then every standing discard (`status`
    says which), as `held --json` prints them."""
    store = StateStore(config.state_url())
    try:
        require_current(store.engine)
        with store.session() as session:
            items = held_store.active(session)
            discards = held_store.standing_discards(session)
            people = names_and_emails(session, {item.ref for item in (*items, *discards)})
    finally:
        store.close()
    out = []
    for item in (*items, *discards):
        kind, ref, group = item.key
        op = operation_from_json(item.operation)
        name, email = people.get(ref, ("", ""))
        row = {
            "status": "held" if item.closed_at is None else "discarded",
            "ref": ref,
            "name": name,
            "email": email,
            "kind": kind,
            "group": group,
            "class": item.risk,
            "what": _what(op),
            "why": item.reason,
            "since": iso_time(item.held_at.replace(microsecond=0)),
            "held_by_run": item.held_by_run,
            "last_planned_by_run": item.planned_by_run,
        }
        if item.closed_at is not None:
            row["discarded_by"] = item.closed_by or ""
            row["discarded_because"] = item.close_reason or ""
            row["discarded_since"] = iso_time(item.closed_at.replace(microsecond=0))
        out.append(row)
    return out


def _what(op: Operation) -> str:
    """The change in words, as the plan says it."""
    if isinstance(op, GroupLinks):
        role = "manager" if op.noun == "manager" else "member"
        return f"removed as {role} of group {op.group_name or op.ref}"
    review = build_review(Plan(operations=(op,)))
    texts = [item.text for section in review.sections for item in section.items]
    return "; ".join(texts) or op.description


def render_held(rows: list[dict[str, Any]], *, width: int | None = None) -> str:
    held = [r for r in rows if r.get("status", "held") == "held"]
    discarded = [r for r in rows if r.get("status") == "discarded"]
    if not held:
        lines = ["Nothing is held."]
    else:
        lines = [
            f"Held for release: {len(held)} change(s)",
            "`pluvo-sync release REF... --reason TEXT` applies them, `discard` drops them",
            "",
            fitted_table(_shown(held), ["ref", "who", "what", "since", "why"], width=width),
        ]
    if discarded:
        decided = [
            {
                **shown,
                "by": r["discarded_by"],
                "why": r["discarded_because"],
                "since": r["discarded_since"][:16].replace("T", " "),
            }
            for shown, r in zip(_shown(discarded), discarded, strict=True)
        ]
        lines += [
            "",
            f"Discarded, set aside while the sources ask for them: {len(discarded)} change(s)",
            "`pluvo-sync release REF... --reason TEXT` applies one after all",
            "",
            fitted_table(decided, ["ref", "who", "what", "since", "by", "why"], width=width),
        ]
    return "\n".join(lines)


def _shown(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "ref": r["ref"],
            "who": f"{r['name'] or r['ref']} <{r['email']}>" if r["email"] else r["name"],
            "what": r["what"],
            "why": r["why"],
            "since": r["since"][:16].replace("T", " "),
        }
        for r in rows
    ]


def fitted_table(rows: list[dict[str, Any]], columns: list[str], *, width: int | None) -> str:
    """A table as wide as the terminal (`COLUMNS`, else 80 when not a terminal): the
    short columns (the first and `since`) stay on one line, the long ones wrap within
    their cells, so a held leaver's reason never runs 300 columns wide.

    Every cell is plain text: a name from HR that looks like rich markup (`[bold]`) or
    an emoji code is shown as it is."""
    import io
    import shutil

    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    width = width or shutil.get_terminal_size((80, 24)).columns
    grid = Table(box=None, pad_edge=False, show_edge=False, padding=(0, 2, 0, 0))
    for index, column in enumerate(columns):
        short = index == 0 or column == "since"
        grid.add_column(column, no_wrap=short, overflow="fold", header_style="")
    for row in rows:
        grid.add_row(*(Text(str(row.get(c, ""))) for c in columns))
    buffer = io.StringIO()
    Console(file=buffer, width=width, color_system=None, emoji=False, highlight=False).print(grid)
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines())


def render_closed(report: Report) -> str:
    """What a release or discard did, for the person who asked for it."""
    if report.message == NOTHING_HELD:
        return "Nothing is held."
    section = report.sections.get("release") or report.sections.get("discard") or {}
    out = [f"{report.mode.capitalize()} by {section.get('by', '?')}: {section.get('reason', '')}"]
    for key, label in (
        ("released", "released and applied"),
        ("not_applied", "not applied (failed or stopped; still held, release it again)"),
        ("changed", "changed since it was held, not applied (still held: review `held` again)"),
        ("discarded", "discarded, not applied"),
        ("dropped", "dropped: the sources no longer ask for it"),
    ):
        for item in section.get(key, ()):
            group = f" in group {item['group']}" if item["group"] else ""
            out.append(f"  {label}: {item['kind']} {item['ref']}{group}")
    return "\n".join(out)
