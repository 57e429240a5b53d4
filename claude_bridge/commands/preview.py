"""What a tool call would do, for a person about to approve it: a unified diff against the file as it is now for
Edit / MultiEdit / Write / NotebookEdit, the command for Bash, the URL for WebFetch, the key input for others.

Plain text for any front end (the block is meant to be shown as code); long blocks are cut and the whole kept
for a `.diff` attachment. It reads the file being changed (through `read`), nothing else: no Telegram, no sessions.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from claude_bridge.commands.describe import tool_line

BLOCK_LINES = 40
BLOCK_CHARS = 2500
LINE_CHARS = 200
NEW_FILE_LINES = 15
READ_LIMIT = 2 * 1024 * 1024  # a bigger file is not diffed: the preview shows the change itself
_ELLIPSIS = "…"

Reader = Callable[[str], str | None]  # a file's text now; None when there is no such file; OSError when unreadable


@dataclass(frozen=True)
class ToolPreview:
    """A heading, an optional code block (`language` "diff", "bash", "json" or ""), notes, and the uncut block."""

    heading: str
    block: str = ""
    language: str = ""
    notes: tuple[str, ...] = ()
    full: str = ""  # the whole block when `block` was cut; attach it as `full_name`
    full_name: str = ""

    @property
    def cut(self) -> bool:
        return bool(self.full)

    def plain(self) -> str:
        """All of it as plain lines (for a terminal, or as a fallback)."""
        return "\n".join(part for part in (self.heading, self.block, *self.notes) if part)


def read_file(path: str) -> str | None:
    """The file's text as it is now; None if it does not exist; OSError if it is unreadable, binary or huge."""
    file = Path(path)
    if not file.is_absolute():  # the CLI's file tools take absolute paths; ours is not Claude's working folder
        raise OSError(f"{path} is not an absolute path")
    if not file.exists():
        return None
    if not file.is_file() or file.stat().st_size > READ_LIMIT:
        raise OSError(f"{path} is not a regular file of at most {READ_LIMIT // 1024 // 1024} MB")
    data = file.read_bytes()
    if b"\0" in data:
        raise OSError(f"{path} is a binary file")
    return data.decode("utf-8", errors="replace")


def tool_preview(
    name: str, tool_input: Mapping[str, Any], *, reason: str = "", read: Reader = read_file
) -> ToolPreview:
    """The preview of one `can_use_tool` request; `reason` is the CLI's decision reason, if any."""
    data = dict(tool_input)
    why = tuple(f"Why: {w}" for w in dict.fromkeys(w for w in (str(data.get("description") or ""), reason) if w))
    if name in ("Edit", "MultiEdit"):
        edits = data.get("edits") if name == "MultiEdit" else [data]
        pairs = [
            (str(e.get("old_string") or ""), str(e.get("new_string") or ""), bool(e.get("replace_all")))
            for e in edits or []
            if isinstance(e, Mapping)
        ]
        preview = _edit(str(data.get("file_path", "")), pairs, read)
    elif name == "Write":
        preview = _write(str(data.get("file_path", "")), str(data.get("content", "")), read)
    elif name == "NotebookEdit":
        preview = _notebook(data, read)
    elif name == "Bash":
        preview = _block("🖥 Bash command:", str(data.get("command", "")), "bash")
    elif name == "WebFetch":
        prompt = str(data.get("prompt") or "")
        preview = ToolPreview(f"🌐 fetch {data.get('url', '')}", notes=(f"To find: {prompt}",) if prompt else ())
    else:
        preview = _block(tool_line(name, data), json.dumps(data, ensure_ascii=False, indent=1), "json")
    return replace(preview, notes=preview.notes + why)


def _block(heading: str, text: str, language: str, *, full_name: str = "", notes: tuple[str, ...] = ()) -> ToolPreview:
    """A heading over `text`, cut to a readable size (lines, characters, each line's length) with the rest noted."""
    lines = text.splitlines()
    kept: list[str] = []
    used = 0
    for line in lines[:BLOCK_LINES]:
        line = line if len(line) <= LINE_CHARS else line[: LINE_CHARS - 1] + _ELLIPSIS
        if used + len(line) > BLOCK_CHARS and kept:
            break
        kept.append(line)
        used += len(line) + 1
    block = "\n".join(kept)
    cut = len(kept) < len(lines) or any(len(line) > LINE_CHARS for line in lines[: len(kept)])
    if not cut:
        return ToolPreview(heading, text.rstrip("\n"), language, notes)
    more = len(lines) - len(kept)
    block += f"\n{_ELLIPSIS} {more} more line{'s' if more != 1 else ''}" if more else f"\n{_ELLIPSIS}"
    return ToolPreview(heading, block, language, notes, full=text, full_name=full_name)


def _diff(path: str, before: str, after: str) -> str:
    lines = difflib.unified_diff(
        before.splitlines(keepends=True), after.splitlines(keepends=True), f"a/{_name(path)}", f"b/{_name(path)}"
    )
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)


def _name(path: str) -> str:
    return Path(path).name or path


def _diff_preview(verb: str, path: str, before: str, after: str) -> ToolPreview:
    diff = _diff(path, before, after)
    added = sum(1 for line in diff.splitlines() if line.startswith("+") and not line.startswith("+++"))
    removed = sum(1 for line in diff.splitlines() if line.startswith("-") and not line.startswith("---"))
    heading = f"✏️ {verb} {path} (+{added} −{removed})"
    if not diff:
        return ToolPreview(heading, notes=("(no change to the file)",))
    return _block(heading, diff.rstrip("\n"), "diff", full_name=_name(path) + ".diff")


def _edit(path: str, edits: list[tuple[str, str, bool]], read: Reader) -> ToolPreview:
    try:
        before = read(path)
    except OSError as exc:
        return _snippets(path, edits, f"(could not read the file now: {exc})")
    if before is None:
        if len(edits) == 1 and not edits[0][0]:  # Edit with an empty old_string creates the file
            return _write(path, edits[0][1], read)
        return _snippets(path, edits, "(the file does not exist now)")
    after = before
    for old, new, every in edits:
        if old not in after:
            return _snippets(path, edits, "(the text to replace is not in the file as it is now)")
        after = after.replace(old, new) if every else after.replace(old, new, 1)
    return _diff_preview("edit", path, before, after)


def _snippets(path: str, edits: list[tuple[str, str, bool]], note: str) -> ToolPreview:
    """The edits as -/+ lines when they cannot be placed in the file."""
    lines: list[str] = []
    for old, new, _ in edits:
        lines += ["-" + line for line in old.splitlines()] + ["+" + line for line in new.splitlines()]
    return _block(f"✏️ edit {path}", "\n".join(lines), "diff", full_name=_name(path) + ".diff", notes=(note,))


def _write(path: str, content: str, read: Reader) -> ToolPreview:
    try:
        before = read(path)
    except OSError as exc:
        return _block(f"📝 write {path}", content, "", notes=(f"(could not read the file now: {exc})",))
    if before is not None:
        return _diff_preview("overwrite", path, before, content)
    lines = content.splitlines()
    size = len(content.encode("utf-8"))
    heading = f"📝 new file {path} ({_size(size)}, {len(lines)} line{'s' if len(lines) != 1 else ''})"
    head = "\n".join(lines[:NEW_FILE_LINES])
    preview = _block(heading, head, "")
    if len(lines) <= NEW_FILE_LINES and not preview.cut:
        return preview
    more = len(lines) - NEW_FILE_LINES
    block = preview.block + (f"\n{_ELLIPSIS} {more} more lines" if more > 0 and not preview.cut else "")
    return ToolPreview(heading, block, "", full=_diff(path, "", content), full_name=_name(path) + ".diff")


def _size(size: int) -> str:
    return f"{size} bytes" if size < 1024 else f"{size / 1024:.1f} KB"


def _notebook(data: Mapping[str, Any], read: Reader) -> ToolPreview:
    path, mode = str(data.get("notebook_path", "")), str(data.get("edit_mode") or "replace")
    new = "" if mode == "delete" else str(data.get("new_source", ""))
    try:
        text = read(path)
        cells = json.loads(text)["cells"] if text is not None else []
    except (OSError, ValueError, KeyError, TypeError):
        cells = []
    cell = next((c for c in cells if isinstance(c, Mapping) and c.get("id") == data.get("cell_id")), None)
    if cell is None or mode == "insert":
        verb = "insert a cell in" if mode == "insert" else f"{mode} a cell of"
        return _block(f"✏️ {verb} {path}", new, "")
    source = cell.get("source", "")
    before = "".join(source) if isinstance(source, list) else str(source)
    return _diff_preview(f"{mode} cell {data.get('cell_id')} of", path, before, new)
