"""`pluvo-sync init DIR`: the files an engineer starts from, out of the package itself.

Handed only a wheel, the engineer has no source tree: the commented config, the example
mapping, the secrets' env example, the systemd units and the cron line must come from
the installed package (sync.resources), exactly as they are in the repository's
`deploy/` and `mappings/`. Nothing that exists is overwritten unless asked, and then
only the files this command writes: a config that has been edited for weeks must not
be lost to a second `init`.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from sync.errors import ConfigError
from sync.resources import deploy_file, example_mapping

WRITTEN: tuple[tuple[str, str], ...] = (
    ("config.yaml", "config.example.yaml"),
    ("mappings/example.yaml", ""),
    ("pluvo-sync.env.example", "pluvo-sync.env.example"),
    ("deploy/pluvo-sync.service", "pluvo-sync.service"),
    ("deploy/pluvo-sync.timer", "pluvo-sync.timer"),
    ("deploy/pluvo-sync.cron", "pluvo-sync.cron"),
)
"""What init writes (relative to DIR) and from which bundled file ("" = the mapping)."""


@dataclass(frozen=True)
class Written:
    folder: Path
    files: list[Path]
    replaced: list[Path]


def init_folder(folder: Path, *, force: bool = False) -> Written:
    """Write the starter files into `folder` (made if missing, its parent must exist).

    Refuses, before writing anything, when one of them exists and `force` is not set,
    naming every one; a path that is a folder is refused even with `force`."""
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"init: {folder} is a file, not a folder")
    if not folder.exists() and not folder.parent.is_dir():
        raise ConfigError(
            f"init: the folder {folder.parent} does not exist; create it first "
            "(init makes only the last folder of DIR)"
        )
    targets = [(folder / relative, source) for relative, source in WRITTEN]
    folders = [str(t) for t, _ in targets if t.is_dir()]
    if folders:
        raise ConfigError(f"init: {', '.join(folders)} is a folder; nothing was written")
    existing = [t for t, _ in targets if t.exists()]
    if existing and not force:
        shown = ", ".join(str(t.relative_to(folder)) for t in existing)
        raise ConfigError(
            f"init: {folder} already holds {shown}; nothing was written",
            hint="pass --force to replace them; only the files init writes are replaced",
        )
    sources = [(t, deploy_file(s) if s else example_mapping()) for t, s in targets]
    for target, source in sources:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    return Written(folder, [t for t, _ in targets], existing)


def render_written(written: Written) -> str:
    """What was written where, and the first steps from there."""
    folder = written.folder
    lines = [f"wrote {len(written.files)} file(s) in {folder}:"]
    for path in written.files:
        note = " (replaced)" if path in written.replaced else ""
        lines.append(f"  {path.relative_to(folder)}{note}")
    lines += [
        "",
        "next:",
        "  1. config.yaml: set pluvo.url and sources[0].path, adapt mappings/example.yaml",
        "     to your export's columns (every key is explained where it stands)",
        "  2. the secrets: install -m 600 pluvo-sync.env.example pluvo-sync.env, edit it,",
        "     then: set -a; . ./pluvo-sync.env; set +a",
        f"  3. pluvo-sync -c {folder / 'config.yaml'} db upgrade, then doctor, then plan",
        "  4. the nightly job: deploy/ holds the systemd units and the cron line",
        "     (README, Production)",
    ]
    return "\n".join(lines)
