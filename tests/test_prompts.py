"""Claude's questions waiting for the human: the PromptBoard alone, then through SessionManager with a fake process."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from claude_bridge.commands.asks import NOT_AN_ANSWER, answer, prompt_reply
from claude_bridge.errors import SessionError
from claude_bridge.protocol.events import ControlRequest, PermissionRequest, ToolUse
from claude_bridge.sessions.manager import PROMPT_ANSWER, SessionManager
from claude_bridge.sessions.place import Place
from claude_bridge.sessions.prompts import Prompt, PromptBoard, PromptState
from claude_bridge.sessions.store import Persona
from fake_process import FakeClock, FakeSpawner, Shown, base_options

pytestmark = pytest.mark.fast

WRITE = {"file_path": "/w/a.txt", "content": "hi"}
ACCEPT_EDITS = {"type": "setMode", "mode": "acceptEdits", "destination": "localSettings"}
TOUCH = [  # measured: what 2.1.197 and 2.1.332 suggest for `touch notes.txt`
    {
        "type": "addRules",
        "rules": [{"toolName": "Bash", "ruleContent": "touch notes.txt"}],
        "behavior": "allow",
        "destination": "localSettings",
    },
    {"type": "addDirectories", "directories": ["/w"], "destination": "session"},
    {"type": "setMode", "mode": "acceptEdits", "destination": "session"},
]
COLOR = {"question": "Which?", "header": "", "options": [{"label": "Red"}, {"label": "Blue"}], "multiSelect": False}


def can_use_tool(tool: str, tool_input: dict[str, Any], **extra: Any) -> ControlRequest:
    body = {"subtype": "can_use_tool", "tool_name": tool, "input": tool_input, "tool_use_id": "toolu_1", **extra}
    return ControlRequest("req-1", "can_use_tool", body)


def touch_notes() -> ControlRequest:
    return can_use_tool("Bash", {"command": "touch notes.txt"}, permission_suggestions=TOUCH)


async def opened(board: PromptBoard, request: ControlRequest) -> tuple[Prompt, asyncio.Task[dict[str, Any]]]:
    """Start asking; returns the prompt (once the board shows it) and the task waiting for its answer."""
    shown: asyncio.Queue[Prompt] = asyncio.Queue()
    board.listener = shown.put_nowait
    prompt = await board.prompt_for(PermissionRequest.of(request), "s", 7)
    task = asyncio.create_task(board.ask(prompt))
    assert await shown.get() is prompt
    return prompt, task


async def test_always_allow_keeps_only_the_rule_for_the_tool_asked_in_the_project():
    board = PromptBoard()
    prompt, task = await opened(board, touch_notes())
    labels = [choice.label for choice in prompt_reply(prompt).choices]
    assert labels[:3] == ["✅ Allow", "♾ Always allow Bash(touch notes.txt)", "✏️ Allow all edits for this session"]
    assert board.press(prompt.id, "always")
    answer = await task
    assert answer["updatedPermissions"] == [TOUCH[0]]  # the rule, kept in the project; no setMode, no directories
    assert not board.press(prompt.id, "allow")  # answered: a second press is expired
    assert "Always allowed Bash(touch notes.txt)" in prompt_reply(prompt).text and not prompt_reply(prompt).choices


async def test_a_write_offers_no_always_and_all_edits_is_its_own_button():
    board = PromptBoard()
    prompt, task = await opened(board, can_use_tool("Write", WRITE, permission_suggestions=[ACCEPT_EDITS]))
    assert [c.label for c in prompt_reply(prompt).choices] == [
        "✅ Allow",
        "✏️ Allow all edits for this session",
        "🚫 Deny",
    ]
    assert not board.press(prompt.id, "always") and not board.press(prompt.id, "dirs")
    assert board.press(prompt.id, "edits")
    assert (await task)["updatedPermissions"] == [{"type": "setMode", "mode": "acceptEdits", "destination": "session"}]


async def test_allow_sends_no_permission_update_at_all():
    board = PromptBoard()
    prompt, task = await opened(board, touch_notes())
    assert board.press(prompt.id, "allow")
    assert await task == {"behavior": "allow", "updatedInput": {"command": "touch notes.txt"}}


async def test_every_button_fits_telegrams_64_bytes_and_a_stale_or_bogus_press_does_nothing():
    board = PromptBoard()
    prompt, task = await opened(board, can_use_tool("AskUserQuestion", {"questions": [COLOR] * 3}))
    assert all(len(c.command.encode()) <= 64 for c in prompt_reply(prompt).choices)
    assert not board.press("nope", "allow") and not board.press(prompt.id, "pick 9 9")
    assert not board.press(prompt.id, "pick 1 0")  # questions are answered in order
    task.cancel()


async def test_a_multi_select_toggles_and_a_typed_reply_answers_the_next_question_as_other():
    board = PromptBoard()
    multi = COLOR | {"question": "Which ones?", "multiSelect": True}
    prompt, task = await opened(board, can_use_tool("AskUserQuestion", {"questions": [multi, COLOR]}))
    for action in ("pick 0 0", "pick 0 1", "pick 0 0", "pick 0 0", "done 0"):
        assert board.press(prompt.id, action)
    assert board.typed("s", "Green, please", Place(7)) is prompt
    answer = await task
    assert answer["updatedInput"]["answers"] == {"Which ones?": "Red, Blue", "Which?": "Green, please"}
    assert answer["updatedInput"]["questions"] == [multi, COLOR]


async def test_the_plan_comes_from_the_tool_use_block_when_the_request_has_none():
    board = PromptBoard()
    await board.saw(ToolUse("toolu_1", "ExitPlanMode", {"plan": "1. do it"}))
    prompt, task = await opened(board, can_use_tool("ExitPlanMode", {}))
    assert prompt.plan == "1. do it"
    assert board.typed("s", "smaller steps", Place(7)) is prompt
    assert await task == {"behavior": "deny", "message": "smaller steps"}


async def test_a_long_wait_is_reminded_once_then_denied_after_the_timeout():
    board = PromptBoard(remind_after=0.05, timeout=0.1)
    prompt, task = await opened(board, can_use_tool("Bash", {"command": "rm -rf build"}))
    answer = await task
    assert prompt.reminded and prompt.state == PromptState.TIMED_OUT
    assert answer["behavior"] == "deny" and "did not answer" in answer["message"]
    assert answer["interrupt"] is True  # the CLI's turn ends here; the next message gets its own answer


async def test_a_withdrawn_request_marks_the_prompt_cancelled():
    board = PromptBoard()
    changes: list[PromptState] = []
    prompt, task = await opened(board, can_use_tool("Bash", {"command": "make"}))
    board.listener = lambda p: changes.append(p.state)
    task.cancel()  # what the process layer does on control_cancel_request
    with pytest.raises(asyncio.CancelledError):
        await task
    assert changes == [PromptState.CANCELLED] and board.get(prompt.id) is None


# -- through the manager --


def make_manager(tmp_path: Path, front_end: Shown | None = None) -> tuple[SessionManager, FakeSpawner, FakeClock]:
    spawner, clock = FakeSpawner(), FakeClock()
    manager = SessionManager(
        tmp_path / "sessions",
        front_end=front_end,
        spawn=spawner,
        base_options=base_options(tmp_path),
        personas={"default": Persona("default", "asks", "", permission_mode="default")},
        clock=clock,
        idle_after=600,
    )
    return manager, spawner, clock


async def answered(manager: SessionManager, chat_id: int, text: str) -> None:
    async for _ in (await manager.send(chat_id, text)).events():
        pass


async def test_a_waiting_prompt_keeps_the_session_awake_and_a_typed_message_denies_it(tmp_path):
    shown = Shown()
    manager, spawner, clock = make_manager(tmp_path, shown)
    await answered(manager, 5, "hello")
    handler = spawner.started[0].control_request
    asking = asyncio.create_task(handler(can_use_tool("Bash", {"command": "make deploy"})))
    prompt = await shown.prompts.get()
    assert prompt.chat_id == 5 and "Bash command:\nmake deploy" in prompt_reply(prompt).text

    clock.advance(3600)
    assert await manager.suspend_idle() == []
    with pytest.raises(SessionError):
        await manager.delete("default")

    delivery = await manager.send(5, "not on a Friday")
    assert delivery.result is not None and delivery.result.subtype == PROMPT_ANSWER
    assert await asking == {"behavior": "deny", "message": "not on a Friday"}
    assert spawner.started[0].received == ["hello"]  # the reply went to the prompt, not to Claude as a message
    await manager.close_all()


async def test_stop_cancels_waiting_prompts(tmp_path):
    shown = Shown()
    manager, spawner, _ = make_manager(tmp_path, shown)
    await answered(manager, 5, "hello")
    spawner.enqueue(["hold"])  # the turn that asks runs until the CLI ends it
    await manager.send(5, "write it")
    asking = asyncio.create_task(spawner.started[0].control_request(can_use_tool("Write", WRITE)))
    await shown.prompts.get()
    assert spawner.started[0].busy and await manager.interrupt("default")
    answer = await asking
    assert answer["behavior"] == "deny" and "/stop" in answer["message"]
    # The denial itself ends the CLI's turn; a separate interrupt would race it (measured on both CLIs).
    assert answer["interrupt"] is True and spawner.interrupts == 0
    spawner.release.set()
    await manager.close_all()


async def test_all_edits_becomes_the_sessions_mode_shown_by_status_and_kept_for_a_restart(tmp_path):
    front_end = Shown()
    manager, spawner, _ = make_manager(tmp_path, front_end)
    await answered(manager, 5, "hello")
    asking = asyncio.create_task(
        spawner.started[0].control_request(can_use_tool("Write", WRITE, permission_suggestions=[ACCEPT_EDITS]))
    )
    prompt = await front_end.prompts.get()
    assert manager.prompts.press(prompt.id, "edits")
    assert (await asking)["behavior"] == "allow"
    assert manager.status("default").permission_mode == "acceptEdits"
    assert spawner.started[0].modes == ["acceptEdits"]  # also for the process's own restarts after a crash
    await manager.close_all()


async def test_always_allow_never_changes_the_sessions_mode(tmp_path):
    front_end = Shown()
    manager, spawner, _ = make_manager(tmp_path, front_end)
    await answered(manager, 5, "hello")
    asking = asyncio.create_task(spawner.started[0].control_request(touch_notes()))
    assert manager.prompts.press((await front_end.prompts.get()).id, "always")
    await asking
    assert manager.status("default").permission_mode == "default" and spawner.started[0].modes == []
    await manager.close_all()


async def test_mode_applies_live_where_the_cli_allows_and_otherwise_restarts(tmp_path):
    manager, spawner, _ = make_manager(tmp_path)
    await answered(manager, 5, "hello")
    assert (await manager.set_permission_mode("default", "acceptEdits")).permission_mode == "acceptEdits"
    assert spawner.started[0].modes == ["acceptEdits"]

    await manager.set_permission_mode("default", "bypassPermissions")
    await answered(manager, 5, "again")
    assert len(spawner.started) == 2 and spawner.started[1].options.permission_mode == "bypassPermissions"
    assert spawner.started[1].continued
    with pytest.raises(SessionError):
        await manager.set_permission_mode("default", "yolo")
    await manager.close_all()


async def test_always_allow_is_offered_only_when_the_cli_suggests_rules():
    board = PromptBoard()
    bare, task = await opened(board, can_use_tool("mcp__github__create_issue", {"title": "bug"}))
    shown = prompt_reply(bare)
    assert [choice.label for choice in shown.choices] == ["✅ Allow", "🚫 Deny"]
    assert "create_issue of the MCP server github" in shown.text and '"title": "bug"' in shown.text
    task.cancel()


@pytest.mark.parametrize("action", ["pick 0 0", "done 0"])
async def test_a_question_button_on_a_tool_prompt_gets_a_short_error_and_the_prompt_still_waits(tmp_path, action):
    front_end = Shown()
    manager, spawner, _ = make_manager(tmp_path, front_end)
    await answered(manager, 5, "hello")
    asking = asyncio.create_task(spawner.started[0].control_request(can_use_tool("Write", WRITE)))
    prompt = await front_end.prompts.get()

    reply = await answer(manager, [prompt.id, *action.split()], 5)

    assert reply.text == NOT_AN_ANSWER and manager.prompts.get(prompt.id) is prompt
    assert manager.prompts.press(prompt.id, "allow") and (await asking)["behavior"] == "allow"
    await manager.close_all()
