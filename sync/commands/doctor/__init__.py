"""`pluvo-sync doctor`: everything a run depends on, checked before a run needs it.

The integration engineer runs this once after setting up and whenever a run fails
for a reason outside the data. Each check is one line with a remedy, and every
check runs even when an earlier one failed (except those that cannot: without a
valid config there is nothing to check), so one invocation shows every problem.
It reads sources and Pluvo but never writes to either, and never creates or
migrates the state store.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

import click

from sync.commands.doctor.checks import CheckResult, Status, fail, ok, skip
from sync.commands.doctor.local import check_mappings, check_sources, check_state
from sync.commands.doctor.remote import check_pluvo
from sync.config import Config, load_config
from sync.errors import ConfigError, ExitCode
from sync.logs import redact, register_secret

LATER_CHECKS = (
    "sources",
    "token",
    "scopes",
    "schema",
    "membership results",
    "extra categories",
    "state store",
)

_TAGS = {
    Status.OK: ("[ ok ]", "green"),
    Status.FAIL: ("[FAIL]", "bold red"),
    Status.WARN: ("[warn]", "yellow"),
    Status.SKIP: ("[skip]", "dim"),
}


def collect(config_file: Path | None) -> list[CheckResult]:
    """Every check's result, in checklist order."""
    try:
        config = load_config(config_file)
    except ConfigError as exc:
        hint = exc.hint or "fix the file; `pluvo-sync init DIR` writes one documenting every key"
        return [fail("config", exc.message, hint)] + [
            skip(name, "config invalid") for name in LATER_CHECKS
        ]
    register_secret(config.pluvo.client_secret.get_secret_value())
    return collect_for(config, config_file)


def collect_for(config: Config, config_file: Path | None = None) -> list[CheckResult]:
    where = f" ({config_file})" if config_file else ""
    results = [ok("config", f"valid{where}: {len(config.sources)} source(s)")]
    mapping_results, specs = check_mappings(config)
    results += mapping_results
    results += check_sources(config, specs)
    results += asyncio.run(check_pluvo(config, specs))
    results.append(check_state(config))
    return results


def exit_code(results: Sequence[CheckResult]) -> int:
    return int(ExitCode.FAILED if any(r.failed for r in results) else ExitCode.OK)


def render_lines(result: CheckResult, *, verbose: bool = False) -> list[str]:
    """Plain text of one check: the remedy after an em dash, details indented below.

    Details of a passing check (e.g. each validated operation) only with -v.
    """
    tag, _ = _TAGS[result.status]
    text = f"{tag} {result.name}: {result.summary}"
    if result.remedy and result.status in (Status.FAIL, Status.WARN):
        text += f" — {result.remedy}"
    details = result.details if verbose or result.status is not Status.OK else ()
    return [redact(text), *(redact(f"       {d}") for d in details)]


def summary(results: Sequence[CheckResult]) -> str:
    failed = sum(r.failed for r in results)
    return "doctor: all checks passed" if not failed else f"doctor: {failed} check(s) failed"


def render(results: Sequence[CheckResult], *, verbose: bool = False) -> str:
    lines = [line for r in results for line in render_lines(r, verbose=verbose)]
    return "\n".join([*lines, "", summary(results)])


def _print(results: Sequence[CheckResult], *, verbose: bool) -> None:
    if not sys.stdout.isatty():
        click.echo(render(results, verbose=verbose))
        return
    from rich.console import Console
    from rich.markup import escape

    console = Console(highlight=False)
    for result in results:
        _, style = _TAGS[result.status]
        first, *rest = render_lines(result, verbose=verbose)
        tag, body = first[:6], first[6:]
        console.print(f"[{style}]{escape(tag)}[/]{escape(body)}", soft_wrap=True)
        for line in rest:
            console.print(escape(line), style="dim", soft_wrap=True)
    console.print()
    console.print(summary(results), style="bold red" if exit_code(results) else "bold green")


def run_doctor(config_file: Path | None, *, verbose: bool) -> int:
    """Run every check, print the checklist, return 0 when all passed, else 1."""
    results = collect(config_file)
    _print(results, verbose=verbose)
    return exit_code(results)
