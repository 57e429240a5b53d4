"""ClaudeSubprocess against the real Claude Code CLI, which talks to the fake Messages API on loopback."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import pytest_asyncio

from claude_bridge.errors import BridgeError, ClaudeNotFound, ClaudeStartError
from claude_bridge.process.argv import ProcessOptions
from claude_bridge.process.subprocess import ClaudeSubprocess
from claude_bridge.process.turns import Turn
from claude_bridge.protocol.events import (
    EXITED,
    AssistantText,
    Event,
    ProcessStatus,
    SessionStarted,
    ToolResult,
    ToolUse,
    TurnResult,
)
from conftest import cli_env, real_cli_path
from fake_anthropic import FakeAnthropic, Hang, HttpError, Text
from fake_anthropic import ToolUse as ScriptedTool
from processes import eventually, long_command, processes_matching, sleeping, transcript_text

pytestmark = pytest.mark.real_cli



def options(tmp_path: Path, api: FakeAnthropic, **overrides: Any) -> ProcessOptions:
    workdir = tmp_path / "session"
    workdir.mkdir(exist_ok=True)
    values: dict[str, Any] = dict(
        claude_bin=real_cli_path(),
        cwd=workdir,
        env=cli_env(tmp_path, api.url),
        permission_mode="bypassPermissions",
        restart_delays=(0.2, 0.4, 0.8),
    )
    values.update(overrides)
    return ProcessOptions(**values)


class Running:
    """A started process that is always stopped at the end of the test."""

    def __init__(self) -> None:
        self.processes: list[ClaudeSubprocess] = []
        self.statuses: list[ProcessStatus] = []

    async def start(self, opts: ProcessOptions, **callbacks: Any) -> ClaudeSubprocess:
        process = ClaudeSubprocess(opts, on_status=self.statuses.append, **callbacks)
        self.processes.append(process)
        await process.start()
        return process


@pytest_asyncio.fixture
async def running() -> AsyncIterator[Running]:
    holder = Running()
    yield holder
    for process in holder.processes:
        await process.stop()


class ClaudeTurns:
    """The on_claude_turn callback: the turns Claude started by itself, awaitable one by one."""

    def __init__(self) -> None:
        self.turns: asyncio.Queue[Turn] = asyncio.Queue()

    def __call__(self, turn: Turn) -> None:
        self.turns.put_nowait(turn)

    async def next(self, timeout: float = 30.0) -> Turn:
        async with asyncio.timeout(timeout):
            return await self.turns.get()


def background(command: str, description: str) -> ScriptedTool:
    return ScriptedTool("Bash", {"command": command, "description": description, "run_in_background": True})


def texts(events: list[Event]) -> str:
    return "".join(e.text for e in events if isinstance(e, AssistantText))


async def collect(turn: Turn) -> list[Event]:
    return [event async for event in turn.events()]


def result(events: list[Event]) -> TurnResult:
    assert isinstance(events[-1], TurnResult)
    return events[-1]





async def test_three_turns_in_one_process_carry_the_history(tmp_path, api, running):
    process = await running.start(options(tmp_path, api))
    api.enqueue(Text("one back"), Text("two back"), Text("three back"))

    answers = [result(await collect(process.submit(f"message {n}"))) for n in ("one", "two", "three")]

    assert [a.text for a in answers] == ["one back", "two back", "three back"]
    history = api.requests[-1].user_texts
    assert history[:3] == ["message one", "message two", "message three"]
    assert "one back" in str(api.requests[-1].messages)
    assert len({a.session_id for a in answers}) == 1


async def test_a_new_process_with_continue_keeps_history_and_session_id(tmp_path, api, running):
    first = await running.start(options(tmp_path, api))
    before = result(await collect(first.submit("remember the word kiwi")))
    await first.stop()

    second = await running.start(options(tmp_path, api, continue_conversation=True))
    after = result(await collect(second.submit("what was the word?")))

    assert after.session_id == before.session_id
    assert "remember the word kiwi" in api.requests[-1].user_texts


async def test_bash_tool_runs_and_its_events_arrive_in_order(tmp_path, api, running):
    process = await running.start(options(tmp_path, api))
    api.enqueue(ScriptedTool("Bash", {"command": "echo made > proof.txt", "description": "write proof"}), Text("done"))

    events = await collect(process.submit("make a file"))

    kinds = [type(e) for e in events if not isinstance(e, SessionStarted)]
    assert kinds.index(ToolUse) < kinds.index(ToolResult) < kinds.index(TurnResult)
    tool = next(e for e in events if isinstance(e, ToolUse))
    assert tool.name == "Bash" and "proof.txt" in tool.input["command"]
    assert (process.options.cwd / "proof.txt").read_text() == "made\n"
    assert not result(events).is_error


async def test_a_20_mib_line_parses_and_the_next_turn_works(tmp_path, api, running):
    process = await running.start(options(tmp_path, api))
    api.enqueue(Text("x" * (20 * 1024 * 1024)), Text("small"))

    big = await collect(process.submit("big please"))
    text = "".join(e.text for e in big if isinstance(e, AssistantText))
    assert len(text) == 20 * 1024 * 1024
    assert result(big).text == text

    assert result(await collect(process.submit("and now?"))).text == "small"


async def test_interrupt_while_text_streams_stops_it_promptly(tmp_path, api, running):
    process = await running.start(options(tmp_path, api))
    api.enqueue(Text("tick " * 400, chunk_size=5, delay=0.05), Text("next answer"))
    turn = process.submit("stream slowly")
    await api.wait_for_requests(1)
    queued = process.submit("after the stop")
    await asyncio.sleep(0.5)

    started = time.monotonic()
    assert await process.interrupt()
    stopped = await turn.wait()

    assert time.monotonic() - started < 5.0  # the turn runs >= 10 s on its own: the interrupt ended it
    assert stopped.is_error and stopped.stopped
    assert result(await collect(queued)).text == "next answer"


async def test_interrupt_while_a_tool_sleeps_stops_it_promptly(tmp_path, api, running):
    process = await running.start(options(tmp_path, api))
    api.enqueue(ScriptedTool("Bash", {"command": long_command(30.25), "description": "nap"}), Text("after"))
    turn = process.submit("sleep")
    await eventually(lambda: processes_matching(sleeping(30.25)))

    started = time.monotonic()
    await process.interrupt()
    stopped = await turn.wait()

    assert time.monotonic() - started < 5.0  # the turn runs >= 10 s on its own: the interrupt ended it
    assert stopped.stopped and stopped.terminal_reason == "aborted_tools"
    await eventually(lambda: not processes_matching(sleeping(30.25)))
    assert not result(await collect(process.submit("still there?"))).is_error


async def test_sigkill_mid_turn_reports_respawns_with_continue_and_keeps_history(tmp_path, api, running):
    process = await running.start(options(tmp_path, api))
    await collect(process.submit("first words"))
    # The CLI writes its transcript a moment after the result; a kill before that loses the last exchange.
    await eventually(lambda: "first words" in transcript_text(tmp_path))
    api.enqueue(Hang())
    doomed = process.submit("this one dies")
    await api.wait_for_requests(2)

    os.kill(process.pid or 0, signal.SIGKILL)
    cut = result(await collect(doomed))

    assert cut.is_error and cut.subtype == EXITED
    assert "exit code -9" in cut.text and "cut off" in cut.text
    await eventually(lambda: any(s.kind == "recovered" for s in running.statuses))
    api.enqueue(Text("still here"))
    answer = result(await collect(process.submit("are you back?")))
    assert answer.text == "still here"
    assert "first words" in api.requests[-1].user_texts


async def test_stop_while_a_tool_runs_leaves_no_process_behind(tmp_path, api, running):
    process = await running.start(options(tmp_path, api))
    api.enqueue(ScriptedTool("Bash", {"command": long_command(300.125), "description": "long"}))
    process.submit("sleep long")
    await eventually(lambda: processes_matching(sleeping(300.125)))
    cli_pid = process.pid

    await process.stop()

    assert not processes_matching(sleeping(300.125))
    assert cli_pid is not None and not psutil.pid_exists(cli_pid)


async def test_a_crash_while_a_tool_runs_leaves_no_orphan(tmp_path, api, running):
    process = await running.start(options(tmp_path, api))
    api.enqueue(ScriptedTool("Bash", {"command": long_command(300.375), "description": "long"}))
    turn = process.submit("sleep long")
    await eventually(lambda: processes_matching(sleeping(300.375)))

    os.kill(process.pid or 0, signal.SIGKILL)
    await turn.wait()

    await eventually(lambda: not processes_matching(sleeping(300.375)))


async def test_a_message_sent_while_busy_waits_for_the_turn_and_one_more_is_refused(tmp_path, api, running):
    process = await running.start(options(tmp_path, api))
    api.enqueue(Text("slow " * 40, chunk_size=10, delay=0.05), *[Text(f"answer {n}") for n in range(5)])
    first = process.submit("keep busy")
    await api.wait_for_requests(1)

    second = process.submit("message 0")
    assert process.waiting
    with pytest.raises(BridgeError):
        process.submit("one too many")  # the caller's queue holds the rest (a session's worker)

    await first.wait()
    answers = [(await second.wait()).text] + [(await process.submit(f"message {n}").wait()).text for n in range(1, 5)]
    assert answers == [f"answer {n}" for n in range(5)]
    assert [r.last_user_text for r in api.requests[-5:]] == [f"message {n}" for n in range(5)]


async def test_set_model_applies_to_the_next_request(tmp_path, api, running):
    process = await running.start(options(tmp_path, api))
    await collect(process.submit("hi"))

    await process.set_model("haiku")
    await collect(process.submit("again"))

    assert "haiku" in api.requests[-1].model
    assert "haiku" not in api.requests[0].model


async def test_an_api_auth_error_is_the_turns_error_text(tmp_path, api, running):
    process = await running.start(options(tmp_path, api))
    api.enqueue(HttpError(401, "invalid x-api-key"), HttpError(401, "invalid x-api-key"))

    answer = result(await collect(process.submit("hi")))

    assert answer.is_error
    assert "api key" in answer.error_text.lower()


async def test_a_missing_cli_says_where_it_looked(tmp_path, api):
    process = ClaudeSubprocess(options(tmp_path, api, claude_bin=tmp_path / "no-such-claude"))

    with pytest.raises(ClaudeNotFound, match="no-such-claude"):
        await process.start()


async def test_root_refusal_says_to_run_as_a_normal_user_or_set_is_sandbox(tmp_path, api):
    if os.geteuid() != 0:
        pytest.skip("the CLI only refuses skip-permissions for root")
    env = {k: v for k, v in cli_env(tmp_path, api.url).items() if k != "IS_SANDBOX"}
    process = ClaudeSubprocess(options(tmp_path, api, env=env))

    with pytest.raises(ClaudeStartError, match="IS_SANDBOX=1") as caught:
        await process.start()
    assert "root" in caught.value.stderr_tail


async def test_a_background_command_that_ends_starts_claudes_own_turn_with_its_header(tmp_path, api, running):
    claude = ClaudeTurns()
    process = await running.start(options(tmp_path, api), on_claude_turn=claude)
    nap = "python3 -c 'import time; time.sleep(2)'"
    api.enqueue(background(nap, "short nap"), Text("started it"), Text("the nap is over"))

    mine = result(await collect(process.submit("nap in the background")))
    assert mine.text == "started it" and mine.origin == ""
    assert [t.description for t in process.running_tasks] == ["short nap"]

    theirs = await claude.next()
    events = await collect(theirs)

    assert theirs.started_by_claude
    assert theirs.header == 'Background command "short nap" completed (exit code 0)'
    assert result(events).text == "the nap is over" and result(events).origin == "task-notification"
    assert process.running_tasks == ()
    assert "short nap" in str(api.requests[-1].messages[-1])  # the model was told, not the user


async def test_a_message_sent_while_claudes_follow_up_streams_gets_its_own_unmixed_turn(tmp_path, api, running):
    claude = ClaudeTurns()
    process = await running.start(options(tmp_path, api), on_claude_turn=claude)
    nap = "python3 -c 'import time; time.sleep(1)'"
    follow_up = "the nap is over " * 30
    api.enqueue(background(nap, "nap"), Text("started"), Text(follow_up, chunk_size=16, delay=0.05), Text("four"))
    await collect(process.submit("nap in the background"))

    theirs = await claude.next()
    mine = process.submit("what is 2+2?")
    their_events, my_events = await asyncio.gather(collect(theirs), collect(mine))

    assert texts(their_events) == follow_up and result(their_events).origin == "task-notification"
    assert texts(my_events) == "four" and result(my_events).text == "four" and result(my_events).origin == ""
    assert api.requests[-1].last_user_text == "what is 2+2?"


async def test_stop_task_ends_a_background_command_and_claude_does_not_start_a_turn(tmp_path, api, running):
    claude = ClaudeTurns()
    # A long grace: if a stopped task made us wait for a Claude turn, the next message would stall for 60 s.
    process = await running.start(options(tmp_path, api, claude_turn_grace=60.0), on_claude_turn=claude)
    api.enqueue(background(long_command(300.5), "long nap"), Text("started"), Text("still here"))
    await collect(process.submit("nap for long"))
    await eventually(lambda: processes_matching(sleeping(300.5)))
    [task] = process.running_tasks

    await process.stop_task(task.task_id)

    await eventually(lambda: not processes_matching(sleeping(300.5)))
    await eventually(lambda: process.running_tasks == ())
    async with asyncio.timeout(20):
        assert result(await collect(process.submit("are you there?"))).text == "still here"
    assert claude.turns.empty()
