"""Which files the bot may hand out of this machine for Claude (send_file), and which folders a project may be.

Paths and file contents only, no asking and no sending: `judge()` says inside / ask / never with the reason;
the tool (tools.py) asks the human for "ask" and refuses "never". Every path is judged after symlinks are resolved.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import claude_bridge

STATE_DIR = ".bot"  # the bot's state folder inside SESSIONS_DIR (store.py names it too)
CREDENTIALS_FILE = ".credentials.json"  # where the CLI keeps its login, in CLAUDE_CONFIG_DIR or ~/.claude
MIN_SECRET = 8  # shorter "secrets" would match ordinary text
_CHUNK = 1 << 20


def bot_folder() -> Path:
    """The folder the bot runs from: where bot.py and the claude_bridge package (and usually its .env) live."""
    return Path(claude_bridge.__file__).resolve().parent.parent


class Verdict(StrEnum):
    """What send_file may do with a file."""

    INSIDE = "inside"  # in the session's own folder: sent without asking
    ASK = "ask"  # anywhere else the user can read: asked like a tool call
    NEVER = "never"  # the bot's secrets and state: refused in every mode


@dataclass(frozen=True)
class Judgement:
    """The verdict on one resolved path, and why (the tool error or the prompt says it)."""

    verdict: Verdict
    path: Path
    reason: str


@dataclass(frozen=True)
class Protected:
    """What no tool may hand out: folders and files by what they are, and secrets no sent file may contain."""

    folders: Mapping[Path, str] = field(default_factory=dict)
    files: Mapping[Path, str] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()

    @classmethod
    def of(
        cls,
        *,
        sessions_dir: Path,
        env: Mapping[str, str],
        secrets: Iterable[str],
        bot_folders: Sequence[Path] = (),
    ) -> Protected:
        """The bot's own folders, SESSIONS_DIR/.bot/, the CLI's credentials and .env files, and the secrets."""
        home = Path(env.get("HOME") or Path.home())
        config = Path(env["CLAUDE_CONFIG_DIR"]).expanduser() if env.get("CLAUDE_CONFIG_DIR") else home / ".claude"
        folders = {_real(f): "the bot's own folder (its code and .env)" for f in (*bot_folders, bot_folder())}
        folders[_real(sessions_dir / STATE_DIR)] = "the bot's state folder (SESSIONS_DIR/.bot)"
        files = {_real(config / CREDENTIALS_FILE): "Claude's login (.credentials.json)"}
        files |= {_real(f / ".env"): "the bot's .env (its token)" for f in folders if f.name != STATE_DIR}
        kept = tuple(dict.fromkeys(s for s in secrets if len(s) >= MIN_SECRET))
        return cls(folders, files, kept)


def judge(path: Path, own: Sequence[Path], protected: Protected) -> Judgement:
    """inside / ask / never for a resolved path; `own` are the session's folders (workspace, files/).

    The session's own folders win over a protected folder that holds them (a project session's uploads live in
    SESSIONS_DIR/.bot/sessions/<name>/files), but never over a protected file.
    """
    what = protected.files.get(path)
    if what is not None:
        return Judgement(Verdict.NEVER, path, f"{path} is {what}; the bot never sends it.")
    if any(path.is_relative_to(_real(folder)) for folder in own):
        return Judgement(Verdict.INSIDE, path, "")
    for folder, what in protected.folders.items():
        if path.is_relative_to(folder):
            return Judgement(Verdict.NEVER, path, f"{path} is inside {what}; the bot never sends it.")
    return Judgement(Verdict.ASK, path, f"{path} is outside this session's folder")


def secret_in(path: Path, secrets: Sequence[str]) -> bool:
    """Whether the file holds any of the secrets (read in chunks that overlap by the longest secret)."""
    needles = [s.encode() for s in secrets if s]
    if not needles:
        return False
    overlap = max(map(len, needles)) - 1
    tail = b""
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            window = tail + chunk
            if any(needle in window for needle in needles):
                return True
            tail = window[-overlap:] if overlap else b""
    return False


def holds_the_bot(folder: Path, protected: Mapping[Path, str]) -> str:
    """Why `folder` (resolved) may not be a project folder, or "": it is, lies in, or contains a protected one."""
    for other, what in protected.items():
        if folder.is_relative_to(other):
            return f"{folder} is inside {what} ({other})"
        if other.is_relative_to(folder):
            return f"{folder} contains {what} ({other})"
    return ""


def _real(path: Path) -> Path:
    return path.expanduser().resolve()
