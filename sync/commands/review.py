"""The plan as the HR administrator who signs it off reads it: ordered by risk.

The plan's operations stay in execution order (groups before members, leavers last);
that is the order a machine needs. A person needs the opposite: what cannot easily be
undone first. This module regroups the same operations into five classes, riskiest
first, names people instead of refs, says kinds in words, and adds the few sentences
that catch a mistake at a glance ("group Customer Support loses 14 members and keeps
0", "department renamed?"). Text, HTML and the JSON report's `review` section are
all drawn from this one structure, so they never disagree.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from sync.core.plan import (
    AdoptUser,
    ArchiveUser,
    Change,
    CreateGroup,
    CreateUser,
    DeactivateUser,
    GroupLinks,
    Kind,
    Operation,
    Plan,
    RenameGroup,
    RestoreUser,
    SetExtraValues,
    UpdateUser,
)
from sync.core.report import Report
from sync.model import Desired

LEAVERS, REMOVALS, OVERWRITES, MOVES, JOINERS = (
    "leavers",
    "removals",
    "overwrites",
    "moves",
    "joiners",
)
RISK_ORDER = (LEAVERS, REMOVALS, OVERWRITES, MOVES, JOINERS)
HELD = "held"
DISCARDS_SHOWN = 25
"""People named per summary heading (standing discards, filtered out, in grace);
the JSON has all."""
"""The section of changes the safety policy holds: first, since they need a decision."""
TITLES = {
    HELD: "Held for release, not applied",
    LEAVERS: "Leaving",
    REMOVALS: "Removed from groups and manager roles",
    OVERWRITES: "Existing values overwritten",
    MOVES: "Moves and renames",
    JOINERS: "Joining and added",
}

KIND_WORDS: dict[Kind, tuple[str, str]] = {
    # kind: (one, many)
    Kind.CREATE_GROUP: ("new group", "new groups"),
    Kind.UPDATE_GROUP: ("group renamed", "groups renamed"),
    Kind.CREATE_USER: ("new person", "new people"),
    Kind.ADOPT_USER: ("existing Pluvo account taken over", "existing Pluvo accounts taken over"),
    Kind.UPDATE_USER: ("person's details changed", "people's details changed"),
    Kind.RESTORE_USER: ("returning person restored", "returning people restored"),
    Kind.SET_VALUES: ("person's profile fields changed", "people's profile fields changed"),
    Kind.REMOVE_MEMBERS: ("group losing members", "groups losing members"),
    Kind.ADD_MEMBERS: ("group gaining members", "groups gaining members"),
    Kind.REMOVE_MANAGERS: ("group losing managers", "groups losing managers"),
    Kind.ADD_MANAGERS: ("group gaining managers", "groups gaining managers"),
    Kind.ARCHIVE_USER: ("leaver archived", "leavers archived"),
    Kind.DEACTIVATE_USER: ("leaver deactivated", "leavers deactivated"),
}


def kind_words(kind: Kind | str, count: int = 1) -> str:
    one, many = KIND_WORDS[Kind(kind)]
    return one if count == 1 else many


def plural(count: int, one: str, many: str | None = None) -> str:
    return f"{count} {one if count == 1 else (many or one + 's')}"


@dataclass(frozen=True, slots=True)
class Item:
    """One thing a reviewer checks: a person or a group, and what happens to it."""

    risk: str
    kind: str
    """The operation kind (machine-readable); `what` says it in words."""
    what: str
    ref: str
    subject: str
    """Who or what: "Sanne Bakker <sanne@example.nl>", "group Sales"."""
    text: str
    """What happens, in one line."""
    details: tuple[str, ...] = ()
    """Every value and every member, unabridged."""
    origin: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "class": self.risk,
            "kind": self.kind,
            "what": self.what,
            "ref": self.ref,
            "subject": self.subject,
            "text": self.text,
            "details": list(self.details),
            "origin": self.origin,
            **dict(self.data),
        }


@dataclass(frozen=True)
class Section:
    risk: str
    title: str
    items: tuple[Item, ...]
    notes: tuple[str, ...] = ()
    """Said once above the items (why the held changes are held)."""


@dataclass(frozen=True)
class Review:
    summary: tuple[str, ...]
    sections: tuple[Section, ...]
    kinds: tuple[tuple[str, int], ...]
    """(kind in words, operations) in execution order of the kinds."""

    def counts(self) -> dict[str, int]:
        return {s.risk: len(s.items) for s in self.sections}

    def items(self, risk: str) -> tuple[Item, ...]:
        for section in self.sections:
            if section.risk == risk:
                return section.items
        return ()

    def to_json(self, *, lazy: bool = False) -> dict[str, Any]:
        """`lazy`: each section's items as an iterator, encoded as they are written."""

        def items(section: Section) -> Iterable[dict[str, Any]]:
            encoded = (i.to_json() for i in section.items)
            return encoded if lazy else list(encoded)

        return {
            "order": [HELD, *RISK_ORDER],
            "counts": self.counts(),
            "summary": list(self.summary),
            "sections": [
                {
                    "class": s.risk,
                    "title": s.title,
                    "count": len(s.items),
                    "notes": list(s.notes),
                    "items": items(s),
                }
                for s in self.sections
            ],
        }


# ------------------------------------------------------------------ building


@dataclass
class _Names:
    """People and groups by ref, as the reviewer knows them."""

    people: dict[str, tuple[str, str]]
    groups: dict[str, str]

    def person(self, ref: str) -> str:
        name, _ = self.people.get(ref, ("", ""))
        return f"{name} ({ref})" if name else ref

    def person_with_email(self, ref: str) -> str:
        name, email = self.people.get(ref, ("", ""))
        text = name or ref
        return f"{text} <{email}>" if email else text

    def group(self, ref: str) -> str:
        return self.groups.get(ref) or ref


def _names(plan: Plan, desired: Desired | None) -> _Names:
    refs: set[str] = set()
    for op in plan.operations:
        if isinstance(op, GroupLinks):
            refs.update(op.users)
        else:
            refs.add(op.ref)
    people: dict[str, tuple[str, str]] = {}
    groups: dict[str, str] = {}
    if desired is not None:
        users = desired.users
        if len(users) and "name" in users:
            part = users.loc[users.index.intersection(list(refs)), ["name", "email"]]
            for ref, name, email in zip(part.index, part["name"], part["email"], strict=True):
                people[str(ref)] = (str(name), str(email))
        if len(desired.groups) and "name" in desired.groups:
            groups.update({str(k): str(v) for k, v in desired.groups["name"].items()})
    for op in plan.operations:
        if isinstance(op, ArchiveUser | DeactivateUser) and op.who is not None:
            people[op.ref] = (op.who.name, op.who.email)
        elif isinstance(op, CreateGroup | RenameGroup):
            groups[op.ref] = op.name
        elif isinstance(op, GroupLinks) and op.group_name:
            groups.setdefault(op.ref, op.group_name)
    return _Names(people, groups)


def _shown(value: str, kind: str = "") -> str:
    """A value as HR reads it: yes/no for a boolean, a date without its midnight."""
    if kind == "boolean" and value in ("true", "false"):
        return "yes" if value == "true" else "no"
    if kind == "datetime" and value.endswith("T00:00:00+00:00"):
        value = value[: -len("T00:00:00+00:00")]
    text = value.replace("\n", ", ")
    return f"'{text}'" if text else "(empty)"


def _change_line(change: Change, kind: str = "") -> str:
    return f"{change.field}: {_shown(change.old, kind)} → {_shown(change.new, kind)}"


def _why(op: ArchiveUser | DeactivateUser) -> str:
    who = op.who
    if who is None:
        return op.reason
    if op.reason == "end date passed":
        return f"end date {who.since}" if who.since else "end date passed"
    if op.reason.startswith("filtered out by"):
        text = f"{op.reason}, since {who.since}" if who.since else op.reason
    else:
        text = f"gone from the sources since {who.since}" if who.since else op.reason
    parts = [f"missing {plural(who.missing_runs, 'run')}"] if who.missing_runs else []
    if who.grace:
        parts.append(f"grace of {who.grace} used")
    return f"{text} ({'; '.join(parts)})" if parts else text


def _keeps(desired: Desired | None, frame: str) -> Counter[str]:
    if desired is None:
        return Counter()
    pairs = getattr(desired, frame)
    if not len(pairs):
        return Counter()
    return Counter(str(g) for g in pairs["group_ref"])


def build_review(plan: Plan, desired: Desired | None = None) -> Review:
    """The plan regrouped by risk, with names, words and summaries (see module doc)."""
    names = _names(plan, desired)
    items: dict[str, list[Item]] = {risk: [] for risk in RISK_ORDER}

    # Memberships and manager links, merged per group (the plan chunks long lists).
    links: dict[tuple[Kind, str], list[str]] = {}
    for op in plan.operations:
        if isinstance(op, GroupLinks):
            links.setdefault((op.kind, op.ref), []).extend(op.users)
    removed_from: dict[str, list[str]] = {}
    added_to: dict[str, list[str]] = {}
    for (kind, group), users in links.items():
        for user in users:
            if kind == Kind.REMOVE_MEMBERS:
                removed_from.setdefault(user, []).append(group)
            elif kind == Kind.ADD_MEMBERS:
                added_to.setdefault(user, []).append(group)
    movers = {u: (removed_from[u], added_to[u]) for u in removed_from if u in added_to}

    joining = _joining(plan)
    first = _first_values(plan, joining)
    for op in plan.operations:
        _item_of(op, names, items, joining, first)
    items[OVERWRITES], followed = _moved_values(items[OVERWRITES], movers, names)

    members_after = _keeps(desired, "memberships")
    managers_after = _keeps(desired, "managers")
    summary_removals: list[tuple[int, int, str]] = []
    for (kind, group), users in links.items():
        manager = kind in (Kind.ADD_MANAGERS, Kind.REMOVE_MANAGERS)
        noun = "manager" if manager else "member"
        adds = kind in (Kind.ADD_MEMBERS, Kind.ADD_MANAGERS)
        after = (managers_after if manager else members_after)[group]
        listed = []
        for user in users:
            note = ""
            if not manager and user in movers:
                away, into = movers[user]
                others = into if not adds else away
                arrow = "moves to" if not adds else "moves from"
                note = f" ({arrow} {', '.join(names.group(g) for g in sorted(others))})"
            listed.append(names.person(user) + note)
        title = f"group {names.group(group)}"
        data: dict[str, Any] = {"group": names.group(group), "users": list(users), "after": after}
        if adds:
            text = f"gains {plural(len(users), noun)}, has {after} after"
            risk = JOINERS
        else:
            # Of those it has after, the ones it gains today were never kept: a group
            # losing one and gaining one "keeps 3" and "has 4 after", both true.
            gained = links.get((Kind.ADD_MANAGERS if manager else Kind.ADD_MEMBERS, group), [])
            kept = data["keeps"] = max(0, after - len(gained))
            text = f"loses {plural(len(users), noun)}, keeps {kept}"
            risk = REMOVALS
            sentence = f"{title} loses {plural(len(users), noun)} and keeps {kept}"
            if manager:
                sentence += " manager" + ("" if kept == 1 else "s")
            summary_removals.append((kept, -len(users), sentence))
        items[risk].append(
            Item(
                risk,
                str(kind),
                kind_words(kind),
                group,
                title,
                text,
                details=tuple(listed),
                data=data,
            )
        )

    # Moves: one line per person, and how many made the same move.
    move_counts: Counter[tuple[str, str]] = Counter()
    for user, (away, into) in sorted(movers.items()):
        before = ", ".join(sorted(names.group(g) for g in away))
        now = ", ".join(sorted(names.group(g) for g in into))
        move_counts[(before, now)] += 1
        items[MOVES].append(
            Item(
                MOVES,
                "move",
                "moves",
                user,
                names.person_with_email(user) + f" ({user})",
                f"{before} → {now}",
                details=tuple(_change_line(c) for c in followed.get(user, ())),
                data={
                    "from": sorted(away),
                    "to": sorted(into),
                    "values": {
                        c.field: {"old": c.old, "new": c.new} for c in followed.get(user, ())
                    },
                },
            )
        )

    summary: list[str] = []
    leavers = items[LEAVERS]
    if leavers:
        who = ", ".join(i.data.get("name") or i.ref for i in leavers[:5])
        more = f" and {len(leavers) - 5} more" if len(leavers) > 5 else ""
        verb = "leaves" if len(leavers) == 1 else "leave"
        summary.append(f"{plural(len(leavers), 'person', 'people')} {verb}: {who}{more}")
    summary += [s for _, _, s in sorted(summary_removals)]
    fields = Counter(str(i.data.get("field")) for i in items[OVERWRITES])
    if fields:
        each = ", ".join(f"{f} {n}" for f, n in sorted(fields.items()))
        total = sum(fields.values())
        summary.append(f"{plural(total, 'existing value')} overwritten ({each})")
    for (before, now), count in sorted(move_counts.items(), key=lambda kv: (-kv[1], kv[0])):
        verb = "moves" if count == 1 else "move"
        summary.append(f"{plural(count, 'person', 'people')} {verb} {before} → {now}")
    summary += _renames(plan, names, removed_from, added_to, members_after, desired)
    joined = Counter(op.kind for op in plan.operations)
    for kind in (Kind.CREATE_USER, Kind.RESTORE_USER, Kind.ADOPT_USER, Kind.CREATE_GROUP):
        if joined[kind]:
            summary.append(f"{joined[kind]} {kind_words(kind, joined[kind])}")

    kinds = _kinds(plan, joining)
    sections = tuple(
        Section(risk, TITLES[risk], tuple(items[risk])) for risk in RISK_ORDER if items[risk]
    )
    summary = [*_filtered_lines(plan), *_grace_lines(plan), *_discarded_lines(plan), *summary]
    if plan.held:
        held, said = _held_section(plan, desired)
        return Review((*said, *summary), (held, *sections), kinds)
    return Review(tuple(summary), sections, kinds)


def _joining(plan: Plan) -> set[str]:
    """People the plan brings in (created, taken over or restored)."""
    return {
        op.ref for op in plan.operations if isinstance(op, CreateUser | AdoptUser | RestoreUser)
    }


def _first_values(plan: Plan, joining: set[str]) -> dict[str, list[tuple[str, str, str]]]:
    """A joiner's first profile values as (field, value, shown), by ref: they belong to
    the "joins" entry, not to a second entry of their own, so a reviewer reads one
    line per new person with what they get."""
    first: dict[str, list[tuple[str, str, str]]] = {}
    for op in plan.operations:
        if isinstance(op, SetExtraValues) and op.ref in joining:
            types = {v.category_ref: v.category_type for v in op.values}
            first.setdefault(op.ref, []).extend(
                (c.field, c.new, _shown(c.new, types.get(c.field, "")))
                for c in op.changes
                if not c.old
            )
    return first


def _kinds(plan: Plan, joining: set[str]) -> tuple[tuple[str, int], ...]:
    """Operations per kind, in words; a new person's first profile values are counted
    as such, not among the people whose profile fields changed."""
    first = sum(1 for op in plan.operations if isinstance(op, SetExtraValues) and op.ref in joining)
    out: list[tuple[str, int]] = []
    for kind, count in plan.counts().items():
        if kind == Kind.SET_VALUES and first:
            if count > first:
                out.append((kind_words(kind, count - first), count - first))
            out.append((_FIRST_VALUES[first != 1], first))
        else:
            out.append((kind_words(kind, count), count))
    return tuple(out)


_FIRST_VALUES = ("new person's profile fields set", "new people's profile fields set")


def _value_lines(values: Iterable[tuple[str, str, str]]) -> tuple[str, ...]:
    return tuple(f"{field}: {shown}" for field, _, shown in values)


def _values_data(data: dict[str, Any], values: Iterable[tuple[str, str, str]]) -> dict[str, Any]:
    """An entry's data, with the joiner's first values when there are any."""
    given = {field: value for field, value, _ in values}
    return {**data, "values": given} if given else data


def _moved_values(
    overwrites: list[Item], movers: Mapping[str, tuple[list[str], list[str]]], names: _Names
) -> tuple[list[Item], dict[str, list[Change]]]:
    """A move's own value: a department column that names the group as well changes
    with the move ('HR' → 'ICT' beside group HR → group ICT). Said once, in the move,
    rather than again as a value overwritten; any other overwrite stays where it is."""
    followed: dict[str, list[Change]] = {}
    kept = []
    for item in overwrites:
        move = movers.get(item.ref)
        if move is not None and item.data.get("field") is not None:
            away = {names.group(g).casefold() for g in move[0]}
            into = {names.group(g).casefold() for g in move[1]}
            old, new = str(item.data.get("old", "")), str(item.data.get("new", ""))
            if old.casefold() in away and new.casefold() in into:
                change = Change(str(item.data["field"]), old, new, item.origin)
                followed.setdefault(item.ref, []).append(change)
                continue
        kept.append(item)
    return kept, followed


def _filtered_lines(plan: Plan) -> list[str]:
    """People synced today whom a mapping filter drops, by name: a row cut short or a
    status column emptied looks like this, and only a count would hide who leaves."""
    return _named(
        f"{plural(len(plan.filtered_out), 'synced person', 'synced people')} filtered out "
        "by the mapping: will leave (at this run, or once the leaver grace has passed):",
        [f"{ref}: {why}: will leave" for ref, why in plan.filtered_out],
    )


def _grace_lines(plan: Plan) -> list[str]:
    """People missing from the export but within the leaver grace: nothing happens to
    them today, and that is exactly when a reviewer can still say they did not leave."""
    filtered = {ref for ref, _ in plan.filtered_out}
    return _named(
        f"{plural(len(plan.in_grace), 'person', 'people')} missing from today's sources, "
        "within the leaver grace:",
        [
            f"{ref}: {when}" + (" (filtered out, above)" if ref in filtered else "")
            for ref, when in plan.in_grace
        ],
    )


def _discarded_lines(plan: Plan) -> list[str]:
    """Standing discards, each named with who decided and since when: a reviewer must
    see that someone the export calls gone is kept on purpose, and by whom."""
    entries = []
    for item in plan.discarded:
        kind, person, group = item.key
        what = f"{kind} {person}" + (f" in group {group}" if group else "")
        entries.append(f"discarded: {what}, {item.reason} (since {item.since[:10]})")
    return _named(
        f"{plural(len(plan.discarded), 'change')} discarded earlier, set aside while the "
        "sources ask for them (`pluvo-sync release REF --reason TEXT` applies one):",
        entries,
    )


def _named(heading: str, entries: list[str]) -> list[str]:
    """A summary heading and its first entries, one per line (none: nothing at all)."""
    if not entries:
        return []
    lines = [heading, *(f"  {entry}" for entry in entries[:DISCARDS_SHOWN])]
    if len(entries) > DISCARDS_SHOWN:
        lines.append(f"  … and {len(entries) - DISCARDS_SHOWN} more (see the JSON report)")
    return lines


def _held_section(plan: Plan, desired: Desired | None) -> tuple[Section, list[str]]:
    """The held changes, reviewed like a plan of their own (riskiest first, named), in
    one section with why they are held; and the summary lines that lead the plan."""
    inner = build_review(Plan(operations=tuple(h.operation for h in plan.held)), desired)
    reasons: dict[tuple[str, str], str] = {}
    for item in plan.held:
        kind, person, group = item.key
        reasons.setdefault((kind, group or person), item.reason)
    items = tuple(
        replace(
            item,
            risk=HELD,
            data={**item.data, "class": item.risk, "held": reasons.get((item.kind, item.ref), "")},
        )
        for section in inner.sections
        for item in section.items
    )
    classes = Counter(h.risk for h in plan.held)
    each = ", ".join(f"{n} {risk}" for risk, n in classes.items())
    said = [
        f"{plural(len(plan.held), 'change')} held for release, not applied ({each}): "
        "`pluvo-sync held` lists them, `pluvo-sync release REF --reason TEXT` applies them",
        *(f"held: {line}" for line in inner.summary),
    ]
    why = sorted({h.reason for h in plan.held})
    notes = tuple(f"why: {reason}" for reason in why[:5])
    if len(why) > 5:
        notes += (f"… and {len(why) - 5} other reasons (see `pluvo-sync held`)",)
    return Section(HELD, TITLES[HELD], items, notes), said


def _renames(
    plan: Plan,
    names: _Names,
    removed_from: Mapping[str, list[str]],
    added_to: Mapping[str, list[str]],
    members_after: Counter[str],
    desired: Desired | None,
) -> list[str]:
    """A department renamed in HR looks like a new group plus an old one emptied: the
    plan does exactly that (the old group stays in Pluvo, empty), so it is said aloud."""
    new_groups = {op.ref for op in plan.operations if isinstance(op, CreateGroup)}
    if not new_groups:
        return []
    wanted = set(desired.groups.index) if desired is not None else set()
    leaving: dict[str, set[str]] = {}
    for user, groups in removed_from.items():
        for group in groups:
            leaving.setdefault(group, set()).add(user)
    out = []
    for old, users in sorted(leaving.items()):
        if members_after[old] or old in wanted:
            continue
        into = Counter(g for u in users for g in added_to.get(u, ()) if g in new_groups)
        if not into:
            continue
        new, count = into.most_common(1)[0]
        if count * 2 >= len(users):
            out.append(
                f"department renamed? new group {names.group(new)}, old group "
                f"{names.group(old)} left empty ({count} of its {len(users)} moved there)"
            )
    return out


def _item_of(
    op: Operation,
    names: _Names,
    items: dict[str, list[Item]],
    joining: set[str],
    first: Mapping[str, list[tuple[str, str, str]]],
) -> None:
    """`op` as the reviewer's entries; a joiner's first values (`first`) go with them."""
    words = kind_words(op.kind)
    if isinstance(op, ArchiveUser | DeactivateUser):
        who = op.who
        name = who.name if who is not None else ""
        email = who.email if who is not None else ""
        subject = f"{name or op.ref} <{email}>" if email else (name or op.ref)
        subject += f" ({op.ref})" if name else ""
        groups = ", ".join(who.groups) if who is not None else ""
        action = "archived" if isinstance(op, ArchiveUser) else "deactivated"
        where = f"; was in {groups}" if groups else ""
        items[LEAVERS].append(
            Item(
                LEAVERS,
                str(op.kind),
                words,
                op.ref,
                subject,
                f"{action}, {_why(op)}{where}",
                data={
                    "name": name,
                    "email": email,
                    "groups": list(who.groups) if who is not None else [],
                    "reason": op.reason,
                    "since": who.since if who is not None else "",
                    "missing_runs": who.missing_runs if who is not None else 0,
                    "grace": who.grace if who is not None else "",
                },
            )
        )
    elif isinstance(op, UpdateUser | SetExtraValues | RestoreUser):
        subject = names.person_with_email(op.ref) + f" ({op.ref})"
        types = (
            {v.category_ref: v.category_type for v in op.values}
            if isinstance(op, SetExtraValues)
            else {}
        )
        overwrites = [c for c in op.changes if c.old and c.field != "archived"]
        added = [c for c in op.changes if not c.old]
        if isinstance(op, RestoreUser):
            items[JOINERS].append(
                Item(
                    JOINERS,
                    str(op.kind),
                    words,
                    op.ref,
                    subject,
                    "returns: unarchived in Pluvo",
                    details=(
                        *(_change_line(c) for c in op.changes if c.field != "archived"),
                        *_value_lines(first.get(op.ref, ())),
                    ),
                    data=_values_data({}, first.get(op.ref, ())),
                )
            )
            return
        for change in overwrites:
            items[OVERWRITES].append(
                Item(
                    OVERWRITES,
                    str(op.kind),
                    words,
                    op.ref,
                    subject,
                    _change_line(change, types.get(change.field, "")),
                    origin=change.origin,
                    data={"field": change.field, "old": change.old, "new": change.new},
                )
            )
        if added and op.ref not in joining:
            items[JOINERS].append(
                Item(
                    JOINERS,
                    str(op.kind),
                    "new values",
                    op.ref,
                    subject,
                    ", ".join(f"{c.field} {_shown(c.new, types.get(c.field, ''))}" for c in added),
                    origin=added[0].origin,
                    data={"values": {c.field: c.new for c in added}},
                )
            )
    elif isinstance(op, CreateUser | AdoptUser):
        fields = op.fields
        subject = f"{fields.name or op.ref} <{fields.email}> ({op.ref})"
        values = f"language {fields.language or '-'}, roles {fields.roles or '-'}"
        if isinstance(op, AdoptUser):
            text = f"{words} (matched by {op.matched_by}; {values})"
        else:
            text = f"joins ({values})"
        origin = op.changes[0].origin if op.changes else ""
        items[JOINERS].append(
            Item(
                JOINERS,
                str(op.kind),
                words,
                op.ref,
                subject,
                text,
                details=_value_lines(first.get(op.ref, ())),
                origin=origin,
                data=_values_data(
                    {"name": fields.name, "email": fields.email}, first.get(op.ref, ())
                ),
            )
        )
    elif isinstance(op, CreateGroup):
        items[JOINERS].append(
            Item(JOINERS, str(op.kind), words, op.ref, f"group {op.name} ({op.ref})", "new group")
        )
    elif isinstance(op, RenameGroup):
        old = op.changes[0].old if op.changes else ""
        items[MOVES].append(
            Item(
                MOVES,
                str(op.kind),
                words,
                op.ref,
                f"group {op.name}",
                f"renamed {_shown(old)} → {_shown(op.name)}",
                data={"old": old, "new": op.name},
            )
        )


def review_of(report: Report) -> Review:
    """The report's plan as its reviewer reads it, built once per plan."""
    return report.derived("review", build_review)


def report_json(report: Report, *, lazy: bool = False) -> dict[str, Any]:
    """The JSON report with its `review` section."""
    review = None if report.plan is None else review_of(report).to_json(lazy=lazy)
    return report.to_json(lazy=lazy, review=review)
