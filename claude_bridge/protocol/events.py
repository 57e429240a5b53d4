"""The CLI's stream-json output as typed events: frozen dataclasses and the one pure parser that builds them.

It knows the schema of the lines `claude -p --output-format stream-json` prints (see the protocol notes), not
processes or pipes; the process layer feeds it, everyone else reads its dataclasses. What we write is messages.py.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from claude_bridge.protocol.limits import RateLimit, parse_rate_limit

logger = logging.getLogger(__name__)

PREVIEW_CHARS = 300
# The CLI's --permission-mode values (it lists them when given a wrong one).
PERMISSION_MODES = ("default", "acceptEdits", "plan", "bypassPermissions", "dontAsk", "auto")


@dataclass(frozen=True)
class SessionStarted:
    """`system/init`: emitted at the start of every turn."""

    session_id: str
    model: str
    cwd: str = ""
    permission_mode: str = ""
    version: str = ""
    # What the session offers as /commands: `skills` are also in `slash_commands` (both versions); `terminal` (only
    # 2.1.332 lists them) need a terminal. The bot's command menu is built from these.
    slash_commands: tuple[str, ...] = ()
    skills: tuple[str, ...] = ()
    terminal_slash_commands: tuple[str, ...] = ()


@dataclass(frozen=True)
class AssistantText:
    """A text block of Claude's answer."""

    text: str


@dataclass(frozen=True)
class LimitText:
    """The CLI's own words for a request the usage limit refused ("You've hit your 5-hour limit · resets …"): an
    assistant message with `"model": "<synthetic>"` and `"error": "rate_limit"` (§17). Not Claude's answer, so front
    ends do not show it; the turn's result carries the same text."""

    text: str


@dataclass(frozen=True)
class TextDelta:
    """A piece of the text block being streamed; the whole block follows as AssistantText."""

    text: str


@dataclass(frozen=True)
class ToolUse:
    """Claude asked to run a tool."""

    id: str
    name: str
    input: Mapping[str, Any]


@dataclass(frozen=True)
class ToolResult:
    """A tool finished; `preview` is the start of its output."""

    tool_use_id: str
    is_error: bool
    preview: str


@dataclass(frozen=True)
class ApiRetry:
    """The CLI is retrying a failed API call."""

    attempt: int
    max_retries: int
    delay_ms: float
    error: str
    status: int | None


@dataclass(frozen=True)
class ControlRequest:
    """A control request the CLI sends us (`can_use_tool`, `mcp_message`, …); it waits for our control_response."""

    request_id: str
    subtype: str
    request: Mapping[str, Any]


@dataclass(frozen=True)
class PermissionRequest:
    """The fields of a `can_use_tool` control request (only with --permission-prompt-tool stdio)."""

    request_id: str
    tool_name: str
    input: Mapping[str, Any]
    tool_use_id: str = ""
    reason: str = ""
    suggestions: tuple[Mapping[str, Any], ...] = ()  # the CLI's `permission_suggestions` ("always allow" rules)

    @classmethod
    def of(cls, request: ControlRequest) -> PermissionRequest:
        """Read a `can_use_tool` ControlRequest."""
        body = request.request
        return cls(
            request_id=request.request_id,
            tool_name=str(body.get("tool_name", "")),
            input=dict(body.get("input") or {}),
            tool_use_id=str(body.get("tool_use_id", "")),
            reason=str(body.get("decision_reason", "")),
            suggestions=tuple(s for s in body.get("permission_suggestions") or [] if isinstance(s, Mapping)),
        )


@dataclass(frozen=True)
class ControlCancel:
    """The CLI abandoned one of its pending control requests (e.g. a permission prompt after an interrupt)."""

    request_id: str


@dataclass(frozen=True)
class ControlResponse:
    """The CLI's answer to one of our control requests (routed here, not given to callers)."""

    request_id: str
    ok: bool
    error: str = ""
    payload: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskStarted:
    """`system/task_started`: a background task began (a `run_in_background` Bash, a background agent, …)."""

    task_id: str
    description: str
    task_type: str = ""
    tool_use_id: str = ""


@dataclass(frozen=True)
class TaskUpdated:
    """`system/task_updated`: a task's status changed (`patch.status`, e.g. "completed", "killed")."""

    task_id: str
    status: str


@dataclass(frozen=True)
class TaskNotification:
    """`system/task_notification`: a task ended; the CLI tells the model, which starts a turn by itself."""

    task_id: str
    status: str
    summary: str
    output_file: str = ""
    tool_use_id: str = ""


@dataclass(frozen=True)
class TaskInfo:
    """One running background task as `background_tasks_changed` lists it."""

    task_id: str
    description: str
    task_type: str = ""


@dataclass(frozen=True)
class BackgroundTasksChanged:
    """`system/background_tasks_changed` (2.1.332+): the whole set of running tasks, whenever it changes."""

    tasks: tuple[TaskInfo, ...]


# conversation_lost: the conversation to resume was not found, so Claude started a fresh one.
# "handed_over": the bot reloads; the turn goes on in its next image (the last event this image sees of it).
StatusKind = Literal["crashed", "restarting", "recovered", "gave_up", "conversation_lost", "handed_over"]


@dataclass(frozen=True)
class ProcessStatus:
    """Our own lifecycle notice: the process crashed, is restarting, recovered or gave up."""

    kind: StatusKind
    message: str
    exit_code: int | None = None
    attempt: int = 0


HANDED_OVER: StatusKind = "handed_over"

# Subtypes we add for turns the CLI could not finish itself.
EXITED = "process_exited"
WATCHDOG = "watchdog"
START_FAILED = "start_failed"
CANCELLED = "cancelled"


@dataclass(frozen=True)
class TurnResult:
    """The end of a turn: the CLI's `result`, or our own when the process failed."""

    subtype: str
    is_error: bool
    text: str
    session_id: str = ""
    duration_ms: int = 0
    cost_usd: float = 0.0
    total_cost_usd: float = 0.0
    usage: Mapping[str, Any] = field(default_factory=dict)
    num_turns: int = 0
    terminal_reason: str = ""
    errors: tuple[str, ...] = ()
    api_error_status: int | None = None  # the HTTP status of an API error that ended the turn (429: see limits.py)
    # `origin.kind` of a turn Claude started itself ("task-notification", …); "" for a turn answering a user message.
    origin: str = ""

    @property
    def stopped(self) -> bool:
        """The turn was interrupted (by /stop, the watchdog or shutdown)."""
        return self.terminal_reason.startswith("aborted")

    @property
    def error_text(self) -> str:
        """A human sentence for a failed turn, following the SDK's order: errors, result, subtype."""
        if self.stopped and self.subtype not in (WATCHDOG, CANCELLED):
            return "Stopped."
        if self.subtype == "error_max_turns":
            return "Claude reached the maximum number of turns for one message. " + "; ".join(self.errors)
        useful = [e for e in self.errors if not e.startswith("[ede_diagnostic]")]
        return "; ".join(useful) or self.text or f"Claude ended with {self.subtype}"


Event = (
    SessionStarted
    | TextDelta
    | AssistantText
    | LimitText
    | ToolUse
    | ToolResult
    | ApiRetry
    | ControlRequest
    | ControlCancel
    | ControlResponse
    | TaskStarted
    | TaskUpdated
    | TaskNotification
    | BackgroundTasksChanged
    | ProcessStatus
    | TurnResult
    | RateLimit
)


TASK_SUBTYPES = ("task_started", "task_updated", "task_notification", "background_tasks_changed")


def _origin_kind(origin: Any) -> str:
    """`result.origin.kind`: who started the turn; absent or null for a user message (§16.1)."""
    return str(origin.get("kind") or "") if isinstance(origin, dict) else ""


def _task_event(raw: Mapping[str, Any]) -> Event:
    """One of the background-task system events (§16.1)."""
    task_id = str(raw.get("task_id", ""))
    match raw.get("subtype"):
        case "task_started":
            return TaskStarted(
                task_id=task_id,
                description=str(raw.get("description", "")),
                task_type=str(raw.get("task_type", "")),
                tool_use_id=str(raw.get("tool_use_id", "")),
            )
        case "task_updated":
            return TaskUpdated(task_id=task_id, status=str((raw.get("patch") or {}).get("status") or ""))
        case "task_notification":
            return TaskNotification(
                task_id=task_id,
                status=str(raw.get("status", "")),
                summary=str(raw.get("summary", "")),
                output_file=str(raw.get("output_file", "")),
                tool_use_id=str(raw.get("tool_use_id", "")),
            )
        case _:
            tasks = [t for t in raw.get("tasks") or () if isinstance(t, dict)]
            return BackgroundTasksChanged(
                tuple(
                    TaskInfo(str(t.get("task_id", "")), str(t.get("description", "")), str(t.get("task_type", "")))
                    for t in tasks
                )
            )


def _number(value: Any, kind: type[int] | type[float] = int) -> Any:
    """A number from the stream, or 0 when the CLI sent null or something else."""
    try:
        return kind(value) if value is not None else kind(0)
    except (TypeError, ValueError):
        return kind(0)


def _names(value: Any) -> tuple[str, ...]:
    """A list of names from `init` (null on versions that lack the field; non-strings skipped)."""
    return tuple(item for item in value if isinstance(item, str)) if isinstance(value, list) else ()


def _flatten_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(block.get("text", "")) for block in content if isinstance(block, dict) and "text" in block)
    return ""


def parse_event(raw: Mapping[str, Any]) -> tuple[Event, ...]:
    """Turn one stream-json object into typed events; unknown types give () (newer CLIs must not break us)."""
    match raw.get("type"), raw.get("subtype"):
        case "system", "init":
            return (_session_started(raw),)
        case "system", "api_retry":
            return (_api_retry(raw),)
        case "system", subtype if subtype in TASK_SUBTYPES:
            return (_task_event(raw),)
        case "stream_event", _:
            return _text_delta(raw)
        case "assistant", _:
            return _assistant(raw)
        case "user", _:
            return _tool_results(raw)
        case "result", subtype:
            return (_turn_result(raw, str(subtype or "")),)
        case "rate_limit_event", _:
            return (parse_rate_limit(raw),)
        case "control_request", _:
            request = raw.get("request") or {}
            return (ControlRequest(str(raw.get("request_id", "")), str(request.get("subtype", "")), request),)
        case "control_cancel_request", _:
            return (ControlCancel(str(raw.get("request_id", ""))),)
        case "control_response", _:
            return (_control_response(raw.get("response") or {}),)
        case kind, subtype:
            logger.debug("skipping stream-json event type=%s subtype=%s", kind, subtype)
            return ()


def _session_started(raw: Mapping[str, Any]) -> SessionStarted:
    return SessionStarted(
        session_id=str(raw.get("session_id", "")),
        model=str(raw.get("model", "")),
        cwd=str(raw.get("cwd", "")),
        permission_mode=str(raw.get("permissionMode", "")),
        version=str(raw.get("claude_code_version", "")),
        slash_commands=_names(raw.get("slash_commands")),
        skills=_names(raw.get("skills")),
        terminal_slash_commands=_names(raw.get("terminal_slash_commands")),
    )


def _api_retry(raw: Mapping[str, Any]) -> ApiRetry:
    status = raw.get("error_status")
    return ApiRetry(
        attempt=_number(raw.get("attempt")),
        max_retries=_number(raw.get("max_retries")),
        delay_ms=_number(raw.get("retry_delay_ms"), float),
        error=str(raw.get("error", "")),
        status=int(status) if isinstance(status, int) else None,
    )


def _text_delta(raw: Mapping[str, Any]) -> tuple[Event, ...]:
    """A piece of Claude's own text (`--include-partial-messages`); a subagent's pieces are not shown."""
    inner = raw.get("event") or {}
    delta = inner.get("delta") or {}
    is_text = inner.get("type") == "content_block_delta" and delta.get("type") == "text_delta"
    if is_text and raw.get("parent_tool_use_id") is None and delta.get("text"):
        return (TextDelta(str(delta["text"])),)
    return ()


def _assistant(raw: Mapping[str, Any]) -> tuple[Event, ...]:
    if raw.get("parent_tool_use_id") is not None:
        return ()  # a subagent's inner conversation: its result comes back as the Task tool's result
    if raw.get("error") == "rate_limit":
        return (LimitText(_flatten_text((raw.get("message") or {}).get("content"))),)
    events: list[Event] = []
    for block in (raw.get("message") or {}).get("content") or []:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text" and block.get("text"):
            events.append(AssistantText(str(block["text"])))
        elif block.get("type") == "tool_use":
            events.append(ToolUse(str(block.get("id", "")), str(block.get("name", "")), dict(block.get("input") or {})))
    return tuple(events)


def _tool_results(raw: Mapping[str, Any]) -> tuple[Event, ...]:
    content = (raw.get("message") or {}).get("content")
    if not isinstance(content, list) or raw.get("parent_tool_use_id") is not None:
        return ()
    return tuple(
        ToolResult(
            tool_use_id=str(block.get("tool_use_id", "")),
            is_error=bool(block.get("is_error", False)),
            preview=_flatten_text(block.get("content"))[:PREVIEW_CHARS],
        )
        for block in content
        if isinstance(block, dict) and block.get("type") == "tool_result"
    )


def _turn_result(raw: Mapping[str, Any], subtype: str) -> TurnResult:
    return TurnResult(
        subtype=subtype,
        is_error=bool(raw.get("is_error", False)),
        text=str(raw.get("result") or ""),
        session_id=str(raw.get("session_id", "")),
        duration_ms=_number(raw.get("duration_ms")),
        total_cost_usd=_number(raw.get("total_cost_usd"), float),
        usage=dict(raw.get("usage") or {}),
        num_turns=_number(raw.get("num_turns")),
        terminal_reason=str(raw.get("terminal_reason") or ""),
        errors=tuple(str(e) for e in raw.get("errors") or ()),
        api_error_status=raw["api_error_status"] if isinstance(raw.get("api_error_status"), int) else None,
        origin=_origin_kind(raw.get("origin")),
    )


def _control_response(response: Mapping[str, Any]) -> ControlResponse:
    return ControlResponse(
        request_id=str(response.get("request_id", "")),
        ok=response.get("subtype") == "success",
        error=str(response.get("error", "")),
        payload=dict(response.get("response") or {}),
    )
