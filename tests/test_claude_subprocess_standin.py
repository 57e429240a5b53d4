"""ClaudeSubprocess against the scripted stand-in CLI (fake_claude.py): crashes, hangs, floods and stops on cue."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import signal
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import pytest_asyncio

from claude_bridge.errors import BridgeError, ClaudeNotFound, ClaudeStartError
from claude_bridge.process import pidfile
from claude_bridge.process.argv import BASE_ARGS, MARKER_ENV, ProcessOptions
from claude_bridge.process.reaping import reap_leftover
from claude_bridge.process.subprocess import ClaudeSubprocess
from claude_bridge.process.turns import Turn
from claude_bridge.protocol.events import (
    CANCELLED,
    EXITED,
    WATCHDOG,
    AssistantText,
    Event,
    ProcessStatus,
    SessionStarted,
    ToolResult,
    ToolUse,
    TurnResult,
)
from fake_claude_helper import ROOT_REFUSAL, FakeCliScript, Step, make_fake_cli
from processes import eventually

pytestmark = pytest.mark.timeout(30)

STREAM_JSON = ["-p", "--input-format", "stream-json", "--output-format", "stream-json", "--verbose"]
STOP_TIMEOUT = 0.3


class Statuses:
    """The on_status callback: records every ProcessStatus and lets a test await one."""

    def __init__(self) -> None:
        self.seen: list[ProcessStatus] = []
        self._changed = asyncio.Event()

    def __call__(self, status: ProcessStatus) -> None:
        self.seen.append(status)
        self._changed.set()

    @property
    def kinds(self) -> list[str]:
        return [s.kind for s in self.seen]

    async def wait_for(self, kind: str, count: int = 1, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while self.kinds.count(kind) < count:
                self._changed.clear()
                await self._changed.wait()


class Running:
    """Starts processes on the stand-in with short timeouts; the fixture stops them all at the end."""

    def __init__(self, tmp_path: Path, script: FakeCliScript) -> None:
        self.tmp_path = tmp_path
        self.claude_bin = make_fake_cli(tmp_path, script)
        self.statuses = Statuses()
        self.processes: list[ClaudeSubprocess] = []

    def options(self, **overrides: Any) -> ProcessOptions:
        workdir = self.tmp_path / "session"
        workdir.mkdir(exist_ok=True)
        values: dict[str, Any] = dict(
            claude_bin=self.claude_bin,
            cwd=workdir,
            env=dict(os.environ),
            restart_delays=(0.05, 0.1, 0.2),
            watchdog_seconds=5.0,
            start_timeout=10.0,
            stop_timeout=STOP_TIMEOUT,
        )
        values.update(overrides)
        return ProcessOptions(**values)

    async def start(self, **overrides: Any) -> ClaudeSubprocess:
        process = ClaudeSubprocess(self.options(**overrides), on_status=self.statuses)
        self.processes.append(process)
        await process.start()
        return process


@pytest.fixture
def script(tmp_path: Path) -> FakeCliScript:
    return FakeCliScript(tmp_path / "script.json").save()


@pytest_asyncio.fixture
async def running(tmp_path: Path, script: FakeCliScript) -> AsyncIterator[Running]:
    holder = Running(tmp_path, script)
    try:
        yield holder
    finally:
        try:
            for process in holder.processes:
                await asyncio.wait_for(process.stop(), 15)  # a stop that hangs fails its test, not the whole run
        finally:
            kill_leftovers(holder.processes, tmp_path)


def kill_leftovers(processes: list[ClaudeSubprocess], tmp_path: Path) -> None:
    """After a failed stop: the stand-ins' process groups, and the `sleep` tool children named in pid files."""
    for process in processes:
        if process.alive and process.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
    for pid_file in tmp_path.glob("*.pid"):
        with contextlib.suppress(ValueError, psutil.Error):
            child = psutil.Process(int(pid_file.read_text()))
            if child.cmdline()[:1] == ["sleep"]:
                child.kill()


async def collect(turn: Turn) -> list[Event]:
    return [event async for event in turn.events()]


def final(events: list[Event]) -> TurnResult:
    assert isinstance(events[-1], TurnResult)
    return events[-1]


async def first_event(turn: Turn, kind: type) -> Any:
    async for event in turn.events():
        if isinstance(event, kind):
            return event
    raise AssertionError(f"the turn ended without a {kind.__name__}")


def user_prompts(script: FakeCliScript) -> list[tuple[int, Any]]:
    """(stand-in pid, content) of every user message the stand-ins read, in order."""
    return [(r["pid"], r["message"]["message"]["content"]) for r in script.received() if r["message"]["type"] == "user"]


def control_requests(script: FakeCliScript, subtype: str) -> list[dict[str, Any]]:
    return [
        r["message"]["request"]
        for r in script.received()
        if r["message"]["type"] == "control_request" and r["message"]["request"]["subtype"] == subtype
    ]


async def exited(pid: int, timeout: float = 3.0) -> bool:
    """Whether the process ends within `timeout`, awaited on a pidfd (a zombie has ended: only its parent reaps it)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    loop = asyncio.get_running_loop()
    ended = loop.create_future()
    loop.add_reader(fd, lambda: ended.done() or ended.set_result(None))
    try:
        await asyncio.wait_for(ended, timeout)
        return True
    except TimeoutError:
        return False
    finally:
        loop.remove_reader(fd)
        os.close(fd)


def reaped(pid: int) -> bool:
    """Whether our child `pid` has been waited for already (so it is not a zombie)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


def hold_the_loop(seconds: float) -> None:
    """Block the event loop, so that what the stand-in writes meanwhile is read only after our next await."""
    time.sleep(seconds)



async def test_a_turn_is_init_text_result_with_timings(running):
    process = await running.start()

    first = process.submit("one")
    events = await collect(first)
    second = process.submit("two")
    await second.wait()

    assert [type(e) for e in events] == [SessionStarted, AssistantText, TurnResult]
    assert final(events).text == "echo: one" and not final(events).is_error
    timings = first.timings
    assert timings.spawn_to_init is not None and timings.spawn_to_init > 0
    assert timings.send_to_first_text is not None and timings.send_to_result is not None
    assert 0 < timings.send_to_first_text <= timings.send_to_result
    assert second.timings.spawn_to_init is None and second.timings.send_to_result is not None


async def test_a_64_mib_line_parses_and_the_next_turn_works(running, script):
    size = 64 * 2**20
    script.turn(Step.huge_line(size, in_result=False))
    process = await running.start()

    events = await collect(process.submit("something big"))

    [text] = [e.text for e in events if isinstance(e, AssistantText)]
    assert len(text) == size and text == "x" * size
    assert not final(events).is_error
    assert final(await collect(process.submit("and now?"))).text == "echo: and now?"


async def test_a_10_mib_stderr_flood_does_not_stall_the_turn_and_only_its_tail_is_kept(running, script):
    script.turn(Step.stderr(10 * 2**20), Step.stderr("last words\n"), Step.text("done"))
    process = await running.start()

    answer = final(await collect(process.submit("flood")))

    assert answer.text == "done"
    await eventually(lambda: process.stderr_tail.endswith("last words\n"))
    assert 128 * 1024 <= len(process.stderr_tail) <= 256 * 1024
    assert process.stderr_tail.endswith("e" * 1023 + "\nlast words\n")


async def test_a_non_json_stdout_line_is_logged_and_skipped(running, script, caplog):
    script.turn(Step.garbage("[SandboxDebug] sandbox ready"), Step.text("fine"))
    process = await running.start()

    with caplog.at_level(logging.WARNING, logger="claude_subprocess"):
        answer = final(await collect(process.submit("hi")))

    assert answer.text == "fine" and not answer.is_error
    assert "non-JSON" in caplog.text and "[SandboxDebug] sandbox ready" in caplog.text


async def test_a_json_line_the_parser_chokes_on_does_not_wedge_the_session(running, script):
    script.turn(Step.garbage('{"type":"assistant","message":"not an object"}'), Step.text("fine"))
    process = await running.start()

    answer = await asyncio.wait_for(process.submit("hi").wait(), 5)

    assert answer.text == "fine"


async def test_an_unknown_flag_at_start_is_a_start_error_carrying_the_stderr(running, script):
    script.on_start(exit=1, stderr="error: unknown option '--include-partial-messages'\n")

    with pytest.raises(ClaudeStartError) as caught:
        await running.start()

    assert "unknown option '--include-partial-messages'" in str(caught.value)
    assert caught.value.stderr_tail == "error: unknown option '--include-partial-messages'\n"
    assert caught.value.exit_code == 1


async def test_the_root_refusal_says_to_run_as_a_normal_user_or_set_is_sandbox(running, script):
    script.on_start(exit=1, stderr=ROOT_REFUSAL)

    with pytest.raises(ClaudeStartError, match="IS_SANDBOX=1") as caught:
        await running.start()

    assert "normal user" in str(caught.value)
    assert ROOT_REFUSAL in caught.value.stderr_tail


async def test_a_missing_cli_is_claude_not_found_naming_the_path(running, tmp_path):
    missing = tmp_path / "nowhere" / "claude"

    with pytest.raises(ClaudeNotFound, match=re.escape(str(missing))):
        await running.start(claude_bin=missing)


async def test_a_cli_that_is_not_executable_is_a_start_error(running, tmp_path):
    not_executable = tmp_path / "claude-without-x"
    not_executable.write_text("#!/bin/sh\n")

    with pytest.raises(ClaudeStartError, match="not executable"):
        await running.start(claude_bin=not_executable)


@pytest.mark.parametrize(
    ("prompt", "words"),
    [
        ("x" * 200_000, "the persona's prompt is too long to pass to the CLI"),
        ("be\x00 nice", "the persona's prompt or a setting contains a NUL byte"),
    ],
)
async def test_an_argument_the_os_refuses_is_a_start_error_worded_at_the_spawn(running, prompt, words):
    with pytest.raises(ClaudeStartError) as caught:
        await running.start(append_system_prompt=prompt)

    assert str(caught.value).startswith(f"Could not start Claude: {words}") and "next message" in str(caught.value)


async def test_a_missing_session_directory_is_not_reported_as_a_missing_cli(running, tmp_path):
    with pytest.raises(BridgeError) as caught:
        await running.start(cwd=tmp_path / "deleted-session")

    assert not isinstance(caught.value, ClaudeNotFound)
    assert "deleted-session" in str(caught.value)


@pytest.mark.parametrize(("death", "code"), [(Step.crash(3), 3), (Step.kill_self("SIGKILL"), -9)])
async def test_a_crash_mid_turn_cuts_it_off_restarts_with_continue_and_answers_the_queue(running, script, death, code):
    script.turn(Step.text("partial"), Step.stderr("panic: out of cheese\n"), death)
    script.turn(Step.text("after the crash"))
    process = await running.start()
    doomed = process.submit("doomed")
    await doomed.written.wait()
    queued = process.submit("queued")

    cut = await doomed.wait()
    events = await collect(queued)

    assert (cut.subtype, cut.is_error) == (EXITED, True)
    assert f"exit code {code}" in cut.text and "cut off" in cut.text and "panic: out of cheese" in cut.text
    assert final(events).text == "after the crash"
    assert running.statuses.kinds == ["crashed", "restarting", "recovered"]
    assert [e.kind for e in events if isinstance(e, ProcessStatus)] == ["crashed", "restarting", "recovered"]
    first, second = script.invocations()
    # Its own conversation by id, not the folder's newest (another session may share the folder).
    assert "--continue" not in first["argv"] and second["argv"][-1] == f"--resume={process.session_id}"
    assert user_prompts(script) == [(first["pid"], "doomed"), (second["pid"], "queued")]


async def test_a_crash_while_idle_also_respawns(running, script):
    process = await running.start()
    await process.submit("one").wait()
    old_pid = process.pid
    assert old_pid is not None

    os.kill(old_pid, signal.SIGKILL)
    await running.statuses.wait_for("recovered")

    assert process.pid not in (None, old_pid)
    assert final(await collect(process.submit("two"))).text == "echo: two"
    assert script.invocations()[-1]["argv"][-1] == f"--resume={process.session_id}"


async def test_recovery_kills_the_tool_process_the_crashed_cli_left_behind(running, script, tmp_path):
    pid_file = tmp_path / "child.pid"
    script.turn(Step.spawn_child("sleep 300", pid_file, wait=False), Step.kill_self("SIGKILL"))
    process = await running.start()

    await process.submit("start a server").wait()
    child = int(pid_file.read_text())
    await running.statuses.wait_for("recovered")

    assert await exited(child)


async def test_after_three_failed_restarts_it_gives_up_and_a_later_message_starts_afresh(running, script):
    script.turn(Step.text("fine")).turn(Step.crash(3))
    process = await running.start()
    await process.submit("one").wait()
    script.on_start(exit=1, stderr="cannot start: disk full\n", times=4)  # start 1 is done: 2, 3, 4 fail
    doomed = process.submit("crash now")
    await doomed.written.wait()
    queued = process.submit("waiting behind it")

    assert (await doomed.wait()).subtype == EXITED
    left = await queued.wait()

    assert running.statuses.kinds == ["crashed", "restarting", "restarting", "restarting", "gave_up"]
    restarting = [s for s in running.statuses.seen if s.kind == "restarting"]
    assert [s.attempt for s in restarting] == [1, 2, 3]
    assert [s.message.split(" (")[0] for s in restarting] == [f"Restarting Claude in {d} s" for d in (0.05, 0.1, 0.2)]
    gave_up = running.statuses.seen[-1].message
    assert "could not be restarted after 3 attempts" in gave_up and "disk full" in gave_up
    assert (left.subtype, left.is_error) == (EXITED, True) and "could not be restarted" in left.text
    assert process.failed
    assert final(await collect(process.submit("again"))).text == "echo: again"
    assert not process.failed
    assert [i["start"] for i in script.invocations()] == [1, 2, 3, 4, 5]
    assert script.invocations()[-1]["argv"][-1] == f"--resume={process.session_id}"


async def test_a_good_turn_renews_the_restart_budget(running, script):
    script.turn(Step.crash(1)).turn(Step.text("back")).turn(Step.crash(1)).turn(Step.text("back again"))
    process = await running.start(restart_delays=(0.05,))  # one attempt: a second crash needs a reset counter

    answers = []
    for _ in range(2):
        assert (await process.submit("crash").wait()).subtype == EXITED
        answers.append((await process.submit("hello").wait()).text)

    assert answers == ["back", "back again"]
    assert running.statuses.kinds == ["crashed", "restarting", "recovered"] * 2


async def test_a_silent_turn_is_interrupted_by_the_watchdog(running, script):
    script.turn(Step.text("thinking…"), Step.hang())
    process = await running.start(watchdog_seconds=0.5)
    pid = process.pid

    answer = await asyncio.wait_for(process.submit("hang").wait(), 5)

    assert (answer.subtype, answer.is_error) == (WATCHDOG, True)
    assert "watchdog" in answer.error_text
    assert len(control_requests(script, "interrupt")) == 1
    assert process.pid == pid
    assert final(await collect(process.submit("next"))).text == "echo: next"


async def test_a_turn_that_ignores_the_watchdogs_interrupt_is_killed_and_the_process_recovers(running, script):
    script.turn(Step.hang(ignore_interrupt=True))
    process = await running.start(watchdog_seconds=0.5)

    answer = await asyncio.wait_for(process.submit("hang hard").wait(), 5)
    await running.statuses.wait_for("recovered")

    assert answer.is_error and "watchdog" in answer.error_text
    assert final(await collect(process.submit("next"))).text == "echo: next"


async def test_stop_returns_when_it_lands_just_as_the_watchdogs_turn_ends(running, script):
    script.turn(Step.hang(ignore_interrupt=True))
    process = await running.start(watchdog_seconds=1.0)
    turn = process.submit("hang")
    await eventually(lambda: turn.watchdog_fired)
    await process.interrupt()  # acknowledged after the watchdog's own: the watchdog now waits for the result
    os.kill(process.pid or 0, signal.SIGKILL)

    await turn.done.wait()  # woken just after the watchdog's own wait ends, so stop() cancels it mid-wake-up
    stopping = asyncio.create_task(process.stop())

    finished, _ = await asyncio.wait({stopping}, timeout=3)

    assert stopping in finished, "stop() hung waiting for the watchdog task"
    assert not process.alive


async def test_a_turn_that_keeps_talking_slowly_is_not_a_hang(running, script):
    script.turn(Step.text("tick " * 10, chunks=10, delay=0.2))
    process = await running.start(watchdog_seconds=0.5)

    answer = await process.submit("talk slowly").wait()

    assert (answer.subtype, answer.is_error, answer.text) == ("success", False, "tick " * 10)


async def test_a_long_tool_with_a_live_child_process_is_not_a_hang(running, script):
    # 1.75 s, not 2: a tool ending just as a watchdog check runs is misjudged (a product race, reported).
    script.turn(Step.spawn_child("sleep 1.75"), Step.text("built"))
    process = await running.start(watchdog_seconds=0.5)

    answer = await process.submit("run the build").wait()

    assert (answer.subtype, answer.is_error, answer.text) == ("success", False, "built")
    assert control_requests(script, "interrupt") == []


async def test_messages_sent_while_busy_are_written_one_at_a_time_in_order(running, script):
    script.turn(Step.text("busy", chunks=4, delay=0.1))
    process = await running.start()
    first = process.submit("keep busy")
    await first.written.wait()

    turns, order = [], []
    for n in range(5):
        turn = process.submit(f"message {n}")  # the one message that waits: the session's worker queues the rest
        with pytest.raises(BridgeError):
            process.submit("one too many")
        await turn.written.wait()
        order.append((turns[-1] if turns else first).done.is_set())
        turns.append(turn)
    answers = [(await t.wait()).text for t in turns]

    assert order == [True] * 5
    assert not process.waiting
    # The stand-in merges messages that arrive while it is busy, so an unmerged echo each proves one at a time.
    assert answers == [f"echo: message {n}" for n in range(5)]
    assert [text for _, text in user_prompts(script)] == ["keep busy", *[f"message {n}" for n in range(5)]]
    times = [r["time"] for r in script.received() if r["message"]["type"] == "user"]
    assert times == sorted(times)


@pytest.mark.parametrize(
    ("step", "working", "terminal"),
    [
        (Step.text("tick " * 20, chunks=20, delay=0.5), AssistantText, "aborted_streaming"),
        (Step.tool("Bash", {"command": "sleep 30"}, sleep=30), ToolUse, "aborted_tools"),
    ],
    ids=["slow-text", "tool-sleep"],
)
async def test_interrupt_stops_the_turn_promptly_and_the_queue_goes_on(running, script, step, working, terminal):
    script.turn(step)
    process = await running.start()
    turn = process.submit("work slowly")
    await turn.written.wait()
    queued = process.submit("after the stop")
    await first_event(turn, working)

    started = time.monotonic()
    assert await process.interrupt()
    stopped = await turn.wait()

    assert time.monotonic() - started < 5.0  # the turn runs >= 10 s on its own: the interrupt ended it
    assert stopped.is_error and stopped.stopped and stopped.terminal_reason == terminal
    assert final(await collect(queued)).text == "echo: after the stop"


async def test_interrupt_when_idle_does_nothing(running):
    process = await running.start()

    assert await process.interrupt() is False


async def test_stop_when_idle_closes_stdin_and_reaps_the_process(running, tmp_path):
    pid_file = tmp_path / "claude.pid"
    process = await running.start(pid_file=pid_file, stop_timeout=2.0)
    await process.submit("hi").wait()
    pid = process.pid
    record = pidfile.read(pid_file)
    assert pid is not None and record is not None and record.pid == pid and pidfile.still_ours(record)
    assert record.marker and record.start_time  # a reused pid can never pass for this CLI

    started = time.monotonic()
    await process.stop()

    assert time.monotonic() - started < 2.0  # it ended on stdin close: no SIGTERM was needed
    assert not psutil.pid_exists(pid) and not pid_file.exists()
    with pytest.raises(BridgeError):
        process.submit("too late")


async def test_stop_just_as_the_turn_ends_on_its_own_does_not_raise(running):
    process = await running.start()
    turn = process.submit("quick one")
    await turn.written.wait()
    hold_the_loop(0.3)  # the stand-in answers now; we read its result while stop() awaits its interrupt's ack

    await process.stop()

    assert (await turn.wait()).text == "echo: quick one"


async def test_stop_kills_a_cli_deaf_to_interrupt_stdin_and_sigterm_and_its_tool_process(running, script, tmp_path):
    pid_file = tmp_path / "child.pid"
    script.on_start(ignore_sigterm=True)
    script.turn(Step.spawn_child("sleep 300", pid_file, wait=False), Step.hang(ignore_interrupt=True))
    process = await running.start()
    turn = process.submit("wedge yourself")
    await turn.written.wait()
    queued = process.submit("never sent")
    await first_event(turn, ToolResult)
    cli, child = process.pid, int(pid_file.read_text())
    assert cli is not None

    started = time.monotonic()
    await process.stop()

    # 3 s for the interrupted turn to end, then stdin close, SIGTERM and SIGKILL, stop_timeout each.
    assert time.monotonic() - started < 3.0 + 2 * STOP_TIMEOUT + 1.5
    assert reaped(cli) and not psutil.pid_exists(cli)
    assert await exited(child, timeout=1.0)
    assert (await turn.wait()).subtype == EXITED
    assert (await queued.wait()).subtype == CANCELLED
    assert user_prompts(script) == [(cli, "wedge yourself")]


async def test_argv_env_cwd_and_process_group_of_the_spawned_cli(running, script, tmp_path):
    home = tmp_path / "home"
    prompt = "--dangerously-skip-permissions is not for you; be brief"
    env = {**os.environ, "HOME": str(home), "PATH": "/usr/bin:/bin", "CLAUDECODE": "1"}
    process = await running.start(
        env=env, model="sonnet", append_system_prompt=prompt, permission_mode="acceptEdits", max_turns=7
    )

    events = await collect(process.submit("hi"))

    [record] = script.invocations()
    argv = record["argv"]
    assert argv[: len(STREAM_JSON)] == STREAM_JSON and set(BASE_ARGS) <= set(argv)
    assert {"--model=sonnet", f"--append-system-prompt={prompt}", "--permission-mode=acceptEdits"} <= set(argv)
    assert "--max-turns=7" in argv and "--continue" not in argv
    assert record["cwd"] == str(process.options.cwd)
    assert record["pid"] == record["pgid"] == record["sid"] == process.pid
    assert record["claudecode"] is False
    assert str(home / ".local/bin") in record["env"]["PATH"].split(os.pathsep)
    init = events[0]
    assert isinstance(init, SessionStarted)
    assert (init.model, init.permission_mode, init.cwd) == ("claude-sonnet-5", "acceptEdits", str(process.options.cwd))


async def test_continue_is_passed_only_when_asked(running, script):
    await running.start()
    await running.start(continue_conversation=True)

    fresh, continued = script.invocations()

    assert "--continue" not in fresh["argv"]
    assert continued["argv"][-1] == "--continue"


async def test_set_model_switches_the_live_process_and_every_later_spawn(running, script):
    process = await running.start()
    before = await collect(process.submit("one"))

    await process.set_model("haiku")
    after = await collect(process.submit("two"))

    assert [e.model for e in before + after if isinstance(e, SessionStarted)] == [
        "claude-opus-4-8[1m]",
        "claude-haiku-4-5-20251001",
    ]
    assert control_requests(script, "set_model") == [{"subtype": "set_model", "model": "haiku"}]
    os.kill(process.pid or 0, signal.SIGKILL)
    await running.statuses.wait_for("recovered")
    assert "--model=haiku" in script.invocations()[-1]["argv"]


async def leftover_cli(tmp_path: Path, script: FakeCliScript, marker: str) -> asyncio.subprocess.Process:
    """A stand-in started the way the bot starts one, then abandoned (as if the bot had been killed)."""
    cli = make_fake_cli(tmp_path, script, name="claude", argv0=True)
    return await asyncio.create_subprocess_exec(
        str(cli),
        *BASE_ARGS,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, MARKER_ENV: marker},
        start_new_session=True,
        cwd=tmp_path,
    )


@pytest_asyncio.fixture
async def leftovers() -> AsyncIterator[list[asyncio.subprocess.Process]]:
    started: list[asyncio.subprocess.Process] = []
    yield started
    for proc in started:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()


async def test_reap_leftover_stops_a_cli_left_running_and_its_tool_process(script, tmp_path, leftovers):
    pid_file = tmp_path / "child.pid"
    script.turn(Step.spawn_child("sleep 300", pid_file, wait=False), Step.hang())
    marker = uuid.uuid4().hex
    leftovers.append(proc := await leftover_cli(tmp_path, script, marker))
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(json.dumps({"type": "user", "message": {"role": "user", "content": "serve"}}).encode() + b"\n")
    while json.loads(await proc.stdout.readline())["type"] != "user":  # the tool_result: the child is running
        pass
    child = int(pid_file.read_text())
    # Just started, the child may still be inside exec, its environment (the marker the reaping looks for) not yet
    # readable in /proc: a leftover found at the bot's next start has long been running.
    await eventually(lambda: pidfile.marker_of(child) == marker)

    assert reap_leftover(proc.pid, Path("/opt/anywhere/claude")) is True

    assert await asyncio.wait_for(proc.wait(), 5) == -signal.SIGKILL
    assert await exited(child)


async def test_reap_leftover_leaves_a_process_that_is_not_a_stream_json_cli_alone(tmp_path, leftovers):
    marker = uuid.uuid4().hex
    other = await asyncio.create_subprocess_exec(
        "sleep", "30", env={**os.environ, MARKER_ENV: marker}, start_new_session=True
    )
    leftovers.append(other)

    assert reap_leftover(other.pid) is False

    assert not await exited(other.pid, timeout=0.2)


async def test_reap_leftover_leaves_a_cli_with_another_name_alone(script, tmp_path, leftovers):
    leftovers.append(proc := await leftover_cli(tmp_path, script, uuid.uuid4().hex))

    assert reap_leftover(proc.pid, Path("/usr/local/bin/not-claude")) is False

    assert not await exited(proc.pid, timeout=0.2)


async def test_an_unknown_conversation_id_starts_a_fresh_one_and_says_so(running, script):
    lost = "11111111-2222-4333-8444-555555555555"

    process = await running.start(resume_id=lost)
    result = final(await collect(process.submit("hello")))

    first, second = script.invocations()
    assert first["argv"][-1] == f"--resume={lost}"
    assert not [arg for arg in second["argv"] if arg.startswith("--resume") or arg == "--continue"]
    assert running.statuses.kinds == ["conversation_lost"] and lost in running.statuses.seen[0].message
    assert not result.is_error and process.session_id not in ("", lost)
