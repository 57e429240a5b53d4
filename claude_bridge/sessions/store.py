"""What a session is on disk: its name rules, its directory and metadata file (SessionStore), and the personas.

Plain files and validation only: no processes, no asyncio tasks, no Telegram. The durable inbox is inbox.py.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from claude_bridge.errors import SessionError
from claude_bridge.protocol.events import PERMISSION_MODES

logger = logging.getLogger(__name__)

NAME_RULE = "a session name is 1–32 characters of a–z, 0–9 and '-', starting with a letter or digit"
NAME_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
MODEL_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@\[\]-]{0,99}")
DEFAULT_PERSONA = "default"


def validate_name(name: str) -> str:
    """Return the name if it follows NAME_RULE, else raise SessionError saying the rule."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise SessionError(f"Invalid session name {name!r}: {NAME_RULE}.")
    return name


def validate_model(model: str) -> str:
    """Accept sonnet / opus / haiku or a full model id (no spaces, cannot start with '-')."""
    if not MODEL_RE.fullmatch(model):
        raise SessionError(
            f"Invalid model {model!r}: use sonnet, opus, haiku or a full model id (no spaces, not starting with '-')."
        )
    return model


# ---- personas ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Persona:
    """A system prompt appended to Claude Code's own, plus default settings."""

    name: str
    description: str
    system_prompt: str
    model: str | None = None
    max_turns: int | None = None
    permission_mode: str | None = None


def _persona_from(raw: Any, stem: str) -> Persona:
    if not isinstance(raw, dict):
        raise ValueError("the file must hold a JSON object")
    name = raw.get("name", stem)
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise ValueError(f"'name' must follow the rule: {NAME_RULE}")
    prompt = raw.get("system_prompt")
    if not isinstance(prompt, str):
        raise ValueError("'system_prompt' must be a string")
    settings = raw.get("settings") or {}
    if not isinstance(settings, dict):
        raise ValueError("'settings' must be an object")
    model = settings.get("model")
    if model is not None:
        if not isinstance(model, str):
            raise ValueError("'settings.model' must be a string")
        validate_model(model)
    max_turns = settings.get("max_turns")
    if max_turns is not None and (not isinstance(max_turns, int) or max_turns < 1):
        raise ValueError("'settings.max_turns' must be a positive integer")
    mode = settings.get("permission_mode")
    if mode is not None and mode not in PERMISSION_MODES:
        raise ValueError(f"'settings.permission_mode' must be one of {', '.join(PERMISSION_MODES)}")
    return Persona(name, str(raw.get("description", "")), prompt, model, max_turns, mode)


def load_personas(directory: Path) -> tuple[dict[str, Persona], list[str]]:
    """Read personas/*.json; an invalid file is reported (file name and reason) and skipped."""
    personas: dict[str, Persona] = {}
    problems: list[str] = []
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        try:
            persona = _persona_from(json.loads(path.read_text(encoding="utf-8")), path.stem)
        except (ValueError, SessionError, OSError) as exc:
            problems.append(f"{path.name}: {exc}")
            continue
        personas[persona.name] = persona
    if DEFAULT_PERSONA not in personas:
        personas[DEFAULT_PERSONA] = Persona(DEFAULT_PERSONA, "Claude Code as it comes", "")
    for problem in problems:
        logger.error("invalid persona file %s", problem)
    return personas, problems


# ---- on-disk state -------------------------------------------------------------------------------


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON so a crash leaves either the old or the new file: temp file, fsync, rename, fsync dir."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class MetaStatus(StrEnum):
    """What metadata.json says of the session's process when it was last saved."""

    NEW = "new"
    LIVE = "live"
    SUSPENDED = "suspended"
    FAILED = "failed"
    STOPPED = "stopped"


@dataclass
class Metadata:
    """What sessions/<name>/metadata.json holds."""

    name: str
    created: float
    last_active: float
    persona: str = DEFAULT_PERSONA
    model: str | None = None
    permission_mode: str | None = None
    claude_session_id: str = ""
    status: MetaStatus = MetaStatus.NEW
    turns: int = 0
    total_cost_usd: float = 0.0
    last_timings: dict[str, float | None] = field(default_factory=dict)
    last_chat_id: int | None = None  # the chat that last talked to the session: Claude's own turns go there

    @classmethod
    def from_dict(cls, raw: dict[str, Any], name: str) -> Metadata:
        known = {f for f in cls.__dataclass_fields__}
        values = {k: v for k, v in raw.items() if k in known}
        values["name"] = name
        try:
            values["status"] = MetaStatus(values.get("status", MetaStatus.NEW))
        except ValueError:
            values["status"] = MetaStatus.SUSPENDED  # e.g. "busy" from an older version
        return cls(**values)


class SessionStore:
    """The sessions directory: one plain directory per session holding metadata.json and files/."""

    def __init__(self, root: Path, personas: dict[str, Persona]) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._resolved = root.resolve()
        self.personas = personas

    def directory(self, name: str) -> Path:
        """The session's directory (which may not exist yet); refuses names and links that lead elsewhere."""
        validate_name(name)
        path = self.root / name
        if path.is_symlink() or (path.exists() and path.resolve().parent != self._resolved):
            raise SessionError(f"Session {name!r} is not a plain directory inside the sessions directory.")
        return path

    def exists(self, name: str) -> bool:
        return self.directory(name).is_dir()

    def names(self) -> list[str]:
        """Every session directory's name, sorted."""
        return sorted(
            p.name for p in self.root.iterdir() if p.is_dir() and not p.is_symlink() and NAME_RE.fullmatch(p.name)
        )

    def create(self, name: str, persona: str, now: float) -> Metadata:
        """Make the directory, files/ and metadata.json of a new session."""
        directory = self.directory(name)
        self.check_persona(persona)
        if directory.exists():
            raise SessionError(f"Session {name!r} already exists; /switch {name} to use it.")
        (directory / "files").mkdir(parents=True)
        meta = Metadata(name=name, created=now, last_active=now, persona=persona)
        self.save(meta)
        logger.info("created session %s (persona %s)", name, persona)
        return meta

    def check_persona(self, persona: str) -> None:
        if persona not in self.personas:
            raise SessionError(f"Unknown persona {persona!r}. Personas: {', '.join(sorted(self.personas))}.")

    def load(self, name: str) -> Metadata:
        """The session's metadata; a missing or corrupt file is rebuilt (and said so in the log)."""
        directory = self.directory(name)
        if not directory.is_dir():
            raise SessionError(f"No session named {name!r}. /sessions lists them; /new {name} creates it.")
        path = directory / "metadata.json"
        try:
            meta = Metadata.from_dict(json.loads(path.read_text(encoding="utf-8")), name)
        except (FileNotFoundError, ValueError, TypeError, OSError) as exc:
            logger.error("session %s: metadata.json missing or corrupt (%s); rebuilding it", name, exc)
            created = directory.stat().st_mtime
            # A conversation may exist: --continue in a directory without one simply starts fresh.
            meta = Metadata(name, created, created, status=MetaStatus.SUSPENDED, claude_session_id="unknown")
            self.save(meta)
            return meta
        if meta.persona not in self.personas:
            logger.warning("session %s: persona %r is gone; using default", name, meta.persona)
            meta.persona = DEFAULT_PERSONA
        if meta.status == MetaStatus.LIVE:
            meta.status = MetaStatus.SUSPENDED  # the previous run ended without suspending it
        return meta

    def save(self, meta: Metadata) -> None:
        write_json_atomic(self.root / meta.name / "metadata.json", asdict(meta))

    def remove(self, name: str) -> None:
        shutil.rmtree(self.directory(name))
