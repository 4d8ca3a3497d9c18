"""Files the installed tool needs at run time, found inside the package.

The migrations, the sample HR export, the example mapping and the deploy files live at
the top of the repository (`migrations/`, `samples/`, `mappings/`, `deploy/`) and are
mapped into the package (`sync.migrations`, `sync.samples`, `sync.mappings`,
`sync.deploy`) by pyproject.toml, so a wheel or
`pipx install` carries them and a checkout finds them the same way. A missing one
means a broken installation: one line saying so, never a traceback.
"""

from __future__ import annotations

from contextlib import ExitStack
from importlib import resources
from pathlib import Path

from sync.errors import SyncError

_kept = ExitStack()  # keeps extracted files (a zipped install) until the process ends

CHECKOUT = Path(__file__).resolve().parents[1]
FOLDERS = {
    "sync.migrations": "migrations",
    "sync.samples": "samples",
    "sync.mappings": "mappings",
    "sync.deploy": "deploy",
}
"""Where each mapped package's files are in a checkout (pyproject's package-dir)."""


def resource_path(package: str, name: str) -> Path:
    """A file of `package` as a real path on disk.

    Run from a checkout (the tests, `python -m sync`), `sync` is imported from the
    source tree, where the mapped packages are plain top-level folders instead.
    """
    try:
        try:
            item = resources.files(package).joinpath(name)
        except ModuleNotFoundError:
            local = CHECKOUT / FOLDERS.get(package, "") / name
            if package in FOLDERS and local.is_file():
                return local
            raise
        if not item.is_file():
            raise FileNotFoundError(name)
        return _kept.enter_context(resources.as_file(item))
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        shown = f"{package}/{name}"
        raise SyncError(
            f"this pluvo-sync installation lacks its bundled file {shown} "
            f"({exc.__class__.__name__}); reinstall the package"
        ) from None


def migrations() -> Path:
    """Alembic's script folder (the one holding env.py and versions/)."""
    return resource_path("sync.migrations", "env.py").parent


def sample_export() -> Path:
    return resource_path("sync.samples", "hr.csv")


def example_mapping() -> Path:
    return resource_path("sync.mappings", "example.yaml")


DEPLOY_FILES = (
    "config.example.yaml",
    "pluvo-sync.env.example",
    "pluvo-sync.service",
    "pluvo-sync.timer",
    "pluvo-sync.cron",
)
"""The files of `deploy/`: the commented config, the secrets' env file, the units, cron."""


def deploy_file(name: str) -> Path:
    return resource_path("sync.deploy", name)
