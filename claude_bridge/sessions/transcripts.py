"""The Claude Code CLI's own transcripts of a folder: which conversations exist, what each was about, how long.

Read only, and defensively: the CLI owns these files (`<config>/projects/<escaped cwd>/<session id>.jsonl`,
protocol notes §9). Huge files are read in bounded pieces; lines that are not what we expect are skipped.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

MAX_LINE = 1024 * 1024  # longer lines are tool output (a Read duplicates the file): skipped unparsed
MAX_SCAN = 16 * 1024 * 1024  # bytes read per transcript at most; past it the count says "at least"
TAIL = 256 * 1024  # titles are appended as the conversation goes on: read the end for them
TITLE_CHARS = 80
# What the CLI wraps around prompts it makes itself (slash commands, reminders); not what the user typed.
NOISE = re.compile(r"<(system-reminder|local-command-[a-z]+|command-[a-z]+)>.*?</\1>\s*", re.DOTALL)


@dataclass(frozen=True)
class Conversation:
    """One earlier conversation in a folder."""

    session_id: str
    title: str  # its title (set by the user or generated), else its first prompt
    modified: float  # the transcript's mtime
    messages: int  # the user's prompts plus Claude's replies
    complete: bool = True  # False: the file was too big to count it all; `messages` is a lower bound


def config_dir(env: Mapping[str, str]) -> Path:
    """Where the CLI keeps its state: $CLAUDE_CONFIG_DIR, else ~/.claude."""
    explicit = env.get("CLAUDE_CONFIG_DIR")
    if explicit:
        return Path(explicit).expanduser()
    return Path(env.get("HOME") or Path.home()) / ".claude"


def escape(cwd: Path) -> str:
    """The CLI's name for a folder's transcripts: every character outside [A-Za-z0-9] becomes '-'."""
    return re.sub(r"[^A-Za-z0-9]", "-", str(cwd))


def transcripts_dir(config: Path, cwd: Path) -> Path | None:
    """The folder holding `cwd`'s transcripts, if any (names over 200 characters are cut and given a hash)."""
    for folder in dict.fromkeys((cwd.resolve(), cwd.absolute())):
        name = escape(folder)
        candidate = config / "projects" / name
        if candidate.is_dir():
            return candidate
        if len(name) > 200:
            cut = sorted((config / "projects").glob(f"{name[:200]}-*"))
            if len(cut) == 1 and cut[0].is_dir():
                return cut[0]
    return None


def is_session_id(value: str) -> bool:
    """The CLI's session ids are UUIDs (and a UUID cannot start with '-')."""
    try:
        return str(uuid.UUID(value)) == value.lower()
    except ValueError:
        return False


def list_conversations(config: Path, cwd: Path, limit: int = 10) -> list[Conversation]:
    """The newest `limit` conversations of `cwd`, newest first; those with no prompt at all are left out."""
    folder = transcripts_dir(config, cwd)
    if folder is None:
        return []
    files: list[tuple[float, Path]] = []
    for path in folder.glob("*.jsonl"):
        if not is_session_id(path.stem) or not path.is_file():
            continue
        try:
            files.append((path.stat().st_mtime, path))
        except OSError:
            continue
    conversations = []
    for modified, path in sorted(files, reverse=True):
        conversation = read_conversation(path, modified)
        if conversation is not None:
            conversations.append(conversation)
        if len(conversations) >= limit:
            break
    return conversations


def find(config: Path, cwd: Path, session_id: str) -> Path | None:
    """The transcript of `session_id` in `cwd`'s folder, if it is there."""
    folder = transcripts_dir(config, cwd)
    if folder is None or not is_session_id(session_id):
        return None
    path = folder / f"{session_id.lower()}.jsonl"
    return path if path.is_file() else None


def read_conversation(path: Path, modified: float) -> Conversation | None:
    """What a transcript says of its conversation, or None if it holds no prompt (or cannot be read)."""
    first_prompt = ""
    titles: dict[str, str] = {}
    prompts = 0
    replies: set[str] = set()
    try:
        size = path.stat().st_size
        for entry in _entries(path, MAX_SCAN):
            kind = entry.get("type")
            if kind == "user":
                text = _prompt(entry)
                if text:
                    prompts += 1
                    first_prompt = first_prompt or text
            elif kind == "assistant":
                message = entry.get("message")
                if isinstance(message, dict) and not entry.get("isSidechain"):
                    replies.add(str(message.get("id") or entry.get("uuid")))
            _take_title(entry, titles)
        if size > MAX_SCAN:
            for entry in _entries(path, TAIL, start=size - TAIL):
                _take_title(entry, titles)
    except OSError as exc:
        logger.warning("cannot read transcript %s: %s", path, exc)
        return None
    if not prompts:
        return None
    title = titles.get("custom-title") or titles.get("ai-title") or titles.get("summary") or first_prompt
    return Conversation(path.stem, _short(title), modified, prompts + len(replies), complete=size <= MAX_SCAN)


def _take_title(entry: dict[str, Any], titles: dict[str, str]) -> None:
    """The newest title of each kind: one the user set, one the CLI generated, an older CLI's summary."""
    for kind, key in (("custom-title", "customTitle"), ("ai-title", "aiTitle"), ("summary", "summary")):
        value = entry.get(key)
        if entry.get("type") == kind and isinstance(value, str) and value.strip():
            titles[kind] = value


def _prompt(entry: dict[str, Any]) -> str:
    """What the user typed in a `user` line; "" for tool results, the CLI's own meta lines and side chains."""
    if entry.get("isMeta") or entry.get("isSidechain"):
        return ""
    message = entry.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, str):
        text = content
    elif isinstance(content, list):
        text = "\n".join(
            str(block.get("text", "")) for block in content if isinstance(block, dict) and block.get("type") == "text"
        )
    else:
        return ""
    text = " ".join(NOISE.sub("", text).split())
    return "" if text.startswith("[Request interrupted") else text


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= TITLE_CHARS else text[: TITLE_CHARS - 1] + "…"


def _entries(path: Path, budget: int, start: int = 0) -> Iterator[dict[str, Any]]:
    """JSON objects of the file's lines from `start`, reading at most `budget` bytes; long or broken lines skipped."""
    read = 0
    with path.open("rb") as handle:
        if start:
            handle.seek(start)
            read += len(handle.readline(MAX_LINE))  # most likely the middle of a line
        while read < budget:
            line = handle.readline(MAX_LINE)
            if not line:
                return
            read += len(line)
            if not line.endswith(b"\n") and len(line) >= MAX_LINE:
                read += _skip_rest(handle)
                continue
            try:
                entry = json.loads(line)
            except ValueError:  # garbage, or a half-written last line
                continue
            if isinstance(entry, dict):
                yield entry


def _skip_rest(handle: Any) -> int:
    """Read past the end of an overlong line without keeping it; the bytes skipped."""
    skipped = 0
    while True:
        chunk = handle.readline(MAX_LINE)
        skipped += len(chunk)
        if not chunk or chunk.endswith(b"\n"):
            return skipped
