"""ClaudeSubprocess as a stream of turns, on the stand-in CLI: turns Claude starts itself, messages that wait for
them, the CLI's control requests to us, and control requests of ours that get no answer."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from claude_bridge.errors import BridgeError, ClaudeNoAnswer
from claude_bridge.process.argv import ProcessOptions
from claude_bridge.process.state import TRANSITIONS, State
from claude_bridge.process.subprocess import ClaudeSubprocess
from claude_bridge.process.turns import Turn
from claude_bridge.protocol.events import AssistantText, ControlRequest, Event, TaskInfo, TurnResult
from claude_bridge.protocol.messages import allow
from fake_claude_helper import FakeCliScript, Step, make_fake_cli
from processes import eventually

BACKGROUND_DONE = 'Background command "pytest -q" completed (exit code 0)'


class ClaudeTurns:
    """The on_claude_turn callback: records each turn Claude started and lets a test await the next one."""

    def __init__(self) -> None:
        self.turns: asyncio.Queue[Turn] = asyncio.Queue()

    def __call__(self, turn: Turn) -> None:
        self.turns.put_nowait(turn)

    async def next(self, timeout: float = 10.0) -> Turn:
        async with asyncio.timeout(timeout):
            return await self.turns.get()


class Handler:
    """An on_control_request handler: answers with `reply`, raises `error`, or waits until cancelled."""

    def __init__(self, reply: Mapping[str, Any] | None = None, error: Exception | None = None) -> None:
        self.reply, self.error = reply, error
        self.seen: list[ControlRequest] = []
        self.asked = asyncio.Event()
        self.cancelled = asyncio.Event()

    async def __call__(self, request: ControlRequest) -> Mapping[str, Any]:
        self.seen.append(request)
        self.asked.set()
        if self.error is not None:
            raise self.error
        if self.reply is not None:
            return self.reply
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        return {}


class Started:
    """Processes on the stand-in; the fixture stops them all."""

    def __init__(self, tmp_path: Path, script: FakeCliScript) -> None:
        self.tmp_path, self.claude_bin = tmp_path, make_fake_cli(tmp_path, script)
        self.processes: list[ClaudeSubprocess] = []

    async def start(self, **callbacks: Any) -> ClaudeSubprocess:
        workdir = self.tmp_path / "session"
        workdir.mkdir(exist_ok=True)
        options = ProcessOptions(
            claude_bin=self.claude_bin,
            cwd=workdir,
            env=dict(os.environ),
            restart_delays=(0.05,),
            watchdog_seconds=callbacks.pop("watchdog_seconds", 10.0),
            stop_timeout=0.3,
            control_timeout=callbacks.pop("control_timeout", 10.0),
        )
        process = ClaudeSubprocess(options, **callbacks)
        self.processes.append(process)
        await process.start()
        return process


@pytest.fixture
def script(tmp_path: Path) -> FakeCliScript:
    return FakeCliScript(tmp_path / "script.json").save()


@pytest_asyncio.fixture
async def started(tmp_path: Path, script: FakeCliScript) -> AsyncIterator[Started]:
    holder = Started(tmp_path, script)
    yield holder
    for process in holder.processes:
        await process.stop()


async def collect(turn: Turn) -> list[Event]:
    return [event async for event in turn.events()]


def texts(events: list[Event]) -> str:
    return "".join(e.text for e in events if isinstance(e, AssistantText))


def last(events: list[Event]) -> TurnResult:
    assert isinstance(events[-1], TurnResult)
    return events[-1]


async def test_set_model_that_claude_never_answers_raises_a_readable_bridge_error(started, script):
    script.ignore_control("set_model")
    process = await started.start(control_timeout=0.3)

    with pytest.raises(BridgeError) as caught:
        await process.set_model("haiku")

    assert isinstance(caught.value, ClaudeNoAnswer) and caught.value.request == "set_model"
    assert str(caught.value) == "Claude did not answer set_model within 0.3 s"


async def test_a_pending_set_model_fails_at_once_when_its_process_dies(started, script):
    script.ignore_control("set_model")
    process = await started.start(control_timeout=30.0)
    waiting = asyncio.create_task(process.set_model("haiku"))
    await eventually(lambda: "set_model" in [r["message"].get("request", {}).get("subtype") for r in script.received()])

    began = time.monotonic()
    os.kill(process.pid or 0, signal.SIGKILL)

    with pytest.raises(ClaudeNoAnswer, match="exited before answering set_model"):
        await waiting
    assert time.monotonic() - began < 5.0


async def test_a_turn_claude_starts_itself_reaches_the_callback_with_what_started_it(started, script):
    script.turn(Step.background("pytest -q", after=0.5), Step.text("started the tests")).turn(Step.text("all green"))
    claude = ClaudeTurns()
    process = await started.start(on_claude_turn=claude)

    mine = await collect(process.submit("run the tests in the background"))
    assert last(mine).text == "started the tests" and last(mine).origin == ""
    assert process.running_tasks == (TaskInfo(process.running_tasks[0].task_id, "pytest -q", "local_bash"),)

    theirs = await claude.next()
    events = await collect(theirs)

    assert theirs.started_by_claude and theirs.header == BACKGROUND_DONE
    assert texts(events) == "all green"
    assert last(events).origin == "task-notification"
    assert process.running_tasks == ()
    assert process.state is State.READY


async def test_a_task_that_ends_during_a_users_turn_heads_claudes_turn_about_it(started, script):
    script.turn(Step.background("pytest -q", after=0.2), Step.sleep(1.0), Step.text("started"))
    script.turn(Step.text("all green"))
    claude = ClaudeTurns()
    process = await started.start(on_claude_turn=claude)

    mine = await collect(process.submit("run the tests in the background, then wait"))
    theirs = await claude.next()

    assert last(mine).text == "started"
    assert theirs.header == BACKGROUND_DONE and texts(await collect(theirs)) == "all green"


async def test_a_message_sent_while_claudes_own_turn_runs_waits_and_gets_its_own_turn(started, script):
    script.turn(Step.background("pytest -q", after=0.3), Step.text("started"))
    script.turn(Step.text("follow-up about the tests", chunks=5, delay=0.1))
    claude = ClaudeTurns()
    process = await started.start(on_claude_turn=claude)
    await collect(process.submit("run the tests in the background"))

    theirs = await claude.next()
    mine = process.submit("what is 2+2?")
    assert process.busy and process.waiting
    their_events, my_events = await asyncio.gather(collect(theirs), collect(mine))

    assert texts(their_events) == "follow-up about the tests"
    assert last(their_events).origin == "task-notification"
    assert texts(my_events) == "echo: what is 2+2?"
    assert last(my_events).text == "echo: what is 2+2?" and last(my_events).origin == ""
    written = [r["message"] for r in script.received() if r["message"].get("type") == "user"]
    assert [m["message"]["content"] for m in written] == ["run the tests in the background", "what is 2+2?"]


async def test_a_control_request_from_the_cli_goes_to_the_handler_and_its_answer_back(started, script):
    script.turn(Step.ask("mcp_message", server_name="telegram", message={"method": "tools/list", "id": 1}))
    handler = Handler(reply={"mcp_response": {"jsonrpc": "2.0", "id": 1, "result": {"tools": []}}})
    process = await started.start(on_control_request=handler)

    answer = json.loads(last(await collect(process.submit("list tools"))).text)

    assert [r.subtype for r in handler.seen] == ["mcp_message"]
    assert handler.seen[0].request["server_name"] == "telegram"
    assert answer["subtype"] == "success"
    assert answer["response"] == {"mcp_response": {"jsonrpc": "2.0", "id": 1, "result": {"tools": []}}}


async def test_without_a_handler_a_control_request_is_refused_not_left_hanging(started, script):
    script.turn(Step.ask("can_use_tool", tool_name="Bash", input={"command": "ls"}))
    process = await started.start()

    answer = json.loads(last(await collect(process.submit("ls please"))).text)

    assert answer["subtype"] == "error"
    assert "can_use_tool" in answer["error"]


async def test_a_handler_that_fails_answers_with_its_error(started, script):
    script.turn(Step.ask("mcp_message", server_name="telegram", message={}))
    process = await started.start(on_control_request=Handler(error=ValueError("no such tool")))

    answer = json.loads(last(await collect(process.submit("call it"))).text)

    assert (answer["subtype"], answer["error"]) == ("error", "no such tool")


async def test_control_cancel_request_cancels_the_pending_handler(started, script):
    script.turn(Step.ask("can_use_tool", tool_name="Bash", input={"command": "ls"}))
    handler = Handler()
    process = await started.start(on_control_request=handler)
    turn = process.submit("ls please")
    async with asyncio.timeout(5):
        await handler.asked.wait()

    await process.interrupt()  # the stand-in, like the CLI, withdraws its pending request first

    async with asyncio.timeout(5):
        await handler.cancelled.wait()
    assert (await turn.wait()).stopped


async def test_a_prompt_waiting_for_a_person_past_the_watchdog_is_answered_and_the_turn_finishes(started, script):
    script.turn(Step.ask_permission("Bash", {"command": "make"}, result="made"), Step.text("built"))
    decided, asked = asyncio.Event(), asyncio.Event()

    async def person(request: ControlRequest) -> Mapping[str, Any]:
        asked.set()
        await decided.wait()
        return allow(request.request["input"])

    process = await started.start(on_control_request=person, watchdog_seconds=0.2)
    turn = process.submit("build it")
    async with asyncio.timeout(5):
        await asked.wait()
    await asyncio.sleep(1.0)  # five watchdog periods in which nobody answers: the time under test
    decided.set()

    events = await collect(turn)
    assert not turn.watchdog_fired and not last(events).is_error and "built" in texts(events)
    sent = [r["message"] for r in script.received() if r["message"]["type"] == "control_request"]
    assert [m["request"]["subtype"] for m in sent] == ["initialize"]  # no interrupt: the watchdog never fired


async def test_stop_cancels_a_handler_that_is_still_working(started, script):
    script.turn(Step.ask("mcp_message", server_name="telegram", message={}))
    handler = Handler()
    process = await started.start(on_control_request=handler)
    process.submit("call it")
    async with asyncio.timeout(5):
        await handler.asked.wait()

    await process.stop()

    assert handler.cancelled.is_set()
    assert process.state is State.STOPPED


def result_line(text: str, **fields: Any) -> dict[str, Any]:
    line = {"type": "result", "subtype": "success", "is_error": False, "result": text, **fields}
    return Step.garbage(json.dumps(line))


async def test_claudes_result_inside_a_users_turn_ends_a_turn_of_its_own_not_the_users(started, script):
    script.turn(result_line("claude's follow-up", origin={"kind": "task-notification"}), Step.text("my answer"))
    claude = ClaudeTurns()
    process = await started.start(on_claude_turn=claude)

    mine = await collect(process.submit("question"))
    theirs = await claude.next()

    assert last(mine).text == "my answer" and last(mine).origin == ""
    assert (await theirs.wait()).text == "claude's follow-up"


async def test_what_no_turn_waits_for_is_logged_as_a_warning_and_answers_nothing(started, script, caplog):
    script.turn(result_line("too early"), Step.text("stray text"))
    process = await started.start()

    assert last(await collect(process.submit("first"))).text == "too early"
    await eventually(lambda: "TurnResult outside any turn" in caplog.text)

    assert "AssistantText outside any turn" in caplog.text
    assert all(r.levelname == "WARNING" for r in caplog.records if "outside any turn" in r.message)
    assert last(await collect(process.submit("second"))).text == "echo: second"


def test_every_state_can_stop_and_stopped_is_final():
    assert set(TRANSITIONS) == set(State)
    assert all(State.STOPPING in TRANSITIONS[s] for s in State if s not in (State.STOPPING, State.STOPPED))
    assert TRANSITIONS[State.STOPPING] == {State.STOPPED} and not TRANSITIONS[State.STOPPED]


async def test_the_state_follows_a_turn_and_a_crash(started, script):
    script.turn(Step.text("slow", chunks=2, delay=0.2)).turn(Step.crash(1))
    recovered = asyncio.Event()
    process = await started.start(on_status=lambda s: s.kind == "recovered" and recovered.set())
    assert process.state is State.READY

    turn = process.submit("one")
    await turn.written.wait()
    assert process.state is State.BUSY and process.busy
    await turn.wait()
    assert process.state is State.READY and not process.busy

    await process.submit("two").wait()
    assert process.state is not State.READY and not process.alive
    async with asyncio.timeout(10):
        await recovered.wait()
    assert process.state is State.READY and process.alive
