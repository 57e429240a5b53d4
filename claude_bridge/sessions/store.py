"""What a session is on disk: its name rules, its directory and metadata file (SessionStore), and the personas.

Plain files and validation only: no processes, no asyncio tasks, no Telegram. The durable inbox is inbox.py.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin, get_type_hints

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


def write_json_atomic(path: Path, data: Any, *, durable: bool = True) -> None:
    """Write JSON so a crash leaves either the old or the new file: temp file, fsync, rename, fsync dir.

    `durable=False` skips both fsyncs: still atomic for a crash of the bot, not proof against a power cut."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if not durable:
        return
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


class StateDamaged(SessionError):
    """A state file of one session (or chats.json) cannot be read; the message names the file and the reason."""

    def __init__(self, file: str, reason: str) -> None:
        super().__init__(f"damaged: {file}: {reason}")
        self.file = file
        self.reason = reason


_NUMBER = (int, float)


@dataclass
class Metadata:
    """What .bot/sessions/<name>/metadata.json holds; `workspace` is the folder Claude works in."""

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
    usage: dict[str, Any] = field(default_factory=dict)  # the session's line of /usage (usage.py), today's totals
    workspace: str = ""
    created_workspace: bool = False  # only a folder the bot made is removed by /delete
    instance: str = ""  # tells this session apart from an earlier one of the same name (delete buttons)
    # The chat (and forum topic) that last talked to the session: shown nowhere and routing nothing (Claude's own
    # turns, files and notices go to a turn's place or the home); it gives a session from before homes its home.
    last_chat_id: int | None = None
    last_thread_id: int | None = None
    # The place that created the session (homes.py): only it sees and reaches the session. Sessions from before
    # homes get the place that last used them.
    home_chat_id: int | None = None
    home_thread_id: int | None = None

    @classmethod
    def from_dict(cls, raw: Any, name: str) -> Metadata:
        """Strict: a non-object, a field of the wrong type or a missing workspace raises ValueError saying which."""
        if not isinstance(raw, dict):
            raise ValueError(f"expected a JSON object, found {type(raw).__name__}")
        values = {k: v for k, v in raw.items() if k in _FIELD_TYPES}
        for key, value in values.items():
            types = _FIELD_TYPES[key]
            if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
                raise ValueError(f"{key!r} has the wrong type ({type(value).__name__})")
        for key in ("created", "last_active"):
            if key not in values:
                raise ValueError(f"{key!r} is missing")
        if not values.get("workspace"):
            raise ValueError("'workspace' is missing")
        timings = values.get("last_timings", {})
        if not all(isinstance(v, _NUMBER) or v is None for v in timings.values()):
            raise ValueError("'last_timings' must map to numbers")
        if values.get("turns", 0) < 0:
            raise ValueError("'turns' is negative")
        try:
            values["status"] = MetaStatus(values.get("status", MetaStatus.NEW))
        except ValueError:
            values["status"] = MetaStatus.SUSPENDED  # e.g. "busy" from an older version
        values["name"] = name
        return cls(**values)


def _json_types(hint: Any) -> tuple[type, ...]:
    """The JSON value types a Metadata field admits: a float field takes an int, an enum field its string."""
    if get_origin(hint) in (Union, UnionType):
        return tuple(t for arg in get_args(hint) for t in _json_types(arg))
    if hint is float:
        return _NUMBER
    if isinstance(hint, type) and issubclass(hint, StrEnum):
        return (str,)
    return (get_origin(hint) or hint,)


# Derived from the dataclass, so a new field is checked without anyone remembering to list it here.
_FIELD_TYPES = {key: _json_types(hint) for key, hint in get_type_hints(Metadata).items() if key != "name"}

STATE_DIR = ".bot"  # not a valid session name, so it never collides with one
META_FILE = "metadata.json"
INBOX_FILE = "inbox.jsonl"
PID_FILE = "claude.pid"
CHATS_FILE = "chats.json"


def new_instance() -> str:
    """A short id for one session instance (8 hex digits), so a delete button fits in 64 bytes of callback_data."""
    return secrets.token_hex(4)


# What every turn updates: counters and times whose newest values a power cut may cost, so they need no fsync of
# their own (the bridge's cost per message is one fsync: the inbox's add).
TURN_STATISTICS = frozenset({"turns", "total_cost_usd", "last_active", "last_timings", "usage"})


class SessionStore:
    """The bot's own state lives in SESSIONS_DIR/.bot/ (sessions/<name>/ and chats.json), apart from workspaces.

    A session exists because its state folder does (the marker the bot wrote); a folder in SESSIONS_DIR is never a
    session by its name or by a metadata.json in it. Claude can write in its workspace, so once .bot/ exists no
    start-up step reads from a workspace again: the old layout is moved in once, when .bot/ is first made.
    """

    def __init__(self, root: Path, personas: dict[str, Persona]) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._resolved = root.resolve()
        self.state_root = root / STATE_DIR
        self.sessions_state = self.state_root / "sessions"
        first_start = not self.state_root.exists() and not self.state_root.is_symlink()
        self.sessions_state.mkdir(parents=True, exist_ok=True)
        self.personas = personas
        self._durable: dict[str, dict[str, Any]] = {}  # per session: what its last fsynced metadata said
        if first_start:
            self._migrate()

    @property
    def chats_file(self) -> Path:
        return self.state_root / CHATS_FILE

    def directory(self, name: str) -> Path:
        """Where a new session's workspace goes (it may not exist); refuses names and links that lead elsewhere."""
        validate_name(name)
        path = self.root / name
        if path.is_symlink() or (path.exists() and path.resolve().parent != self._resolved):
            raise SessionError(f"Session {name!r} is not a plain directory inside the sessions directory.")
        return path

    def state_dir(self, name: str) -> Path:
        """The session's own state folder: metadata.json, inbox.jsonl, claude.pid."""
        return self.sessions_state / validate_name(name)

    def exists(self, name: str) -> bool:
        return self.state_dir(name).is_dir()

    def names(self) -> list[str]:
        """Every session's name (those with a state folder), sorted."""
        return sorted(
            p.name
            for p in self.sessions_state.iterdir()
            if p.is_dir() and not p.is_symlink() and NAME_RE.fullmatch(p.name)
        )

    def create(self, name: str, persona: str, now: float, project: Path | None = None) -> Metadata:
        """Make the state folder and metadata.json of a new session, and its workspace (with files/).

        With `project` (an existing folder, already checked) Claude works there and the bot makes nothing in it.
        """
        workspace = self.directory(name) if project is None else project
        self.check_persona(persona)
        if self.exists(name):
            raise SessionError(f"Session {name!r} already exists; /switch {name} to use it.")
        if project is None and workspace.exists():
            raise SessionError(
                f"A folder named {name!r} already exists in the sessions directory and is not a session; "
                "pick another name."
            )
        if project is None:
            (workspace / "files").mkdir(parents=True)
        meta = Metadata(
            name=name,
            created=now,
            last_active=now,
            persona=persona,
            workspace=str(workspace.absolute()),
            created_workspace=project is None,
            instance=new_instance(),
        )
        try:
            self.state_dir(name).mkdir()
            self.save(meta)
        except BaseException:
            shutil.rmtree(self.state_dir(name), ignore_errors=True)
            if project is None:
                shutil.rmtree(workspace, ignore_errors=True)
            raise
        logger.info("created session %s (persona %s) in %s", name, persona, workspace)
        return meta

    def check_persona(self, persona: str) -> None:
        if persona not in self.personas:
            raise SessionError(f"Unknown persona {persona!r}. Personas: {', '.join(sorted(self.personas))}.")

    def load(self, name: str) -> Metadata:
        """The session's metadata; raises StateDamaged (file and reason) if it cannot be read."""
        if not self.exists(name):
            raise SessionError(f"No session named {name!r}. /sessions lists them; /new {name} creates it.")
        path = self.state_dir(name) / META_FILE
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise StateDamaged(META_FILE, "the file is missing") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise StateDamaged(META_FILE, str(exc)) from exc
        try:
            meta = Metadata.from_dict(json.loads(text), name)
        except ValueError as exc:  # JSONDecodeError is a ValueError
            raise StateDamaged(META_FILE, str(exc)) from exc
        if meta.persona not in self.personas:
            logger.warning("session %s: persona %r is gone; using default", name, meta.persona)
            meta.persona = DEFAULT_PERSONA
        if meta.status == MetaStatus.LIVE:
            meta.status = MetaStatus.SUSPENDED  # the previous run ended without suspending it
        return meta

    def save(self, meta: Metadata) -> None:
        """Write metadata.json; fsynced unless only a turn's statistics changed since the last fsynced write."""
        data = asdict(meta)
        kept = {key: value for key, value in data.items() if key not in TURN_STATISTICS}
        write_json_atomic(self.state_dir(meta.name) / META_FILE, data, durable=self._durable.get(meta.name) != kept)
        self._durable[meta.name] = kept

    def remove(self, name: str, meta: Metadata | None) -> None:
        """Remove the session's state; its workspace only if the bot created it (else it is left as it is)."""
        if meta is not None and meta.created_workspace:
            workspace = Path(meta.workspace)
            if workspace.is_dir() and not workspace.is_symlink() and workspace.resolve().parent == self._resolved:
                shutil.rmtree(workspace)
            else:
                logger.warning("session %s: workspace %s is not where the bot made it; left alone", name, workspace)
        shutil.rmtree(self.state_dir(name))
        self._durable.pop(name, None)  # a new session of this name starts with a fsynced write

    # -- older installs kept the state inside each session folder --

    def _migrate(self) -> None:
        """Move metadata.json, inbox.jsonl, claude.pid (and chats.json) of the old layout into the state folder.

        Only a folder laid out as the old bot made it (a valid metadata.json and files/) is taken for a session.
        """
        old_chats = self.root / CHATS_FILE
        if old_chats.is_file() and not self.chats_file.exists():
            os.replace(old_chats, self.chats_file)
            logger.info("moved %s into %s", old_chats, self.state_root)
        for folder in sorted(self.root.iterdir()):
            if folder.is_symlink() or not folder.is_dir() or not NAME_RE.fullmatch(folder.name):
                continue
            if (folder / META_FILE).is_file() and (folder / "files").is_dir() and not (folder / "files").is_symlink():
                try:
                    self._migrate_one(folder)
                except OSError as exc:
                    logger.error("could not move the state of session %s out of its folder: %s", folder.name, exc)

    def _migrate_one(self, folder: Path) -> None:
        old_meta = folder / META_FILE
        raw: Any
        try:
            raw = json.loads(old_meta.read_text(encoding="utf-8"))
            # /delete leaves a migrated folder alone: nothing proves the bot made it rather than found it.
            raw |= {"workspace": str(folder.absolute()), "created_workspace": False}
            raw["instance"] = raw.get("instance") or new_instance()
            Metadata.from_dict(raw, folder.name)
        except (ValueError, UnicodeDecodeError, TypeError) as exc:
            logger.warning("%s has a metadata.json the bot cannot read (%s); not taken for a session", folder, exc)
            return
        state = self.sessions_state / folder.name
        state.mkdir(exist_ok=True)
        for file in (INBOX_FILE, PID_FILE):
            if (folder / file).exists() and not (state / file).exists():
                os.replace(folder / file, state / file)
            (folder / file).unlink(missing_ok=True)
        if not (state / META_FILE).exists():
            write_json_atomic(state / META_FILE, raw)
        old_meta.unlink(missing_ok=True)
        logger.info("moved the state of session %s into %s", folder.name, state)
