"""`explain REF`: one person's story, for the question "why does Pluvo show this?".

Five parts, each from where it is true: the source rows that name the ref (file and
line, every column), each mapped value with the mapping rule that made it, what the
state store says was applied, the operations a plan would make for them now, and
the journal's history of that ref. The plan is the one `plan` makes (the engine's
dry run: Pluvo's categories checked, accounts to adopt looked up, held changes and
guards applied), so what it says of a person is what `plan` and `run` would do; it
sends nothing. When Pluvo cannot be read, the other parts are still shown. A person
for whom nothing is planned is told why: rejected rows, filtered out, not started
yet, missing within the leaver grace, left, or in line with the sources.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import Any

import pandas as pd

from sync.commands.render import render_section
from sync.commands.review import build_review, kind_words
from sync.config import Config
from sync.core.engine import run
from sync.core.load import load
from sync.core.mapping.spec import MappingSpec, ValueSpec, load_mapping
from sync.core.plan import GroupLinks, Kind, Operation
from sync.core.report import Report
from sync.core.sources import open_source
from sync.errors import PluvoError, UsageError
from sync.model import USER_FIELDS, Desired, is_warning, shown_reason
from sync.pluvo.api import ApiFactory
from sync.state import held as held_store
from sync.state.journal import history_of
from sync.state.read import StoredPerson, stored_person
from sync.state.store import StateStore, require_current

LINK_KINDS = [
    str(k) for k in (Kind.ADD_MEMBERS, Kind.REMOVE_MEMBERS, Kind.ADD_MANAGERS, Kind.REMOVE_MANAGERS)
]
JOURNAL_SHOWN = 50
KNOWN_KINDS = {str(k) for k in Kind}
SPEC_FIELDS = {"email": "email", "name": "name", "language": "language", "roles": "roles",
               "is_active": "active"}  # fmt: skip


def describe_rule(spec: ValueSpec | None) -> str:
    """A mapping rule in one line, as it reads in the mapping file."""
    if spec is None:
        return "not mapped"
    if spec.column is not None:
        text = f"column {spec.column!r}"
    elif spec.template is not None:
        text = f"template {spec.template!r}"
    else:
        text = f"constant {spec.value!r}"
    steps: list[str] = []
    for transform in spec.transforms:
        if isinstance(transform, str):
            steps.append(transform)
        else:
            dumped = transform.model_dump(exclude_defaults=True)
            steps.append(", ".join(f"{k}: {v}" for k, v in dumped.items()) or str(transform))
    if steps:
        text += ", then " + "; ".join(steps)
    if spec.default is not None:
        text += f", default {spec.default!r}"
    return text


def _indent(lines: list[str], by: str = "  ") -> list[str]:
    return [by + line for line in lines]


def explain(
    config: Config, ref: str, *, today: date | None = None, api_factory: ApiFactory | None = None
) -> str:
    report: Report | None = None
    unplanned = ""
    try:
        report = run(config, dry=True, today=today, api_factory=api_factory)
    except PluvoError as exc:  # offline, or refused: the sources and store still tell
        unplanned = str(exc)
    desired = report.desired if report is not None else None
    if desired is None:
        desired = load(config, today=today).desired
    specs = {src.name: load_mapping(src.mapping) for src in config.sources}
    out = [f"Explain {ref}"]

    # 1. Source rows.
    out += ["", "Source rows that name this ref:"]
    found = False
    for src in config.sources:
        data = open_source(src, base_dir=config.base_dir).read()
        rows = _rows_naming(data.frame, specs[src.name], ref, desired, src.name)
        for record in rows:
            found = True
            out.append(f"  {record['_file']}:{record['_line']} (source {src.name})")
            for column, value in record.items():
                if not str(column).startswith("_") and value != "":
                    out.append(f"      {column}: {value!r}")
    if not found:
        out.append("  none: no source row names this ref today")

    # 2. Mapped values and the rules that made them.
    out += ["", "Mapped values (value ← mapping rule):"]
    users = desired.users
    if ref in users.index:
        row = users.loc[ref]
        source = str(row.get("_source", ""))
        spec = specs.get(source)
        where = f"{row['_file']}:{row['_line']}"
        out.append(f"  from {where} (source {source}, mapping {_mapping(config, source)})")
        for field in USER_FIELDS:
            rule = getattr(spec.users, SPEC_FIELDS[field]) if spec is not None else None
            out.append(f"  {field}: {str(row[field])!r} ← {describe_rule(rule)}")
        values = desired.extra_values[desired.extra_values["user_ref"] == ref]
        for value in values.to_dict(orient="records"):
            extra = (
                next((e for e in spec.extra if e.category == value["category_ref"]), None)
                if spec
                else None
            )
            shown = str(value["value"]).replace("\n", ", ")
            category = f"{value['category_ref']} ({value['category_type']})"
            out.append(f"  {category}: {shown!r} ← {describe_rule(extra)}")
        groups = desired.groups
        for frame, noun in ((desired.memberships, "member of"), (desired.managers, "manager of")):
            for group in sorted(frame.loc[frame["user_ref"] == ref, "group_ref"]):
                name = groups["name"].get(group, group) if len(groups) else group
                rule = groups["_source"].get(group, "") if "_source" in groups else ""
                out.append(f"  {noun} group {name!r} ({group}) ← group rule {rule or '?'}")
    elif ref in desired.ended.index:
        end = desired.ended.loc[ref, "end_date"]
        out.append(f"  not synced: end date {end!s} has passed (a leaver)")
    elif ref in desired.pending.index:
        start = desired.pending.loc[ref, "start_date"]
        out.append(f"  not synced yet: a pre-hire starting {start!s}")
    else:
        out.append("  none: this ref is not a synced user in today's sources")
    rejected = desired.rejections[desired.rejections["ref"].astype(str) == ref]
    for raw in rejected.to_dict(orient="records"):
        record = {str(k): v for k, v in raw.items()}
        column = f" {record['column']}" if record.get("column") else ""
        out.append(f"  rejected: {record['file']}:{record['line']}{column}: {shown_reason(record)}")

    store = StateStore(config.state_url())
    try:
        require_current(store.engine)
        with store.session() as session:
            person = stored_person(session, ref)
            held = held_store.active(session, {ref})
            journaled = history_of(session, ref, LINK_KINDS, JOURNAL_SHOWN + 1)
        named = found or person is not None or bool(journaled) or len(rejected) > 0
        if not named and ref not in desired.ended.index and ref not in desired.pending.index:
            raise UsageError(
                f"nothing names {ref}: no source row, no record in the state store, "
                "no journal entry",
                hint="refs are the employee numbers the mapping's `ref` reads",
            )
        out += ["", "State store (what was last applied to Pluvo):"]
        out += _indent(_store(person))
        if report is None or report.plan is None:
            out += ["", f"Planned now: unknown, Pluvo could not be read ({unplanned})"]
        else:
            out += ["", "Planned now (as `plan` would plan it; nothing is sent):"]
            out += _indent(
                _planned(config, report, ref, found=found, rejected=rejected, person=person)
            )
        if held:
            out += ["", "Held for release (not applied until `pluvo-sync release`):"]
            for item in held:
                kind, _, group = item.key
                where = f" in group {group}" if group else ""
                since = item.held_at.isoformat(timespec="minutes")
                out.append(f"  {kind}{where}: held since {since} (run {item.held_by_run})")
                out.append(f"      why: {item.reason}")
        out += ["", "Journal (newest first):"]
        out += _indent(_journal(journaled, ref))
    finally:
        store.close()
    return "\n".join(out)


def _mine(op: Operation, ref: str) -> bool:
    return op.ref == ref or (isinstance(op, GroupLinks) and ref in op.users)


def _planned(
    config: Config,
    report: Report,
    ref: str,
    *,
    found: bool,
    rejected: pd.DataFrame,
    person: StoredPerson | None,
) -> list[str]:
    """What the plan does for `ref`, or why it does nothing."""
    plan = report.plan
    desired = report.desired
    assert plan is not None
    assert desired is not None
    out: list[str] = []
    mine = tuple(op for op in plan.operations if _mine(op, ref))
    if mine:
        review = build_review(replace(plan, operations=mine), desired)
        for section in review.sections:
            out += render_section(section, verbose=True)
    for item in plan.held:
        if _mine(item.operation, ref):
            out.append(f"held, not applied: {kind_words(str(item.operation.kind))} ({item.reason})")
    if out and report.guards:
        out += [f"stopped: {guard}" for guard in report.guards]
    if out:
        return out
    return [_why_nothing(config, desired, ref, found=found, rejected=rejected, person=person)]


def _why_nothing(
    config: Config,
    desired: Desired,
    ref: str,
    *,
    found: bool,
    rejected: pd.DataFrame,
    person: StoredPerson | None,
) -> str:
    """`rejected`: the rejections naming `ref` (warnings among them refuse nothing)."""
    refused = rejected[~is_warning(rejected).to_numpy()]
    user = person.user if person is not None else None
    if user is not None and (user.archived or user.left_action):
        return f"nothing: left ({user.left_action or 'archived'}); the engine leaves them be"
    if len(refused):
        keeps = "Pluvo keeps what it has" if user is not None else "nothing is created"
        return f"nothing: its source rows were rejected (above); {keeps} until they are fixed"
    if ref in desired.pending.index:
        return f"nothing yet: a pre-hire, synced from {desired.pending.loc[ref, 'start_date']!s}"
    if ref in desired.users.index:
        return "nothing: Pluvo already matches the sources for this ref"
    why = "filtered out by the mapping's filters" if found else "missing from today's sources"
    if user is None:
        return f"nothing: {why}, and the engine never synced this ref"
    leavers = config.leavers
    if leavers.action == "ignore":
        return f"nothing: {why}; leavers are ignored (leavers.action: ignore)"
    since = f"{user.missing_since:%Y-%m-%d}" if user.missing_since else "today"
    runs = user.missing_runs + 1
    return (
        f"nothing yet: {why} since {since} ({runs} run(s), counting this one); within "
        f"the leaver grace ({leavers.grace_runs} run(s), {leavers.grace_days:g} day(s)): "
        f"{leavers.action}d by a later run unless they return"
    )


def _mapping(config: Config, source: str) -> str:
    for src in config.sources:
        if src.name == source:
            return str(src.mapping)
    return "?"


def _rows_naming(
    frame: pd.DataFrame, spec: MappingSpec, ref: str, desired: Any, source: str
) -> list[dict[str, Any]]:
    """Raw rows whose ref is `ref`: by the ref column when the mapping has one, else by
    the lines the mapping itself attributed to the ref (kept or rejected)."""
    rule = spec.users.ref
    if rule.column is not None and rule.column in frame:
        cells = frame[rule.column].astype(str).str.strip().str.upper()
        part = frame[cells == ref.strip().upper()]
    else:
        lines: set[int] = set()
        users = desired.users
        if ref in users.index and users.loc[ref, "_source"] == source:
            lines.add(int(users.loc[ref, "_line"]))
        rejected = desired.rejections
        lines |= {int(x) for x in rejected.loc[rejected["ref"].astype(str) == ref, "line"]}
        part = frame[frame["_line"].isin(lines)]
    return [{str(k): v for k, v in r.items()} for r in part.to_dict(orient="records")]


def _store(person: StoredPerson | None) -> list[str]:
    if person is None:
        return ["nothing: the engine never created or adopted this ref"]
    user = person.user
    out = [
        f"{user.name} <{user.email}>, language {user.language or '-'}, roles "
        f"{user.roles or '-'}, active {user.is_active}; Pluvo id {user.pluvo_id or '?'} "
        f"({user.owned})",
        f"first seen {user.first_seen:%Y-%m-%d}, last seen {user.last_seen:%Y-%m-%d}",
    ]
    if user.archived or user.left_action:
        out.append(f"left: {user.left_action or 'archived'}")
    if user.missing_since is not None:
        out.append(f"missing since {user.missing_since:%Y-%m-%d} ({user.missing_runs} run(s))")
    for groups, noun in ((person.member_of, "member of"), (person.manager_of, "manager of")):
        out += [f"{noun} group {name!r} ({g})" for g, name in groups]
    out += [f"{c}: {v.replace(chr(10), ', ')!r}" for c, v in person.values]
    return out


def _journal(rows: list[Any], ref: str) -> list[str]:
    if not rows:
        return ["nothing journaled for this ref"]
    out = []
    for started, run_id, kind, op_ref, status, error in rows[:JOURNAL_SHOWN]:
        words = kind_words(kind) if kind in KNOWN_KINDS else kind
        what = f"{words}, group {op_ref}" if op_ref != ref else words
        tail = f": {error}" if error else ""
        out.append(f"{started:%Y-%m-%d %H:%M} run {run_id}: {what} {status}{tail}")
    if len(rows) > JOURNAL_SHOWN:
        out.append("… older entries: `pluvo-sync history RUN_ID`")
    return out
