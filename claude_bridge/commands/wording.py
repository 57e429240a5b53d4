"""How a session and its turns read to the user: a /sessions line, the /status text, "5 min ago", and the words
both front ends show around a turn (the header of Claude's own turn, "Queued, #n", the API-retry sentence).

Plain strings from the facts the sessions layer supplies; each front end only adds its own marks (emoji, "[info]").
"""

from __future__ import annotations

import re

from claude_bridge.protocol.claude_schedules import ClaudeSchedule
from claude_bridge.protocol.events import ApiRetry, TaskInfo
from claude_bridge.sessions.info import SessionInfo
from claude_bridge.sessions.transcripts import Conversation
from claude_bridge.sessions.worker import Delivery

# The CLI's task-notification summary (§16.1): 'Background command "pytest -q" completed (exit code 0)'.
BYPASS_WARNING = "⚠️ Every tool runs unasked (bypassPermissions); /mode default asks before tools again."
_BACKGROUND = re.compile(r'^Background command "(?P<what>.*)" (?P<status>\w+)(?: \(exit code (?P<code>-?\d+)\))?$')


def session_line(info: SessionInfo, active: bool, now: float) -> str:
    """One line of /sessions."""
    if info.damage:
        return f"{'▶️' if active else '•'} {info.name} — {info.damage}"
    queued = f", {info.queued} queued" if info.queued else ""
    return (
        f"{'▶️' if active else '•'} {info.name} — {info.state}{queued}; {info.persona}, {info.model}; "
        f"{info.turns} turns, ${info.total_cost_usd:.4f}; active {ago(now - info.last_active)}"
        f"{_folder(info)}"
    )


def status_text(info: SessionInfo, now: float) -> str:
    """What /status shows."""
    if info.damage:
        return f"Session: {info.name} ({info.damage})\nIt refuses messages until the file is fixed; /delete removes it."
    timings = info.last_timings
    lines = [
        f"Session: {info.name} ({info.state}{', pid ' + str(info.pid) if info.pid else ''})",
        f"Folder: {info.workspace}",
        f"Persona: {info.persona} · permissions: {info.permission_mode}",
        *([BYPASS_WARNING] if info.permission_mode == "bypassPermissions" else []),
        f"Model: {info.model}{' (override)' if info.model_override else ''}",
        f"Queued: {info.queued}",
        f"Turns: {info.turns} · cost: ${info.total_cost_usd:.4f}",
        f"Last active: {ago(now - info.last_active)}",
        "Last turn: start {} · first text {} · answer {}".format(
            *(_seconds(timings.get(key)) for key in ("spawn_to_init", "send_to_first_text", "send_to_result"))
        ),
    ]
    if info.claude_session_id:
        lines.append(f"Claude session: {info.claude_session_id}")
    if info.tasks:
        lines.append(f"Background tasks ({len(info.tasks)}, /tasks to stop one):")
        lines += [f"• {task_line(task)}" for task in info.tasks]
    return "\n".join(lines)


def task_line(task: TaskInfo) -> str:
    """One running background task: what it is, and its id."""
    kind = f", {task.task_type}" if task.task_type else ""
    return f"{task.description or 'a task'} ({task.task_id}{kind})"


def claude_schedule_line(schedule: ClaudeSchedule) -> str:
    """One of Claude's own crons or wakeups: when, how often, and its prompt."""
    when = f"wakeup {schedule.spec}" if schedule.wakeup else f"cron {schedule.spec}"
    often = "recurring" if schedule.recurring else "once"
    return f"⏰ {when} ({often}, {schedule.id}): {schedule.brief()}"


def claude_turn_title(delivery: Delivery, active: str | None) -> str:
    """The header of a turn Claude started by itself, naming its session when `active` (the place's) is another."""
    return claude_turn_header(delivery.header, delivery.session if active != delivery.session else None)


def queued_text(position: int) -> str:
    """Said when a message waits behind others of its session."""
    return f"Queued, #{position} — Claude answers it after the earlier message(s)."


def retry_text(retry: ApiRetry) -> str:
    """The CLI retrying a failed API call: "API error 529 (Overloaded); retry 2/10 in 4 s"."""
    status = f" {retry.status}" if retry.status else ""
    when = f"retry {retry.attempt}/{retry.max_retries} in {retry.delay_ms / 1000:.0f} s"
    return f"API error{status} ({retry.error}); {when}"


def claude_turn_header(header: str, session: str | None = None) -> str:
    """The short line above a turn Claude started by itself; names the session when it is not the active one."""
    lines = [_header_line(line) for line in header.splitlines() if line.strip()] or ["🔔 Claude continued on its own"]
    if session:
        lines[0] = f"{lines[0]} — session “{session}”"
    return "\n".join(lines)


def _header_line(line: str) -> str:
    if line.startswith("⏰"):  # a schedule's run, worded by the sessions layer
        return line.strip()
    match = _BACKGROUND.match(line.strip())
    if match is None:
        return f"🔔 {line.strip()}"
    what, status, code = match["what"], match["status"], match["code"]
    if status == "completed" and code in (None, "0"):
        return f"🔔 Background task finished: `{what}`"
    return f"🔔 Background task {status}{f' (exit code {code})' if code else ''}: `{what}`"


def ago(seconds: float) -> str:
    """A short human duration in the past: "40 s ago", "5 min ago", "3 h ago", "2 d ago"."""
    if seconds < 90:
        return f"{seconds:.0f} s ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 129600:
        return f"{seconds / 3600:.0f} h ago"
    return f"{seconds / 86400:.0f} d ago"


def _seconds(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f} s"


def conversation_line(number: int, conversation: Conversation, current: bool, now: float) -> str:
    """One line of /resume: the earlier conversation's title, age and size."""
    count = f"{conversation.messages}{'' if conversation.complete else '+'} messages"
    mark = "▶️" if current else f"{number}."
    return f"{mark} {conversation.title} — {ago(now - conversation.modified)}, {count}"


def _folder(info: SessionInfo) -> str:
    return f"; 📁 {info.workspace}" if info.workspace else ""
