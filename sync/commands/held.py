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
    """Every change held now, oldest first, as `held --json` prints it."""
    store = StateStore(config.state_url())
    try:
        require_current(store.engine)
        with store.session() as session:
            items = held_store.active(session)
            people = names_and_emails(session, {item.ref for item in items})
    finally:
        store.close()
    out = []
    for item in items:
        kind, ref, group = item.key
        op = operation_from_json(item.operation)
        name, email = people.get(ref, ("", ""))
        out.append(
            {
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
        )
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
    if not rows:
        return "Nothing is held."
    lines = [
        f"Held for release: {len(rows)} change(s)",
        "`pluvo-sync release REF... --reason TEXT` applies them, `discard` drops them",
        "",
    ]
    shown = [
        {
            "ref": r["ref"],
            "who": f"{r['name'] or r['ref']} <{r['email']}>" if r["email"] else r["name"],
            "what": r["what"],
            "why": r["why"],
            "since": r["since"][:16].replace("T", " "),
        }
        for r in rows
    ]
    lines.append(fitted_table(shown, ["ref", "who", "what", "since", "why"], width=width))
    return "\n".join(lines)


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
