"""What a session is on disk: its name rules, its metadata file, its durable inbox, and the persona files.

Plain files and validation only: no processes, no asyncio tasks, no Telegram. session_manager.py builds on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from claude_bridge.errors import SessionError
from claude_bridge.protocol.events import PERMISSION_MODES

logger = logging.getLogger(__name__)

NAME_RULE = "a session name is 1–32 characters of a–z, 0–9 and '-', starting with a letter or digit"
NAME_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
MODEL_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@\[\]-]{0,99}")
DEFAULT_PERSONA = "default"
Content = str | list[dict[str, Any]]


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
    status: str = "new"
    turns: int = 0
    total_cost_usd: float = 0.0
    last_timings: dict[str, float | None] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], name: str) -> Metadata:
        known = {f for f in cls.__dataclass_fields__}
        values = {k: v for k, v in raw.items() if k in known}
        values["name"] = name
        return cls(**values)


class Inbox:
    """A session's durable queue: an append-only, fsynced log of add / sent / done records."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._seq = 0

    def _append(self, record: dict[str, Any]) -> None:
        line = (json.dumps(record) + "\n").encode("utf-8")
        with open(self.path, "ab+") as handle:
            if handle.tell() > 0:
                handle.seek(-1, os.SEEK_END)
                if handle.read(1) != b"\n":
                    line = b"\n" + line  # a crash left a torn last line: never glue a record onto it
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())

    def read(self) -> list[InboxEntry]:
        """Entries in arrival order with their latest state."""
        entries: dict[str, InboxEntry] = {}
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a torn last line from a crash mid-write
            entry_id = str(record.get("id", ""))
            if record.get("op") == "add":
                entries[entry_id] = InboxEntry(entry_id, int(record["chat_id"]), record["content"], "queued")
            elif entry_id in entries and record.get("op") in ("sent", "done"):
                entries[entry_id].state = record["op"]
        return list(entries.values())

    async def add(self, chat_id: int, content: Content) -> str:
        self._seq += 1
        entry_id = f"{time.time_ns()}-{self._seq}"
        await asyncio.to_thread(self._append, {"op": "add", "id": entry_id, "chat_id": chat_id, "content": content})
        return entry_id

    async def mark(self, entry_id: str, op: str) -> None:
        await asyncio.to_thread(self._append, {"op": op, "id": entry_id})

    async def compact(self) -> None:
        """Drop finished entries once nothing is pending, so the file does not grow forever."""

        def _compact() -> None:
            if all(entry.state == "done" for entry in self.read()):
                self.path.unlink(missing_ok=True)

        await asyncio.to_thread(_compact)


@dataclass
class InboxEntry:
    id: str
    chat_id: int
    content: Content
    state: str  # queued | sent | done
