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


def _config_option(func: F) -> F:
    return click.option(
        "-c",
        "--config",
        "config_file",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Config file (default: $PLUVO_SYNC_CONFIG or ./config.yaml).",
    )(func)


def _guarded(func: F) -> F:
    """Turn expected errors into one clear line and the contract's exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
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
@click.option("-v", "--verbose", is_flag=True, help="Debug logging and every change in plans.")
@click.option(
    "--log-format",
    type=click.Choice(["human", "json"]),
    default=None,
    help="Log format on stderr (default: from config, else human).",
)
@click.version_option(package_name="pluvo-sync")
@click.pass_context
def cli(ctx: click.Context, verbose: bool, log_format: str | None) -> None:
    """Keep a Pluvo organisation in line with an HR system."""
    ctx.obj = {"verbose": verbose, "log_format": log_format}
    setup_logging("DEBUG" if verbose else "INFO", log_format or "human")


def _load(ctx: click.Context, config_file: Path | None) -> Any:
    from sync.config import load_config

    config = load_config(config_file)
    from sync.logs import register_secret

    register_secret(config.pluvo.client_secret.get_secret_value())
    level = "DEBUG" if ctx.obj["verbose"] else config.logging.level
    setup_logging(level, ctx.obj["log_format"] or config.logging.format)
    return config


@cli.command()
@_config_option
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

    return serve_cli(**options)


def main() -> None:
    cli(prog_name="pluvo-sync")
