"""The thin command line: parse, set up logging, call the library, map errors to exit codes.

Expected errors (`SyncError`) end as one line on stderr and the contract's exit code;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from sync.errors import ExitCode, SyncError
from sync.logs import redact, setup_logging

F = TypeVar("F", bound=Callable[..., Any])


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    """Global options may come before or after the command: the last one given wins."""
    settings = ctx.find_root().ensure_object(dict)
    if value not in (None, False) or param.name not in settings:
        settings[str(param.name)] = value


def _global_options(func: F) -> F:
    """-c, -v, -q and --log-format, accepted by the group and by every command."""
    options = (
        click.option(
            "-c",
            "--config",
            "config_file",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            expose_value=False,
            callback=_remember,
            help="Config file (default: $PLUVO_SYNC_CONFIG or ./config.yaml).",
        ),
        click.option(
            "-v",
            "--verbose",
            is_flag=True,
            expose_value=False,
            callback=_remember,
            help="Debug logging and every change in plans.",
        ),
        click.option(
            "-q",
            "--quiet",
            is_flag=True,
            expose_value=False,
            callback=_remember,
            help="Print nothing unless something changed, failed or was rejected (for cron).",
        ),
        click.option(
            "--log-format",
            type=click.Choice(["human", "json"]),
            default=None,
            expose_value=False,
            callback=_remember,
            help="Log format on stderr (default: from config, else human).",
        ),
    )
    for option in reversed(options):
        func = option(func)
    return func


def _settings() -> dict[str, Any]:
    return click.get_current_context().find_root().ensure_object(dict)


def _guarded(func: F) -> F:
    """Turn expected errors into one clear line and the contract's exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _setup_logging()
        try:
            result = func(*args, **kwargs)
        except SyncError as exc:
            click.echo(f"pluvo-sync: error: {redact(str(exc))}", err=True)
            sys.exit(int(exc.exit_code))
        except KeyboardInterrupt:
            click.echo("pluvo-sync: interrupted", err=True)
            sys.exit(int(ExitCode.FAILED))
        if isinstance(result, int):
            sys.exit(result)
        return result

    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@_global_options
@click.version_option(package_name="pluvo-sync")
def cli() -> None:
    """Keep a Pluvo organisation in line with an HR system."""


def _setup_logging(config: Any = None) -> None:
    """Logging as the global options and the config say; the options win."""
    settings = _settings()
    level = config.logging.level if config is not None else "INFO"
    if settings.get("verbose"):
        level = "DEBUG"
    fmt = settings.get("log_format") or (config.logging.format if config is not None else "human")
    setup_logging(level, fmt)


def _load(ctx: click.Context) -> Any:
    from sync.config import load_config
    from sync.logs import register_secret

    config = load_config(ctx.obj.get("config_file"))
    register_secret(config.pluvo.client_secret.get_secret_value())
    _setup_logging(config)
    return config


@cli.command()
@_global_options
@click.option("--port", type=int, default=8765, show_default=True, help="0 picks a free port.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Loopback unless told.")
@click.option(
    "--state-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Persist the sandbox's data to this JSON file.",
)
@click.option("--latency", type=float, default=0.0, help="Seconds added to every request.")
@click.option("--error-rate", type=float, default=0.0, help="Share of requests answered 5xx.")
@click.option("--throttle-rate", type=float, default=0.0, help="Share answered 429.")
@click.option("--rate-limit", type=float, default=None, help="Hard requests/second (429 past it).")
@click.option("--drop-rate", type=float, default=0.0, help="Share of connections dropped.")
@click.option("--token-lifetime", type=float, default=86400.0, help="Seconds a token lives.")
@click.option(
    "--membership-delay",
    type=float,
    default=0.0,
    help="Seconds before membership changes become visible.",
)
@click.option(
    "--schema",
    "schema_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Serve another schema file (for testing doctor).",
)
@_guarded
def sandbox(**options: Any) -> int:
    """Serve the local Pluvo look-alike (token endpoint, GraphQL, fault injection)."""
    from sync.sandbox.server import serve_cli

    return serve_cli(config_file=_settings().get("config_file"), **options)


_GUARD_CHOICES = click.Choice(["all", "leavers", "changes", "source-shrink", "empty-source"])


def _override_option(help_text: str) -> Callable[[F], F]:
    def decorate(func: F) -> F:
        return click.option(
            "--override", "overrides", multiple=True, type=_GUARD_CHOICES, help=help_text
        )(func)

    return decorate


def _save_report(config: Any, report: Any, out: Path | None) -> None:
    import json

    from sync.files import write_private
    from sync.logs import redact
    from sync.model import write_rejections

    if out is None and report.mode != "run":
        return  # a plain `plan` writes nothing: no JSON to build
    text = redact(json.dumps(report.to_json(), indent=2, default=str, ensure_ascii=False))
    if out is not None:
        write_private(out, text)
    if report.mode == "run":
        path = config.report.dir / f"run-{report.run_id}.json"
        write_private(path, text)
        report.report_file = path
        desired = report.desired
        if desired is not None and not desired.rejections.empty:
            write_rejections(desired, config.report.dir / f"rejected-{report.run_id}.csv")


class _Progress:
    """A bar per phase on a terminal; a plain line per phase under cron."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.bar: Any = None
        self.task: Any = None
        self.phase: str | None = None

    def __call__(self, phase: str, done: int, total: int) -> None:
        if self.tty:
            from rich.progress import Progress

            if self.phase != phase:
                self.close()
                self.bar = Progress(transient=False)
                self.bar.start()
                self.task = self.bar.add_task(phase, total=total)
                self.phase = phase
            self.bar.update(self.task, completed=done)
        elif done == total:
            import logging

            logging.getLogger("sync").info("%s: %d/%d done", phase, done, total)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


@cli.command()
@_global_options
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), help="Write the plan as JSON."
)
@_override_option("Let this safety guard pass for this run (repeatable).")
@click.pass_context
@_guarded
def plan(ctx: click.Context, out: Path | None, overrides: tuple[str, ...]) -> int:
    """Dry run: read, map, diff and guard; print what would change. Sends no mutation."""
    from sync.commands.render import render_plan
    from sync.core import engine

    config = _load(ctx)
    report = engine.run(config, dry=True, overrides=overrides)
    _save_report(config, report, out)
    click.echo(render_plan(report, verbose=bool(ctx.obj.get("verbose"))))
    return int(report.exit_code)


@cli.command("run")
@_global_options
@_override_option("Let this safety guard pass for this run (repeatable).")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the JSON report here.",
)
@click.pass_context
@_guarded
def run_command(ctx: click.Context, overrides: tuple[str, ...], out: Path | None) -> int:
    """Plan, then apply: the cron command."""
    from sync.commands.render import render_plan, render_report
    from sync.core import engine
    from sync.core.apply import check_report_dir

    config = _load(ctx)
    check_report_dir(config.report.dir)
    progress = _Progress()
    try:
        report = engine.run(config, dry=False, overrides=overrides, progress=progress)
    finally:
        progress.close()
    _save_report(config, report, out)
    click.echo(render_plan(report, verbose=bool(ctx.obj.get("verbose"))))
    if report.guards:
        click.echo(f"pluvo-sync: error: {redact(report.message or '')}", err=True)
        return int(report.exit_code)
    click.echo("")
    click.echo(render_report(report))
    return int(report.exit_code)


@cli.command()
@_global_options
@click.option("--limit", default=10, show_default=True, help="Runs to show.")
@click.pass_context
@_guarded
def status(ctx: click.Context, limit: int) -> int:
    """The last runs, operations pending or failed, and the state store's counts."""
    from sync.commands import admin

    config = _load(ctx)
    click.echo(admin.status(config, limit=limit))
    return 0


@cli.command()
@_global_options
@click.argument("run_id", required=False)
@click.option("--failed", "only_failed", is_flag=True, help="Only failed operations.")
@click.pass_context
@_guarded
def history(ctx: click.Context, run_id: str | None, only_failed: bool) -> int:
    """The journal of a run (default: the last one): each operation, outcome and error."""
    from sync.commands import admin

    config = _load(ctx)
    click.echo(admin.history(config, run_id, only_failed=only_failed))
    return 0


@cli.command()
@_global_options
@click.option("--apply", "apply_changes", is_flag=True, help="Correct the drift the engine owns.")
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), help="Write the drift report as JSON."
)
@_override_option("Let this safety guard pass for --apply (repeatable).")
@click.pass_context
@_guarded
def reconcile(
    ctx: click.Context,
    apply_changes: bool,
    out: Path | None,
    overrides: tuple[str, ...],
) -> int:
    """Read live Pluvo and report drift from the desired state; --apply corrects it."""
    from sync.commands.reconcile import reconcile_command

    config = _load(ctx)
    return reconcile_command(
        config,
        apply=apply_changes,
        out=out,
        overrides=overrides,
        verbose=bool(ctx.obj.get("verbose")),
    )


@cli.command()
@_global_options
@click.pass_context
@_guarded
def doctor(ctx: click.Context) -> int:
    """Check config, sources, credentials, scopes, live schema and state store."""
    from sync.commands.doctor import run_doctor

    return run_doctor(ctx.obj.get("config_file"), verbose=bool(ctx.obj.get("verbose")))


@cli.group()
@_global_options
def db() -> None:
    """State store maintenance."""


@db.command("upgrade")
@_global_options
@click.pass_context
@_guarded
def db_upgrade(ctx: click.Context) -> int:
    """Apply the Alembic migrations to the state store."""
    from sync.state.store import StateStore, safe_url, upgrade

    config = _load(ctx)
    store = StateStore(config.state_url())
    try:
        before, after = upgrade(store.engine)
    finally:
        store.close()
    where = safe_url(config.state_url())
    if before == after:
        click.echo(f"{where}: already at revision {after}")
    else:
        click.echo(f"{where}: upgraded from {before or 'empty'} to {after}")
    return 0


@cli.command()
@_global_options
@click.option(
    "--dir",
    "workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo"),
    show_default=True,
    help="Where the demo keeps its files.",
)
@click.pass_context
@_guarded
def demo(ctx: click.Context, workdir: Path) -> int:
    """Run the whole engine on the bundled sample HR data against a local sandbox."""
    from sync.commands.demo import run_demo

    return run_demo(workdir, verbose=bool(ctx.obj.get("verbose")))


def main() -> None:
    cli(prog_name="pluvo-sync")
