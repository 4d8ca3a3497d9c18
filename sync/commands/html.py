"""The plan or run as one self-contained HTML page, for people who do not read terminals.

One file, mailed or opened from the report folder: styles and the small filtering
script are inline, nothing is fetched (the page's Content-Security-Policy forbids
any connection, and allows only the one script whose hash it names). Every value
that comes from HR data (names, emails, departments, reasons) is escaped: a name
like `<script>` or `=HYPERLINK(...)` is shown as the text it is.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from html import escape
from pathlib import Path
from typing import Any

from sync.commands.review import HELD, RISK_ORDER, TITLES, Review, plural, review_of
from sync.core.report import Report
from sync.files import write_private
from sync.model import WARNING, is_warning, shown_reason
from sync.state.journal import RunMode

SCRIPT = """
(function () {
  var search = document.getElementById("search");
  var boxes = document.querySelectorAll("input[data-risk]");
  function apply() {
    var needle = search.value.toLowerCase();
    var shown = {};
    boxes.forEach(function (b) { shown[b.dataset.risk] = b.checked; });
    document.querySelectorAll("section[data-risk]").forEach(function (s) {
      var on = shown[s.dataset.risk] !== false;
      s.hidden = !on;
      var visible = 0;
      s.querySelectorAll("tbody tr").forEach(function (row) {
        var hit = row.textContent.toLowerCase().indexOf(needle) >= 0;
        row.hidden = !hit;
        if (hit) { visible += 1; }
      });
      var count = s.querySelector(".visible");
      if (count) { count.textContent = String(visible); }
    });
  }
  search.addEventListener("input", apply);
  boxes.forEach(function (b) { b.addEventListener("change", apply); });
})();
"""

STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2rem; color: #1d1d1f; }
h1 { font-size: 1.5rem; margin-bottom: .2rem; }
.meta { color: #555; margin-top: 0; }
.counts { display: flex; gap: .8rem; flex-wrap: wrap; margin: 1rem 0; }
.count { border: 1px solid #ccc; border-radius: 6px; padding: .5rem .9rem; min-width: 7rem; }
.count b { display: block; font-size: 1.6rem; }
.count.held { border-color: #5b2a86; background: #f3ecfa; }
.count.leavers { border-color: #b3261e; background: #fdecea; }
.count.removals { border-color: #c26a00; background: #fff4e5; }
.count.overwrites { border-color: #8a6d00; background: #fffbe6; }
.stopped { border: 2px solid #b3261e; padding: .6rem 1rem; background: #fdecea; }
table { border-collapse: collapse; width: 100%; margin-bottom: 1.5rem; }
th, td { text-align: left; vertical-align: top; padding: .3rem .6rem;
         border-bottom: 1px solid #e3e3e3; }
th { background: #f4f4f6; }
td.details { white-space: pre-wrap; color: #444; }
.filters { position: sticky; top: 0; background: #fff; padding: .5rem 0; }
.filters label { margin-right: 1rem; }
#search { width: 20rem; padding: .3rem; }
"""


def _csp() -> str:
    digest = base64.b64encode(hashlib.sha256(SCRIPT.encode("utf-8")).digest()).decode("ascii")
    return (
        "default-src 'none'; style-src 'unsafe-inline'; "
        f"script-src 'sha256-{digest}'; img-src 'none'; connect-src 'none'; "
        "form-action 'none'; base-uri 'none'"
    )


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _table(
    head: Iterable[str], rows: Iterable[Iterable[object]], *, details_at: int = -1
) -> Iterator[str]:
    """A table, row by row: a first load's has a row per person."""
    yield "<table><thead><tr>" + "".join(f"<th>{_e(h)}</th>" for h in head)
    yield "</tr></thead><tbody>"
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            css = ' class="details"' if i == details_at else ""
            cells.append(f"<td{css}>{_e(cell)}</td>")
        yield "<tr>" + "".join(cells) + "</tr>"
    yield "</tbody></table>"


Part = str | Iterator[str]
"""A line of the page, or a table given piece by piece (written without separators)."""


def render_html(report: Report, review: Review | None = None) -> str:
    """The whole page: counts per class, the risky changes first, rejected rows last."""
    return "".join(_pieces(report, review))


def _pieces(report: Report, review: Review | None) -> Iterator[str]:
    for part in _page(report, review):
        if isinstance(part, str):
            yield part + "\n"
        else:
            yield from part
            yield "\n"


def _page(report: Report, review: Review | None) -> Iterator[Part]:
    plan = report.plan
    if review is None and plan is not None:
        review = review_of(report)
    title = "Plan (dry run, nothing sent)" if report.mode == RunMode.PLAN else "Run report"
    yield from [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_e(_csp())}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>pluvo-sync {_e(title)} {_e(report.run_id)}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>pluvo-sync: {_e(title)}</h1>",
        f'<p class="meta">{_e(_said(report))}</p>',
    ]
    if report.guards:
        yield '<div class="stopped"><b>Stopped by safety guard(s), nothing applied:</b><ul>'
        yield from [f"<li>{_e(g)}</li>" for g in report.guards]
        yield "</ul></div>"
    if report.holding:
        yield '<div class="stopped"><b>Held by safety guard(s); the rest applies:</b><ul>'
        yield from [f"<li>{_e(g)}</li>" for g in report.holding]
        yield "</ul></div>"
    if report.message:
        yield f"<p>{_e(report.message)}</p>"
    counts = review.counts() if review is not None else {}
    rejected = report.desired.rejections if report.desired is not None else None
    yield '<div class="counts">'
    for risk in (HELD, *RISK_ORDER) if counts.get(HELD) else RISK_ORDER:
        yield (f'<div class="count {risk}"><b>{counts.get(risk, 0)}</b>{_e(TITLES[risk])}</div>')
    # The same numbers as the text's "Rejected rows: N; M warning(s)": a warning's row
    # is synced, so it is not counted as rejected.
    warnings = 0 if rejected is None else int(is_warning(rejected).sum())
    yield f'<div class="count rejected"><b>{report.rejected}</b>Rejected rows</div>'
    if warnings:
        yield f'<div class="count warning"><b>{warnings}</b>Warnings</div>'
    yield "</div>"
    if plan is not None and review is not None:
        yield (
            f"<p>{plural(plan.desired_users, 'person', 'people')} in today's sources; "
            f"{plural(plan.state_users, 'person', 'people')} synced before.</p>"
        )
        if review.summary:
            yield "<h2>In short</h2><ul>"
            yield from [f"<li>{_e(line)}</li>" for line in review.summary]
            yield "</ul>"
        yield '<div class="filters"><input id="search" type="search" '
        yield 'placeholder="Filter by name, email, group..." aria-label="Filter"> '
        for section in review.sections:
            yield (
                f'<label><input type="checkbox" checked data-risk="{_e(section.risk)}"> '
                f"{_e(section.title)}</label>"
            )
        yield "</div>"
        for section in review.sections:
            yield (
                f'<section data-risk="{_e(section.risk)}"><h2>{_e(section.title)} '
                f'(<span class="visible">{len(section.items)}</span> of '
                f"{len(section.items)})</h2>"
            )
            yield from [f"<p>{_e(note)}</p>" for note in section.notes]
            yield (
                _table(
                    ("Who / what", "Change", "Details", "Source"),
                    ((i.subject, i.text, "\n".join(i.details), i.origin) for i in section.items),
                    details_at=2,
                )
            )
            yield "</section>"
    if rejected is not None and len(rejected):
        title = f"Rejected rows ({report.rejected})"
        if warnings:
            title += f" and warnings ({warnings})"
        yield f'<section data-risk="rejected"><h2>{title}: '
        yield f'<span class="visible">{len(rejected)}</span> of {len(rejected)} shown</h2>'
        yield "<p>Rejected rows are not synced; fix them in the HR system. "
        yield "A warning's row is synced without the one link it names.</p>"
        records = rejected.to_dict(orient="records")
        yield (
            _table(
                ("File", "Line", "Column", "Ref", "Reason", "Since"),
                (
                    (
                        r["file"],
                        r["line"],
                        r.get("column", ""),
                        r.get("ref", ""),
                        shown_reason(r),
                        _since(report, r),
                    )
                    for r in records
                ),
            )
        )
        yield "</section>"
    ex = report.execution
    if ex is not None:
        yield "<h2>Applied</h2>"
        yield _table(("Kind", "Operations"), sorted(ex.done.items()))
        if ex.failed:
            yield "<h2>Failed (retried by the next run)</h2>"
            yield (
                _table(
                    ("Kind", "Ref", "Class", "Error"),
                    ((f.kind, f.ref, f.error_class, f.error) for f in ex.failed),
                )
            )
    yield from _for_the_administrator(report)
    yield f"<script>{SCRIPT}</script></body></html>"


def write_html(report: Report, path: Path) -> Path:
    """The page, readable by its owner only: it names people and their emails."""
    write_private(path, _pieces(report, None))
    return path


def _since(report: Report, row: Mapping[Any, Any]) -> str:
    """Whether the last run rejected the row as well (README, "Known rejections")."""
    if row.get("severity") == WARNING:
        return ""
    return "new" if report.is_new_rejection(row) else "the last run"


def local_time(when: datetime) -> str:
    """A time as the reader's clock shows it: the machine's zone, named, to the minute."""
    return when.astimezone().strftime("%Y-%m-%d %H:%M %Z")


def _said(report: Report) -> str:
    """The run in one sentence a reviewer reads (the codes are for the administrator)."""
    when = local_time(report.started_at)
    if report.mode == RunMode.PLAN:
        text = f"Planned {when}; nothing was sent to Pluvo."
    else:
        status = _STATUS_WORDS.get(str(report.status), str(report.status))
        text = f"{str(report.mode).capitalize()} started {when}: {status}."
    if report.rejected:
        text += f" {plural(report.rejected, 'row')} rejected."
    return text


_STATUS_WORDS = {
    "succeeded": "everything planned was applied",
    "partial": "some changes failed and are retried by the next run",
    "held": "the safe changes were applied; the risky ones wait for a release",
    "failed": "failed",
    "guarded": "stopped by a safety guard before anything was applied",
    "aborted": "interrupted; the next run settles it",
}


def _for_the_administrator(report: Report) -> Iterator[str]:
    """Run id, exit code, operation counts, files: what an engineer looks up, folded."""
    rows: list[tuple[str, object]] = [
        ("Run", report.run_id),
        ("Command", str(report.mode)),
        ("Status", f"{report.status} (exit {int(report.exit_code)})"),
        ("Started", report.started_at.isoformat(timespec="seconds")),
    ]
    if report.plan is not None:
        rows.append(("Operations", len(report.plan)))
        rows.extend((kind, count) for kind, count in report.plan.counts().items())
    if report.report_file is not None:
        rows.append(("JSON report", report.report_file))
    yield "<details><summary>For the administrator</summary>"
    yield from _table(("", ""), rows)
    yield "</details>"
