"""Templates like `"dept-{department|slug}"`: literal text and column placeholders.

Parsed once at validation time so that a typo is a mapping-file error with its path,
not a surprise in the middle of a nightly run. `{{` and `}}` are literal braces.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

TEMPLATE_FILTERS = ("strip", "lower", "upper", "title", "slug")

_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")


class TemplateError(ValueError):
    pass


@dataclass(frozen=True)
class Placeholder:
    column: str
    filters: tuple[str, ...]


@dataclass(frozen=True)
class Template:
    parts: tuple[str | Placeholder, ...]

    @property
    def columns(self) -> list[str]:
        return list(dict.fromkeys(p.column for p in self.parts if isinstance(p, Placeholder)))


def parse_template(text: str) -> Template:
    parts: list[str | Placeholder] = []
    pos = 0
    for match in _TOKEN.finditer(text):
        if match.start() > pos:
            parts.append(text[pos : match.start()])
        token = match.group(0)
        pos = match.end()
        if token in ("{{", "}}"):
            parts.append(token[0])
            continue
        if token in ("{", "}"):
            raise TemplateError(f"unbalanced {token!r} at position {match.start()} (use {{{{ }}}})")
        column, *filters = (piece.strip() for piece in (match.group(1) or "").split("|"))
        if not column:
            raise TemplateError(f"empty placeholder at position {match.start()}")
        unknown = [f for f in filters if f not in TEMPLATE_FILTERS]
        if unknown:
            raise TemplateError(
                f"unknown filter {unknown[0]!r} (known: {', '.join(TEMPLATE_FILTERS)})"
            )
        parts.append(Placeholder(column, tuple(filters)))
    if pos < len(text):
        parts.append(text[pos:])
    merged: list[str | Placeholder] = []
    for part in parts:
        if isinstance(part, str) and merged and isinstance(merged[-1], str):
            merged[-1] += part
        else:
            merged.append(part)
    return Template(tuple(merged))
