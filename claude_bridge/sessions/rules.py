"""A project's kept permission rules (`permissions.allow` in `<project>/.claude/settings.local.json`) and the
workspace trust flag in the CLI's `.claude.json`.

The CLI writes a rule itself when an "Always allow" answer carries it with `destination: "localSettings"`; this
module lists and removes them, and can mark a folder trusted. Every write is atomic (temp file + rename) and keeps
the file's other keys. No CLI process, no Telegram here.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from claude_bridge.errors import SessionError

logger = logging.getLogger(__name__)
SETTINGS_FILE = Path(".claude") / "settings.local.json"
CONFIG_FILE = ".claude.json"


class RulesFileError(SessionError):
    """A settings file exists but is not what the CLI would accept: `path` names it, the text says why."""

    def __init__(self, path: Path, why: str) -> None:
        self.path = path
        super().__init__(f"{path} cannot be read as Claude Code settings ({why}); fix or remove it by hand.")


def settings_path(project: Path) -> Path:
    """The project's local settings file, where the CLI keeps rules given as "don't ask again"."""
    return project / SETTINGS_FILE


def project_rules(project: Path) -> tuple[str, ...]:
    """The project's kept allow rules (e.g. `Bash(npm test *)`), in file order; none when there is no file."""
    data = _read(settings_path(project))
    return tuple(_allow_list(data, settings_path(project)))


def add_rule(project: Path, rule: str) -> bool:
    """Keep `rule` for the project (as the CLI would); False if it was already there."""
    path = settings_path(project)
    data = _read(path)
    allow = _allow_list(data, path)
    if rule in allow:
        return False
    permissions = dict(data.get("permissions") or {})
    permissions["allow"] = [*allow, rule]
    _write(path, {**data, "permissions": permissions})
    return True


def remove_rule(project: Path, rule: str) -> bool:
    """Forget `rule` (other rules and keys stay); False if the project did not have it."""
    path = settings_path(project)
    data = _read(path)
    allow = _allow_list(data, path)
    if rule not in allow:
        return False
    permissions = dict(data["permissions"])
    permissions["allow"] = [kept for kept in allow if kept != rule]
    _write(path, {**data, "permissions": permissions})
    return True


def config_file(config_dir: Path) -> Path:
    """The CLI's own state file for a CLAUDE_CONFIG_DIR (with the variable unset the CLI uses ~/.claude.json)."""
    return config_dir / CONFIG_FILE


def cli_config(env: Mapping[str, str]) -> Path:
    """The CLI's state file for the environment it runs in: $CLAUDE_CONFIG_DIR/.claude.json, else ~/.claude.json."""
    explicit = env.get("CLAUDE_CONFIG_DIR")
    if explicit:
        return config_file(Path(explicit).expanduser())
    return Path(env.get("HOME") or Path.home()) / CONFIG_FILE


def trust_before_start(env: Mapping[str, str], project: Path) -> None:
    """Mark `project` trusted before a CLI starts there, so the project's kept rules hold in it.

    Measured: 2.1.197 ignores `.claude/settings.local.json` in a folder whose trust dialog was never accepted, and
    reads the flag only at start; 2.1.332 needs no flag. A file we cannot write is logged: Claude then asks again.
    """
    try:
        if trust_workspace(cli_config(env), project):
            logger.info("marked %s trusted in the CLI's config", project)
    except (OSError, RulesFileError) as exc:
        logger.warning("could not mark %s trusted (kept rules may not hold in older CLIs): %s", project, exc)


def trust_workspace(config: Path, project: Path) -> bool:
    """Set `projects["<project>"].hasTrustDialogAccepted` in the CLI's config file; False if it was already set.

    Write it while no CLI of that config runs: the CLI rewrites this file itself and would race us.
    """
    data = _read(config)
    projects = data.get("projects", {})
    if not isinstance(projects, Mapping):
        raise RulesFileError(config, '"projects" is not an object')
    key = str(project)
    entry = projects.get(key, {})
    if not isinstance(entry, Mapping):
        raise RulesFileError(config, f'"projects"["{key}"] is not an object')
    if entry.get("hasTrustDialogAccepted") is True:
        return False
    _write(config, {**data, "projects": {**projects, key: {**entry, "hasTrustDialogAccepted": True}}})
    return True


def _read(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesFileError(path, str(exc)) from exc
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RulesFileError(path, f"not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise RulesFileError(path, "not a JSON object")
    return data


def _allow_list(data: Mapping[str, Any], path: Path) -> list[str]:
    permissions = data.get("permissions", {})
    if not isinstance(permissions, Mapping):
        raise RulesFileError(path, '"permissions" is not an object')
    allow = permissions.get("allow", [])
    if not isinstance(allow, list) or not all(isinstance(rule, str) for rule in allow):
        raise RulesFileError(path, '"permissions.allow" is not a list of strings')
    return allow


def _write(path: Path, data: Mapping[str, Any]) -> None:
    """Write beside the file and rename over it, so a reader (the CLI) sees the old file or the new one, whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        mode = 0o600  # .claude.json can hold account details: no wider than the CLI makes it
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=2, ensure_ascii=False)
            out.write("\n")
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
