"""parse_event on stream-json objects shaped like the real CLI's (claude-cli-protocol.md §2), and TurnResult texts."""

from __future__ import annotations

from typing import Any

import pytest

from claude_bridge.protocol.events import (
    CANCELLED,
    PREVIEW_CHARS,
    WATCHDOG,
    ApiRetry,
    AssistantText,
    BackgroundTasksChanged,
    ControlCancel,
    ControlRequest,
    ControlResponse,
    PermissionRequest,
    SessionStarted,
    TaskInfo,
    TaskNotification,
    TaskStarted,
    TaskUpdated,
    TextDelta,
    ToolResult,
    ToolUse,
    TurnResult,
    parse_event,
)

pytestmark = pytest.mark.fast

SESSION = "79ce83d3-d3f1-4a65-a153-e78bb3a20946"
TOOL_ID = "toolu_bf1d4e2a9c0b4f1e8d7a6c5b"
USAGE = {
    "input_tokens": 200,
    "cache_creation_input_tokens": 0,
    "cache_read_input_tokens": 0,
    "output_tokens": 40,
    "service_tier": "standard",
}


def assistant(*blocks: dict[str, Any], parent: str | None = None) -> dict[str, Any]:
    return {
        "type": "assistant",
        "message": {
            "id": "msg_ca48",
            "type": "message",
            "role": "assistant",
            "model": "claude-opus-4-8",
            "content": list(blocks),
            "stop_reason": None,
            "stop_sequence": None,
            "usage": USAGE,
            "context_management": None,
        },
        "parent_tool_use_id": parent,
        "session_id": SESSION,
        "uuid": "c78d0000-0000-4000-8000-000000000000",
        "request_id": "req_fake_1eec6699",
    }


def user(content: Any, parent: str | None = None, **outer: Any) -> dict[str, Any]:
    return {
        "type": "user",
        "message": {"role": "user", "content": content},
        "parent_tool_use_id": parent,
        "session_id": SESSION,
        "uuid": "6e730000-0000-4000-8000-000000000000",
        "timestamp": "2026-11-21T16:09:33.496Z",
        **outer,
    }


def stream_event(event: dict[str, Any], parent: str | None = None) -> dict[str, Any]:
    return {"type": "stream_event", "event": event, "session_id": SESSION, "parent_tool_use_id": parent, "uuid": "2790"}


def text_delta(text: str, parent: str | None = None) -> dict[str, Any]:
    return stream_event(
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}, parent
    )


def result(subtype: str = "success", *, without: tuple[str, ...] = (), **fields: Any) -> dict[str, Any]:
    """A result line as the CLI writes it, with some fields replaced or left out (`without`)."""
    raw: dict[str, Any] = {
        "type": "result",
        "subtype": subtype,
        "is_error": subtype != "success",
        "api_error_status": None,
        "duration_ms": 483,
        "duration_api_ms": 190,
        "ttft_ms": 42,
        "num_turns": 2,
        "result": "DONE: hi",
        "stop_reason": "end_turn",
        "session_id": SESSION,
        "total_cost_usd": 0.004,
        "usage": USAGE,
        "modelUsage": {"claude-opus-4-8[1m]": {"inputTokens": 400, "outputTokens": 80, "costUSD": 0.004}},
        "permission_denials": [],
        "terminal_reason": "completed",
        "fast_mode_state": "off",
        "uuid": "e1ab0000-0000-4000-8000-000000000000",
    }
    raw.update(fields)
    return {k: v for k, v in raw.items() if k not in without}


def only(events: tuple[Any, ...]) -> Any:
    assert len(events) == 1, events
    return events[0]


def test_init_becomes_session_started():
    raw = {
        "type": "system",
        "subtype": "init",
        "cwd": "/srv/sessions/work",
        "session_id": SESSION,
        "tools": ["Task", "Bash", "Read"],
        "mcp_servers": [],
        "model": "claude-opus-4-8[1m]",
        "permissionMode": "bypassPermissions",
        "slash_commands": ["clear", "compact"],
        "apiKeySource": "ANTHROPIC_API_KEY",
        "claude_code_version": "2.1.197",
        "output_style": "default",
        "uuid": "c1fef4b0-0000-4000-8000-000000000000",
        "fast_mode_state": "off",
    }

    assert parse_event(raw) == (
        SessionStarted(
            session_id=SESSION,
            model="claude-opus-4-8[1m]",
            cwd="/srv/sessions/work",
            permission_mode="bypassPermissions",
            version="2.1.197",
            slash_commands=("clear", "compact"),
        ),
    )


def test_init_lists_claudes_commands_skills_and_the_ones_that_need_a_terminal():
    raw = {
        "type": "system", "subtype": "init", "session_id": SESSION, "model": "claude-opus-5-5",
        "slash_commands": ["hello-world", "loop", "doctor", "compact"], "skills": ["loop", "doctor"],
        "terminal_slash_commands": ["doctor"], "claude_code_version": "2.1.332",
    }

    started = only(parse_event(raw))

    assert started.slash_commands == ("hello-world", "loop", "doctor", "compact")
    assert started.skills == ("loop", "doctor")
    assert started.terminal_slash_commands == ("doctor",)
    assert only(parse_event(raw | {"terminal_slash_commands": None})).terminal_slash_commands == ()  # 2.1.197


def test_assistant_text_block():
    assert parse_event(assistant({"type": "text", "text": "Running a command."})) == (
        AssistantText("Running a command."),
    )


def test_assistant_tool_use_block_keeps_id_name_and_input():
    block = {"type": "tool_use", "id": TOOL_ID, "name": "Bash", "input": {"command": "echo hi", "description": "x"}}

    tool = only(parse_event(assistant(block)))

    assert tool == ToolUse(TOOL_ID, "Bash", {"command": "echo hi", "description": "x"})


def test_assistant_blocks_come_out_in_order_and_empty_or_thinking_blocks_are_dropped():
    raw = assistant(
        {"type": "thinking", "thinking": "hmm", "signature": "sig"},
        {"type": "text", "text": ""},
        {"type": "text", "text": "Let me look."},
        {"type": "tool_use", "id": TOOL_ID, "name": "Read", "input": {"file_path": "/etc/hostname"}},
        "not a block",
    )

    assert parse_event(raw) == (
        AssistantText("Let me look."),
        ToolUse(TOOL_ID, "Read", {"file_path": "/etc/hostname"}),
    )


def test_text_delta_from_partial_messages():
    assert parse_event(text_delta("ECHO[2]: hello one")) == (TextDelta("ECHO[2]: hello one"),)


@pytest.mark.parametrize(
    "event",
    [
        {"type": "message_start", "message": {"id": "msg_1", "content": []}},
        {"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": TOOL_ID}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": '{"c'}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": ""}},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None}},
        {"type": "message_stop"},
    ],
)
def test_stream_events_other_than_text_deltas_give_nothing(event):
    assert parse_event(stream_event(event)) == ()


def test_tool_result_with_string_content():
    raw = user(
        [{"tool_use_id": TOOL_ID, "type": "tool_result", "content": "hi", "is_error": False}],
        tool_use_result={"stdout": "hi", "stderr": "", "interrupted": False, "isImage": False},
    )

    assert parse_event(raw) == (ToolResult(tool_use_id=TOOL_ID, is_error=False, preview="hi"),)


def test_tool_result_with_list_content_is_flattened_and_errors_kept():
    content = [
        {"type": "text", "text": "line one"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}},
        {"type": "text", "text": "line two"},
    ]
    raw = user([{"tool_use_id": TOOL_ID, "type": "tool_result", "content": content, "is_error": True}])

    assert parse_event(raw) == (ToolResult(tool_use_id=TOOL_ID, is_error=True, preview="line one\nline two"),)


def test_tool_result_preview_is_cut_short():
    big = "x" * 1_000_000
    raw = user([{"tool_use_id": TOOL_ID, "type": "tool_result", "content": big, "is_error": False}])

    assert only(parse_event(raw)).preview == "x" * PREVIEW_CHARS


@pytest.mark.parametrize(
    "raw",
    [
        user([{"type": "text", "text": "[Request interrupted by user]"}]),
        user("hello", isReplay=True),
        user(None),
    ],
    ids=["interrupt-marker", "replayed-prompt", "no-content"],
)
def test_user_lines_without_tool_results_give_nothing(raw):
    assert parse_event(raw) == ()


def test_a_subagents_messages_are_skipped():
    task_id = "toolu_task0000000000000000000"
    inner = [
        assistant({"type": "text", "text": "subagent thinking aloud"}, parent=task_id),
        assistant({"type": "tool_use", "id": TOOL_ID, "name": "Grep", "input": {"pattern": "x"}}, parent=task_id),
        text_delta("subagent streaming", parent=task_id),
        user([{"tool_use_id": TOOL_ID, "type": "tool_result", "content": "3 matches", "is_error": False}], task_id),
    ]

    assert [parse_event(raw) for raw in inner] == [(), (), (), ()]


def test_success_result_carries_its_fields():
    turn = only(parse_event(result()))

    assert turn == TurnResult(
        subtype="success",
        is_error=False,
        text="DONE: hi",
        session_id=SESSION,
        duration_ms=483,
        total_cost_usd=0.004,
        usage=USAGE,
        num_turns=2,
        terminal_reason="completed",
    )
    assert not turn.stopped


def test_api_error_is_an_error_result_with_subtype_success():
    text = "API Error: 500 fake 500 api_error. This is a server-side issue, usually temporary — try again in a moment."
    raw = result("success", is_error=True, api_error_status=500, result=text, total_cost_usd=0, num_turns=1)

    turn = only(parse_event(raw))

    assert (turn.subtype, turn.is_error, turn.stopped) == ("success", True, False)
    assert turn.error_text == text


def test_max_turns_result_has_no_text_but_a_clear_error():
    raw = result(
        "error_max_turns",
        without=("result",),
        num_turns=2,
        stop_reason="tool_use",
        terminal_reason="max_turns",
        errors=["Reached maximum number of turns (1)"],
    )

    turn = only(parse_event(raw))

    assert (turn.is_error, turn.text, turn.errors) == (True, "", ("Reached maximum number of turns (1)",))
    assert turn.error_text.startswith("Claude reached the maximum number of turns for one message.")
    assert "Reached maximum number of turns (1)" in turn.error_text


@pytest.mark.parametrize(("terminal", "stop"), [("aborted_streaming", None), ("aborted_tools", "tool_use")])
def test_interrupt_result_is_stopped(terminal, stop):
    raw = result(
        "error_during_execution",
        without=("result",),
        stop_reason=stop,
        terminal_reason=terminal,
        errors=[f"[ede_diagnostic] result_type=user last_content_type=n/a stop_reason={stop or 'null'}"],
    )

    turn = only(parse_event(raw))

    assert turn.is_error and turn.stopped
    assert turn.error_text == "Stopped."


def test_unknown_resume_result_says_so():
    missing = "No conversation found with session ID: 00000000-0000-4000-8000-000000000000"
    raw = result("error_during_execution", without=("result",), num_turns=0, terminal_reason=None, errors=[missing])

    turn = only(parse_event(raw))

    assert not turn.stopped
    assert turn.error_text == missing


def test_error_text_skips_diagnostics_then_falls_back_to_the_subtype():
    raw = result(
        "error_during_execution",
        result=None,
        terminal_reason=None,
        errors=["[ede_diagnostic] result_type=user last_content_type=n/a stop_reason=null"],
    )

    assert only(parse_event(raw)).error_text == "Claude ended with error_during_execution"


def test_budget_error_text_is_the_errors():
    raw = result("error_max_budget_usd", without=("result",), errors=["Reached maximum budget ($0.0001)"])

    assert only(parse_event(raw)).error_text == "Reached maximum budget ($0.0001)"


def test_null_numbers_in_a_result_fall_back_to_zero():
    raw = result(result=None, duration_ms=None, total_cost_usd=None, usage=None, num_turns=None, terminal_reason=None)

    turn = only(parse_event(raw))

    assert (turn.text, turn.duration_ms, turn.total_cost_usd, turn.num_turns) == ("", 0, 0.0, 0)
    assert turn.usage == {} and turn.terminal_reason == ""


@pytest.mark.parametrize("subtype", [WATCHDOG, CANCELLED])
def test_our_own_stop_results_explain_themselves_instead_of_saying_stopped(subtype):
    turn = TurnResult(subtype=subtype, is_error=True, text="Claude sent nothing…", terminal_reason="aborted_streaming")

    assert turn.stopped
    assert turn.error_text == "Claude sent nothing…"


def test_api_retry():
    raw = {
        "type": "system",
        "subtype": "api_retry",
        "attempt": 1,
        "max_retries": 10,
        "retry_delay_ms": 596.2,
        "error_status": 401,
        "error": "authentication_failed",
        "session_id": SESSION,
        "uuid": "u",
    }

    assert parse_event(raw) == (
        ApiRetry(attempt=1, max_retries=10, delay_ms=596.2, error="authentication_failed", status=401),
    )


def test_api_retry_without_a_status_code():
    raw = {
        "type": "system",
        "subtype": "api_retry",
        "attempt": 2,
        "max_retries": 4,
        "retry_delay_ms": 1200,
        "error_status": None,
        "error": "connection refused",
    }

    assert only(parse_event(raw)).status is None


def test_api_retry_with_null_numbers_does_not_raise():
    raw = {
        "type": "system",
        "subtype": "api_retry",
        "attempt": None,
        "max_retries": None,
        "retry_delay_ms": None,
        "error_status": None,
        "error": None,
    }

    retry = only(parse_event(raw))

    assert (retry.attempt, retry.max_retries, retry.delay_ms) == (0, 0, 0.0)


def test_can_use_tool_becomes_a_permission_request():
    raw = {
        "type": "control_request",
        "request_id": "36aea60c-6056-4135-879d-600802e0a3f0",
        "request": {
            "subtype": "can_use_tool",
            "tool_name": "Bash",
            "display_name": "Bash",
            "input": {"command": "python3 -c 'print(12345)'", "description": "run test command"},
            "description": "run test command",
            "permission_suggestions": [{"type": "addRules", "behavior": "allow", "destination": "localSettings"}],
            "decision_reason": "This command requires approval",
            "decision_reason_type": "other",
            "tool_use_id": TOOL_ID,
        },
    }

    request = only(parse_event(raw))

    assert isinstance(request, ControlRequest) and request.subtype == "can_use_tool"
    assert PermissionRequest.of(request) == (
        PermissionRequest(
            request_id="36aea60c-6056-4135-879d-600802e0a3f0",
            tool_name="Bash",
            input={"command": "python3 -c 'print(12345)'", "description": "run test command"},
            tool_use_id=TOOL_ID,
            reason="This command requires approval",
            suggestions=({"type": "addRules", "behavior": "allow", "destination": "localSettings"},),
        )
    )


def test_any_control_request_is_passed_on_with_its_subtype_and_body():
    raw = {"type": "control_request", "request_id": "r1", "request": {"subtype": "hook_callback", "callback_id": "h"}}

    assert parse_event(raw) == (
        ControlRequest(
            request_id="r1", subtype="hook_callback", request={"subtype": "hook_callback", "callback_id": "h"}
        ),
    )


def test_a_result_carries_the_origin_of_a_turn_claude_started():
    old = {"type": "result", "subtype": "success", "result": "ok", "origin": {"kind": "task-notification"}}
    new = {**old, "origin": {"kind": "task-notification", "producer": "session-task", "runId": "0mx5te28d-59c7"}}

    assert only(parse_event(old)).origin == "task-notification"
    assert only(parse_event(new)).origin == "task-notification"
    assert only(parse_event({**old, "origin": None})).origin == ""
    assert only(parse_event({"type": "result", "subtype": "success"})).origin == ""
    assert only(parse_event({**old, "origin": "odd"})).origin == ""


def test_background_task_events_measured_on_2_1_197_and_2_1_332():
    started = {
        "type": "system",
        "subtype": "task_started",
        "task_id": "bvkmmb747",
        "run_id": "0mx5te28d-59c74fb8",
        "tool_use_id": TOOL_ID,
        "description": "bg nap",
        "is_backgrounded": True,
        "task_type": "local_bash",
    }
    updated = {"type": "system", "subtype": "task_updated", "task_id": "bvkmmb747", "patch": {"status": "completed"}}
    notified = {
        "type": "system",
        "subtype": "task_notification",
        "task_id": "bvkmmb747",
        "tool_use_id": TOOL_ID,
        "status": "completed",
        "output_file": "/tmp/claude-0/x/tasks/bvkmmb747.output",
        "summary": 'Background command "bg nap" completed (exit code 0)',
    }
    changed = {
        "type": "system",
        "subtype": "background_tasks_changed",
        "tasks": [{"task_id": "bvkmmb747", "run_id": "0mx5", "task_type": "local_bash", "description": "bg nap"}],
    }

    assert parse_event(started) == (TaskStarted("bvkmmb747", "bg nap", "local_bash", TOOL_ID),)
    assert parse_event(updated) == (TaskUpdated("bvkmmb747", "completed"),)
    assert parse_event(notified) == (
        TaskNotification(
            "bvkmmb747",
            "completed",
            'Background command "bg nap" completed (exit code 0)',
            "/tmp/claude-0/x/tasks/bvkmmb747.output",
            TOOL_ID,
        ),
    )
    assert parse_event(changed) == (BackgroundTasksChanged((TaskInfo("bvkmmb747", "bg nap", "local_bash"),)),)
    assert parse_event({**changed, "tasks": []}) == (BackgroundTasksChanged(()),)


def test_control_cancel_request():
    raw = {"type": "control_cancel_request", "request_id": "050e798a-1111-4000-8000-000000000000"}

    assert parse_event(raw) == (ControlCancel("050e798a-1111-4000-8000-000000000000"),)


def test_control_response_success_with_and_without_payload():
    ack = {"type": "control_response", "response": {"subtype": "success", "request_id": "int_1"}}
    mode = {
        "type": "control_response",
        "response": {"subtype": "success", "request_id": "x", "response": {"mode": "acceptEdits"}},
    }

    assert parse_event(ack) == (ControlResponse(request_id="int_1", ok=True),)
    assert parse_event(mode) == (ControlResponse(request_id="x", ok=True, payload={"mode": "acceptEdits"}),)


def test_control_response_error():
    raw = {
        "type": "control_response",
        "response": {"subtype": "error", "request_id": "req_2", "error": "Unsupported control request subtype: bogus"},
    }

    assert parse_event(raw) == (
        ControlResponse(request_id="req_2", ok=False, error="Unsupported control request subtype: bogus"),
    )


@pytest.mark.parametrize(
    "raw",
    [
        {"type": "system", "subtype": "status", "status": "requesting", "session_id": SESSION},
        {"type": "system", "subtype": "compact_boundary", "compact_metadata": {"trigger": "manual"}},
        {"type": "system", "subtype": "session_state_changed", "state": "idle"},
        {"type": "system", "subtype": "hook_started", "hook_name": "x"},
        {"type": "keep_alive"},
        {"type": "tool_progress", "tool_use_id": TOOL_ID},
        {"type": "some_future_type", "payload": [1, 2, 3]},
        {},
    ],
)
def test_unknown_types_and_subtypes_give_nothing(raw):
    assert parse_event(raw) == ()
