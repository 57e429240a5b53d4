"""Words both front ends use to describe what Claude does: one line per tool call.

Plain strings from the protocol's events; no Telegram, no terminal, no sessions.
"""

from __future__ import annotations

from typing import Any

_ELLIPSIS = "…"
_TOOL_ICONS = {
    "Bash": "🖥",
    "BashOutput": "🖥",
    "KillShell": "🖥",
    "Read": "📖",
    "Edit": "✏️",
    "MultiEdit": "✏️",
    "NotebookEdit": "✏️",
    "Write": "📝",
    "Grep": "🔎",
    "Glob": "🔎",
    "LS": "🔎",
    "WebFetch": "🌐",
    "WebSearch": "🌐",
    "TodoWrite": "📋",
    "Task": "🤖",
    "Agent": "🤖",
}
_SUMMARY_KEYS = {
    "Bash": ("command",),
    "Read": ("file_path",),
    "Edit": ("file_path",),
    "MultiEdit": ("file_path",),
    "Write": ("file_path",),
    "NotebookEdit": ("notebook_path",),
    "Grep": ("pattern",),
    "Glob": ("pattern",),
    "LS": ("path",),
    "WebFetch": ("url",),
    "WebSearch": ("query",),
    "Task": ("description", "prompt"),
    "Agent": ("description", "prompt"),
}
_PATH_KEYS = {"file_path", "notebook_path", "path"}
_SUMMARY_CHARS = 80


def tool_line(name: str, tool_input: dict[str, Any]) -> str:
    """One plain-text progress line for a tool call: icon, tool name and a short summary of its input."""
    icon = _TOOL_ICONS.get(name, "🔧")
    summary = _tool_summary(name, tool_input)
    return f"{icon} {name}: {summary}" if summary else f"{icon} {name}"


def _tool_summary(name: str, tool_input: dict[str, Any]) -> str:
    if name == "TodoWrite":
        return _todo_summary(tool_input.get("todos"))
    for key in _SUMMARY_KEYS.get(name, ()):
        value = tool_input.get(key)
        if isinstance(value, str) and value.strip():
            return _shorten(value, from_left=key in _PATH_KEYS)
    for key, value in tool_input.items():
        if isinstance(value, str) and value.strip() and len(value) <= 500:
            return _shorten(value, from_left=key in _PATH_KEYS)
    return ""


def _todo_summary(todos: object) -> str:
    if not isinstance(todos, list):
        return ""
    items = [todo for todo in todos if isinstance(todo, dict)]
    done = sum(1 for todo in items if todo.get("status") == "completed")
    current = next((todo for todo in items if todo.get("status") == "in_progress"), None)
    summary = f"{done}/{len(items)} done"
    if current is not None:
        label = current.get("activeForm") or current.get("content")
        if isinstance(label, str) and label.strip():
            summary += " · " + label
    return _shorten(summary, from_left=False)


def _shorten(value: str, *, from_left: bool) -> str:
    """First line, whitespace collapsed, cut to ~80 characters; paths keep their file name."""
    lines = value.strip().splitlines() or [""]
    first = " ".join(lines[0].split())
    more = len(lines) > 1
    if len(first) > _SUMMARY_CHARS:
        if from_left:
            return _ELLIPSIS + first[-(_SUMMARY_CHARS - 1) :]
        return first[: _SUMMARY_CHARS - 1].rstrip() + _ELLIPSIS
    return first + (" " + _ELLIPSIS if more else "")
