"""The thin command line: parse, set up logging, call the library, map errors to exit codes.

Expected errors (`SyncError`) end as one line on stderr (a JSON object under JSON logs)
and the contract's exit code; anything else is a bug and keeps its traceback. Under
`--quiet` a command that changed, failed and rejected nothing prints nothing at all;
plan, run and reconcile end their logs with one `finished` event.
"""

from __future__ import annotations

import atexit
import functools
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from sync.collector import paused
from sync.errors import ExitCode, SyncError
from sync.logs import print_error, print_fatal, setup_logging

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
    return _guard(func, finished=False)


def _guarded_run(func: F) -> F:
    """`_guarded` for plan, run and reconcile, which end with one `finished` event (the
    report the command keeps with `_keep` gives its counts), and stop gracefully on
    SIGTERM or SIGINT (sync/stopping.py)."""
    return _guard(func, finished=True, graceful=True)


def _guard(func: F, *, finished: bool, graceful: bool = False) -> F:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _setup_logging()
        if graceful:
            from sync import stopping

            stopping.install()
        code: int = ExitCode.OK
        message: str | None = None
        try:
            result = func(*args, **kwargs)
        except SyncError as exc:
            code, message = int(exc.exit_code), str(exc)
            print_error(message, exit_code=code)
        except KeyboardInterrupt:
            code, message = int(ExitCode.FAILED), "interrupted"
            print_fatal("pluvo-sync: interrupted", exit_code=code)
        else:
            if not isinstance(result, int):
                return result
            code = result
        if finished:
            _finished(code, message)
        sys.exit(code)

    return wrapper  # type: ignore[return-value]


def _keep(report: Any) -> None:
    """The command's report, for the `finished` event."""
    _settings()["report"] = report


def _quiet() -> bool:
    return bool(_settings().get("quiet"))


def _finished(code: int, message: str | None) -> None:
    from sync.commands.finished import log_finished

    name = click.get_current_context().info_name or ""
    log_finished(_settings().get("report"), name, code, message)


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
    setup_logging(level, fmt, quiet=bool(settings.get("quiet")) and not settings.get("verbose"))


def _load(ctx: click.Context) -> Any:
    from sync.config import load_config
    from sync.logs import register_secret

    config = load_config(ctx.obj.get("config_file"))
    register_secret(config.pluvo.client_secret.get_secret_value())
    _setup_logging(config)
    return config


def _load_local(ctx: click.Context) -> Any:
    """The config without Pluvo's section: status and history work offline."""
    from sync.config import load_local_config

    config = load_local_config(ctx.obj.get("config_file"))
    _setup_logging(config)
    return config


def _display(waiting: str) -> Any:
    from sync.commands.terminal import RunDisplay
    from sync.logs import json_format

    return RunDisplay.for_terminal(waiting, quiet=_quiet(), json_logs=json_format())


def _echo(text: str, report: Any) -> None:
    """The plan or report on stdout; under --quiet only when it is worth a word."""
    if not _quiet() or report.noteworthy():
        click.echo(text)


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


def _new_file(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    """A file to write (--out, --html) must go into a folder that exists, checked before
    anything runs: a mistyped folder is refused (exit 2), never created, so a report of
    personal data never lands where nobody looks (as root, anywhere on the disk)."""
    if value is None:
        return None
    folder = value.parent
    if not folder.is_dir():
        raise click.BadParameter(
            f"the folder {folder} does not exist (it is not created: create it first, "
            "or name a file in a folder that exists)"
        )
    return value


def _remember_html(ctx: click.Context, param: click.Parameter, value: Path | None) -> None:
    ctx.find_root().ensure_object(dict)["html"] = _new_file(ctx, param, value)


_html_option = click.option(
    "--html",
    type=click.Path(dir_okay=False, path_type=Path),
    expose_value=False,
    callback=_remember_html,
    help="Also write a self-contained HTML report for people here.",
)


def _save_html(config: Any, report: Any) -> None:
    """The HTML report at --html, and for a run beside its JSON in the report folder."""
    target = _settings().get("html")
    kept = report.mode == "run" and report.report_file is not None  # RunMode is a StrEnum
    if target is None and not kept:
        return  # a plain `plan` writes no HTML: nothing to load for it
    from sync.commands.html import write_html
    from sync.commands.reports import say_written

    if target is not None:
        write_html(report, target)
        say_written("HTML report", target)
    if kept:
        write_html(report, config.report.dir / f"run-{report.run_id}.html")


def _save_report(config: Any, report: Any, out: Path | None) -> None:
    from sync.commands.reports import prune_reports
    from sync.commands.review import report_json
    from sync.files import copy_private, write_private
    from sync.logs import redacted_json
    from sync.model import write_rejections
    from sync.state.journal import RunMode

    kept = report.mode in (RunMode.RUN, RunMode.RELEASE)
    if out is None and not kept:
        return  # a plain `plan` writes nothing: no JSON to build
    path = config.report.dir / f"{report.mode}-{report.run_id}.json"
    first = out if out is not None else path
    write_private(first, redacted_json(report_json(report, lazy=True)))  # encoded as written
    if out is not None:
        from sync.commands.reports import say_written

        say_written("saved plan" if report.mode == RunMode.PLAN else "JSON report", out)
    if kept:
        if path != first:
            copy_private(first, path)
        report.report_file = path
        desired = report.desired
        if desired is not None and not desired.rejections.empty:
            write_rejections(desired, config.report.dir / f"rejected-{report.run_id}.csv")
        prune_reports(config.report.dir, config.report.keep_days)


@cli.command()
@_global_options
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    callback=_new_file,
    help="Write the plan as JSON: a saved plan, for `run --plan FILE`.",
)
@_override_option("Let this safety guard pass for this run (repeatable).")
@click.option(
    "--detailed-exitcode",
    is_flag=True,
    help="Exit 6 when changes are pending, 0 when nothing would change (errors keep theirs).",
)
@_html_option
@click.pass_context
@_guarded_run
def plan(
    ctx: click.Context, out: Path | None, overrides: tuple[str, ...], detailed_exitcode: bool
) -> int:
    """Dry run: read, map, diff and guard; print what would change. Sends no mutation."""
    # Its imports and its plan hold no cycles worth the collector's time
    # (sync/collector.py); a plan the process ends with leaves it off to the end.
    with paused(resume=not _ENDS_PROCESS):
        from sync.commands.render import render_plan
        from sync.core import engine

        config = _load(ctx)
        with _display("reading sources and planning"):
            report = engine.run(config, dry=True, overrides=overrides, fingerprint=out is not None)
        _keep(report)
        _save_report(config, report, out)
        _save_html(config, report)
        _echo(render_plan(report, verbose=bool(ctx.obj.get("verbose"))), report)
    code = int(report.exit_code)
    if detailed_exitcode and code in (ExitCode.OK, ExitCode.PARTIAL):
        # Pending changes outrank rejected rows (most exports carry a few for days),
        # and rows the last run rejected too are not news; a new rejection keeps 3,
        # a guard or an error its own code.
        if report.pending():
            code = int(ExitCode.CHANGES_PENDING)
        elif report.only_known_rejections():
            code = int(ExitCode.OK)
    return code


@cli.command("run")
@_global_options
@_override_option("Let this safety guard pass for this run (repeatable).")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    callback=_new_file,
    help="Also write the JSON report here.",
)
@click.option(
    "--plan",
    "plan_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Apply this saved plan (`plan --out FILE`) exactly, or refuse it (exit 4) "
    "when its sources, config, mappings or the store changed since.",
)
@_html_option
@click.pass_context
@_guarded_run
def run_command(
    ctx: click.Context, overrides: tuple[str, ...], out: Path | None, plan_file: Path | None
) -> int:
    """Plan, then apply: the cron command."""
    with paused():  # the imports (sync/collector.py); the engine pauses it to plan
        from sync.commands.render import render_plan, render_report
        from sync.core import engine
        from sync.core.apply import check_report_dir
        from sync.core.saved import read_saved

        config = _load(ctx)
    saved = read_saved(plan_file) if plan_file is not None else None
    check_report_dir(config.report.dir)
    with _display("reading sources and planning") as progress:
        report = engine.run(config, dry=False, overrides=overrides, progress=progress, saved=saved)
    _keep(report)
    _save_report(config, report, out)
    _save_html(config, report)
    _echo(render_plan(report, verbose=bool(ctx.obj.get("verbose"))), report)
    if report.guards:
        print_error(report.message or "", exit_code=int(report.exit_code))
        return int(report.exit_code)
    _echo("\n" + render_report(report), report)
    return int(report.exit_code)


@cli.command()
@_global_options
@click.argument("ref")
@click.pass_context
@_guarded
def explain(ctx: click.Context, ref: str) -> int:
    """One person's story: source rows, mapped values and their rules, store, plan, journal.

    Plans as `plan` does (reading Pluvo, sending nothing) and says why nothing is
    planned when nothing is; a ref nothing names exits 2."""
    from sync.commands.explain import explain as explain_ref

    config = _load(ctx)
    click.echo(explain_ref(config, ref))
    return 0


@cli.command()
@_global_options
@click.option("--limit", default=10, show_default=True, help="Runs to show.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable, for monitoring.")
@click.pass_context
@_guarded
def status(ctx: click.Context, limit: int, as_json: bool) -> int:
    """The last runs, operations pending or failed, and the state store's counts.

    Offline: reads the state store only, and needs no Pluvo credentials."""
    import json

    from sync.commands import admin

    config = _load_local(ctx)
    data = admin.status_data(config, limit=limit)
    if as_json:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        click.echo(admin.render_status(data))
    return 0


@cli.command()
@_global_options
@click.option("--force", is_flag=True, help="Required: says you mean it.")
@click.pass_context
@_guarded
def unlock(ctx: click.Context, force: bool) -> int:
    """Clear the run lock by hand (journaled). Locks of dead processes release themselves."""
    from sync.commands import admin

    if not force:
        raise click.UsageError(
            "unlock clears another run's lock; locks of dead processes release themselves, "
            "so this is for a holder that hangs: pass --force if you mean it"
        )
    config = _load_local(ctx)
    click.echo(admin.unlock(config))
    return 0


@cli.command()
@_global_options
@click.option("--json", "as_json", is_flag=True, help="Machine-readable.")
@click.pass_context
@_guarded
def held(ctx: click.Context, as_json: bool) -> int:
    """The changes held by the safety policy: who, what, why and since when.

    Offline: reads the state store only, and needs no Pluvo credentials."""
    import json

    from sync.commands.held import held_data, render_held

    config = _load_local(ctx)
    rows = held_data(config)
    click.echo(json.dumps(rows, indent=2, ensure_ascii=False) if as_json else render_held(rows))
    return 0


def _chosen(refs: tuple[str, ...], all_held: bool) -> list[str] | None:
    if bool(refs) == all_held:
        raise click.UsageError("name the REFs whose held changes you mean, or pass --all")
    return None if all_held else list(refs)


def _a_reason(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not value.strip():
        raise click.BadParameter("say why: it is recorded with who did it")
    return value.strip()


_reason_option = click.option(
    "--reason",
    required=True,
    callback=_a_reason,
    help="Why: recorded in the journal with who did it.",
)


def _choosing(func: F) -> F:
    """The options of `release` and `discard`: which held changes, and who says why."""
    for option in reversed(
        (
            click.argument("refs", nargs=-1),
            click.option("--all", "all_held", is_flag=True, help="Every held change."),
            _reason_option,
            click.option("--by", help="Who, when not the logged-in user (recorded)."),
        )
    ):
        func = option(func)
    return func


@cli.command()
@_global_options
@_choosing
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    callback=_new_file,
    help="Also write the JSON report.",
)
@click.pass_context
@_guarded_run
def release(
    ctx: click.Context,
    refs: tuple[str, ...],
    all_held: bool,
    reason: str,
    by: str | None,
    out: Path | None,
) -> int:
    """Apply held changes (of REFs, or --all), planned anew from today's sources and
    store: a change the sources no longer ask for is dropped, one whose content moved
    on since it was held stays held with its new content; nothing is applied stale."""
    from sync.commands.held import render_closed
    from sync.commands.render import render_report
    from sync.core import release as releasing

    chosen = _chosen(refs, all_held)
    config = _load(ctx)
    with _display("reading sources and planning the release") as progress:
        report = releasing.release(config, chosen, reason=reason, by=by, progress=progress)
    _keep(report)
    click.echo(render_closed(report))
    if report.message != releasing.NOTHING_HELD:
        _save_report(config, report, out)
        _echo(render_report(report), report)
    return int(report.exit_code)


@cli.command()
@_global_options
@_choosing
@click.pass_context
@_guarded
def discard(
    ctx: click.Context, refs: tuple[str, ...], all_held: bool, reason: str, by: str | None
) -> int:
    """Drop held changes (of REFs, or --all) without applying them. If the sources still
    ask for them, the next run plans them again under its safety policy."""
    from sync.commands.held import render_closed
    from sync.core import release as releasing

    chosen = _chosen(refs, all_held)
    config = _load_local(ctx)
    report = releasing.discard(config, chosen, reason=reason, by=by)
    click.echo(render_closed(report))
    return int(report.exit_code)


@cli.command()
@_global_options
@click.argument("run_id", required=False)
@click.option("--failed", "only_failed", is_flag=True, help="Only failed operations.")
@click.pass_context
@_guarded
def history(ctx: click.Context, run_id: str | None, only_failed: bool) -> int:
    """The journal of a run (default: the last one): each operation, outcome and error.

    Offline: reads the state store only, and needs no Pluvo credentials."""
    from sync.commands import admin

    config = _load_local(ctx)
    click.echo(admin.history(config, run_id, only_failed=only_failed))
    return 0


@cli.command()
@_global_options
@click.option("--apply", "apply_changes", is_flag=True, help="Correct the drift the engine owns.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    callback=_new_file,
    help="Write the drift report as JSON.",
)
@_override_option("Let this safety guard pass for --apply (repeatable).")
@click.pass_context
@_guarded_run
def reconcile(
    ctx: click.Context,
    apply_changes: bool,
    out: Path | None,
    overrides: tuple[str, ...],
) -> int:
    """Read live Pluvo and report drift from the desired state; --apply corrects it."""
    from sync.commands.reconcile import reconcile_command

    config = _load(ctx)
    report = reconcile_command(
        config,
        apply=apply_changes,
        out=out,
        overrides=overrides,
        verbose=bool(ctx.obj.get("verbose")),
        quiet=_quiet(),
        display=_display("reading sources and live Pluvo"),
    )
    _keep(report)
    return int(report.exit_code)


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
        if not _quiet():
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


@cli.command()
@_global_options
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Replace the files init writes if they exist.")
@_guarded
def init(folder: Path, force: bool) -> int:
    """Write a commented config, the example mapping, the secrets' env example, the
    systemd units and the cron line into FOLDER, from the installed package."""
    from sync.commands.init import init_folder, render_written

    click.echo(render_written(init_folder(folder, force=force)))
    return 0


_ENDS_PROCESS = False
"""Whether the command is the process's last act (`main`), not one call of many (tests)."""


def main() -> None:
    global _ENDS_PROCESS
    _ENDS_PROCESS = True
    try:
        cli(prog_name="pluvo-sync")
    except SystemExit as stop:
        _leave(stop)
        raise


def _leave(stop: SystemExit) -> None:
    """End the process now, with the code and output it would have ended with anyway.

    Tearing down an interpreter that has loaded pandas, SQLAlchemy and aiohttp (every
    module cleared, the cyclic collector over all of them, the plan's frames freed
    string by string) costs about a quarter of a second of CPU after the command is
    done, on every dry run and cron run: more than the whole diff of 100,000 users.
    What the exit must still do is done here: the atexit handlers (logging's flush
    among them) and flushing stdout and stderr. A command that leaves a non-daemon
    thread running, or exits with a message rather than a number, takes the ordinary
    way out, which waits for the thread or prints the message.
    """
    code = 0 if stop.code is None else stop.code
    if not isinstance(code, int) or any(
        t.is_alive() and not t.daemon
        for t in threading.enumerate()
        if t is not threading.main_thread()
    ):
        return
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            code = code or 120  # what Python exits with when it cannot flush stdout
    os._exit(code)
