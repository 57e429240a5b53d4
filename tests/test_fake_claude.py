"""The scripted CLI stand-in (fake_claude.py) does what the protocol notes say the real CLI does."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from fake_claude_helper import ROOT_REFUSAL, FakeCliScript, Step, make_fake_cli, session_state

pytestmark = pytest.mark.timeout(30)

STREAM_JSON = ("-p", "--input-format", "stream-json", "--output-format", "stream-json", "--verbose")
LINE_LIMIT = 256 * 1024 * 1024


class Cli:
    """One fake CLI process driven like the bot drives the real one: NDJSON in, NDJSON out, stderr drained."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.stderr = bytearray()
        self._drain = asyncio.create_task(self._drain_stderr())

    async def _drain_stderr(self) -> None:
        assert self.proc.stderr is not None
        while chunk := await self.proc.stderr.read(1 << 20):
            self.stderr += chunk

    async def send(self, obj: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(obj).encode() + b"\n")
        await self.proc.stdin.drain()

    async def say(self, text: str) -> None:
        await self.send({"type": "user", "message": {"role": "user", "content": text}, "parent_tool_use_id": None})

    async def control(self, request_id: str, **request: Any) -> None:
        await self.send({"type": "control_request", "request_id": request_id, "request": request})

    async def raw_line(self, timeout: float = 5) -> bytes:
        assert self.proc.stdout is not None
        return await asyncio.wait_for(self.proc.stdout.readline(), timeout)

    async def next(self, timeout: float = 5) -> dict[str, Any]:
        line = await self.raw_line(timeout)
        assert line, f"stdout closed (rc {await self.proc.wait()}, stderr {bytes(self.stderr[-500:])!r})"
        event: dict[str, Any] = json.loads(line)
        return event

    async def until(self, kind: str, subtype: str | None = None, timeout: float = 5) -> list[dict[str, Any]]:
        """Events up to and including the first of this type (and subtype)."""
        seen = []
        deadline = time.monotonic() + timeout
        while True:
            event = await self.next(deadline - time.monotonic())
            seen.append(event)
            if event["type"] == kind and (subtype is None or event.get("subtype") == subtype):
                return seen

    async def close(self, timeout: float = 5) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        code = await asyncio.wait_for(self.proc.wait(), timeout)
        await self._drain
        return code


Spawn = Callable[..., Awaitable[Cli]]


@pytest.fixture
async def spawn(tmp_path: Path) -> AsyncIterator[Spawn]:
    started: list[Cli] = []

    async def start(cli: Path, *args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> Cli:
        workdir = cwd or tmp_path / "work"
        workdir.mkdir(exist_ok=True)
        proc = await asyncio.create_subprocess_exec(
            str(cli),
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=workdir,
            env={**os.environ, **(env or {})},
            limit=LINE_LIMIT,
            start_new_session=True,
        )
        started.append(Cli(proc))
        return started[-1]

    try:
        yield start
    finally:
        for cli in started:
            if cli.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(cli.proc.pid, signal.SIGKILL)
                await cli.proc.wait()
            cli._drain.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await cli._drain


@pytest.fixture
def script(tmp_path: Path) -> FakeCliScript:
    return FakeCliScript(tmp_path / "script.json").save()


@pytest.fixture
def cli(tmp_path: Path, script: FakeCliScript) -> Path:
    return make_fake_cli(tmp_path, script)


def kill_group_of(pid_file: Path) -> None:
    with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
        os.killpg(int(pid_file.read_text()), signal.SIGKILL)


def read_pid(path: Path) -> int | None:
    with contextlib.suppress(FileNotFoundError, ValueError):
        return int(path.read_text())
    return None


async def wait_for_pid(path: Path, timeout: float = 5) -> int:
    """The pid a spawn_child step wrote (the fake's own activity, not a timing guess, decides when)."""
    deadline = time.monotonic() + timeout
    while (pid := read_pid(path)) is None:
        assert time.monotonic() < deadline, f"{path} never appeared"
        await asyncio.sleep(0.02)
    return pid


async def test_version_flag(cli: Path, spawn: Spawn) -> None:
    proc = await spawn(cli, "--version")

    assert await proc.raw_line() == b"2.1.197 (Claude Code)\n"
    assert await proc.close() == 0


async def test_text_turn_is_init_assistant_result_and_nothing_before_input(
    cli: Path, spawn: Spawn, tmp_path: Path
) -> None:
    proc = await spawn(cli, *STREAM_JSON)
    with pytest.raises(TimeoutError):
        await proc.raw_line(timeout=0.3)

    await proc.say("hello")
    init, assistant, result = await proc.until("result")

    assert (init["type"], init["subtype"], init["model"], init["permissionMode"]) == (
        "system",
        "init",
        "claude-opus-4-8[1m]",
        "default",
    )
    assert init["cwd"] == str(tmp_path / "work") and init["session_id"]
    assert assistant["message"]["content"] == [{"type": "text", "text": "echo: hello"}]
    assert assistant["session_id"] == result["session_id"] == init["session_id"]
    assert result["subtype"] == "success" and result["is_error"] is False and result["result"] == "echo: hello"
    assert result["terminal_reason"] == "completed" and result["num_turns"] == 1
    assert {"duration_ms", "total_cost_usd", "usage", "modelUsage"} <= result.keys()
    assert await proc.close() == 0


async def test_init_is_repeated_every_turn_and_cost_is_cumulative(cli: Path, spawn: Spawn) -> None:
    proc = await spawn(cli, *STREAM_JSON)

    await proc.say("one")
    first = await proc.until("result")
    await proc.say("two")
    second = await proc.until("result")

    assert [e["type"] for e in second] == ["system", "assistant", "result"]
    assert first[0]["session_id"] == second[0]["session_id"]
    assert (first[-1]["total_cost_usd"], second[-1]["total_cost_usd"]) == (0.001, 0.002)


async def test_continue_keeps_session_id_and_history(cli: Path, spawn: Spawn, tmp_path: Path) -> None:
    async def one_turn(*flags: str) -> str:
        proc = await spawn(cli, *STREAM_JSON, *flags)
        await proc.say("hi")
        result = (await proc.until("result"))[-1]
        assert await proc.close() == 0
        return str(result["session_id"])

    first = await one_turn()
    continued = await one_turn("--continue")
    fresh = await one_turn()

    assert continued == first
    assert fresh != first
    assert session_state(tmp_path / "work") == {"session_id": fresh, "turns": 1, "prompts": ["hi"]}


async def test_continue_in_an_empty_dir_starts_fresh(cli: Path, spawn: Spawn, tmp_path: Path) -> None:
    proc = await spawn(cli, *STREAM_JSON, "--continue")
    await proc.say("hi")

    result = (await proc.until("result"))[-1]

    assert session_state(tmp_path / "work") == {"session_id": result["session_id"], "turns": 1, "prompts": ["hi"]}


async def test_interrupt_during_slow_text_aborts_streaming_promptly(
    script: FakeCliScript, cli: Path, spawn: Spawn
) -> None:
    script.turn(Step.text("tick " * 20, chunks=20, delay=0.5))
    proc = await spawn(cli, *STREAM_JSON)
    await proc.say("stream slowly")
    await proc.until("assistant")

    sent = time.monotonic()
    await proc.control("int_1", subtype="interrupt")
    events = await proc.until("result", timeout=5)

    assert time.monotonic() - sent < 5  # the turn runs >= 10 s on its own
    ack, marker, result = events[0], events[-2], events[-1]
    assert ack == {"type": "control_response", "response": {"subtype": "success", "request_id": "int_1"}}
    assert marker["message"]["content"] == [{"type": "text", "text": "[Request interrupted by user]"}]
    assert (result["subtype"], result["is_error"], result["terminal_reason"]) == (
        "error_during_execution",
        True,
        "aborted_streaming",
    )
    await proc.say("still alive?")
    assert (await proc.until("result"))[-1]["result"] == "echo: still alive?"


async def test_interrupt_during_tool_sleep_aborts_tools_promptly(
    script: FakeCliScript, cli: Path, spawn: Spawn
) -> None:
    script.turn(Step.text("Running it."), Step.tool("Bash", {"command": "sleep 30"}, sleep=30, task=True))
    proc = await spawn(cli, *STREAM_JSON)
    await proc.say("run a tool")
    before = await proc.until("system", "task_started")

    sent = time.monotonic()
    await proc.control("int_2", subtype="interrupt")
    ack, rejected, marker, result = await proc.until("result", timeout=5)

    assert time.monotonic() - sent < 5  # the turn runs >= 10 s on its own
    tool_use = before[-2]["message"]["content"][0]
    assert tool_use["type"] == "tool_use" and tool_use["input"] == {"command": "sleep 30"}
    assert ack["response"]["request_id"] == "int_2"
    assert rejected["message"]["content"][0]["tool_use_id"] == tool_use["id"]
    assert rejected["message"]["content"][0]["is_error"] is True
    assert marker["message"]["content"][0]["text"] == "[Request interrupted by user for tool use]"
    assert (result["subtype"], result["terminal_reason"], result["stop_reason"]) == (
        "error_during_execution",
        "aborted_tools",
        "tool_use",
    )


async def test_interrupt_during_hang_and_when_idle(script: FakeCliScript, cli: Path, spawn: Spawn) -> None:
    script.turn(Step.hang())
    proc = await spawn(cli, *STREAM_JSON)
    await proc.control("idle", subtype="interrupt")
    assert (await proc.next())["response"]["request_id"] == "idle"

    await proc.say("hang")
    await proc.until("system", "init")
    await proc.control("busy", subtype="interrupt")
    result = (await proc.until("result", timeout=5))[-1]

    assert result["terminal_reason"] == "aborted_streaming"
    await proc.say("next")
    assert [e["type"] for e in await proc.until("result")] == ["system", "assistant", "result"]


async def test_hang_ignoring_interrupts_never_answers(script: FakeCliScript, cli: Path, spawn: Spawn) -> None:
    script.turn(Step.hang(ignore_interrupt=True))
    proc = await spawn(cli, *STREAM_JSON)
    await proc.say("hang")
    await proc.until("system", "init")

    await proc.control("int", subtype="interrupt")

    assert (await proc.next())["type"] == "control_response"
    with pytest.raises(TimeoutError):
        await proc.next(timeout=0.5)


async def test_set_model_shows_in_the_next_init(cli: Path, spawn: Spawn) -> None:
    proc = await spawn(cli, *STREAM_JSON, "--model=sonnet")
    await proc.say("one")
    first_init = (await proc.until("result"))[0]

    await proc.control("sm1", subtype="set_model", model="haiku")
    ack = await proc.next()
    await proc.say("two")
    second_init = (await proc.until("result"))[0]

    assert first_init["model"] == "claude-sonnet-5"
    assert ack == {"type": "control_response", "response": {"subtype": "success", "request_id": "sm1"}}
    assert second_init["model"] == "claude-haiku-4-5-20251001"


async def test_initialize_and_unknown_control_requests_are_answered(cli: Path, spawn: Spawn) -> None:
    proc = await spawn(cli, *STREAM_JSON)

    await proc.control("req_1", subtype="initialize", hooks=None)
    await proc.control("req_2", subtype="bogus_thing")

    initialized, refused = await proc.next(), await proc.next()
    assert initialized["response"]["subtype"] == "success" and initialized["response"]["response"]["pid"] > 0
    assert refused["response"] == {
        "subtype": "error",
        "request_id": "req_2",
        "error": "Unsupported control request subtype: bogus_thing",
    }


async def test_huge_64_mib_line_arrives_whole(script: FakeCliScript, cli: Path, spawn: Spawn) -> None:
    size = 64 * 1024 * 1024
    script.turn(Step.huge_line(size, in_result=False))
    proc = await spawn(cli, *STREAM_JSON)
    await proc.say("big")
    await proc.next()

    line = await proc.raw_line(timeout=10)

    assert len(line) > size
    event = json.loads(line)
    assert event["type"] == "assistant"
    text = event["message"]["content"][0]["text"]
    assert len(text) == size and text == "x" * size
    assert (await proc.next())["type"] == "result"


async def test_stderr_flood_does_not_stop_the_turn(script: FakeCliScript, cli: Path, spawn: Spawn) -> None:
    script.turn(Step.stderr(10 * 1024 * 1024), Step.text("done"))
    proc = await spawn(cli, *STREAM_JSON)

    await proc.say("flood")
    result = (await proc.until("result"))[-1]

    assert result["result"] == "done"
    assert await proc.close() == 0
    assert len(proc.stderr) == 10 * 1024 * 1024


async def test_crash_exits_with_its_code_and_the_next_process_continues_the_script(
    script: FakeCliScript, cli: Path, spawn: Spawn
) -> None:
    script.turn(Step.text("partial"), Step.crash(3)).turn(Step.text("after the crash"))
    first = await spawn(cli, *STREAM_JSON)
    await first.say("go")
    await first.until("assistant")

    assert await asyncio.wait_for(first.proc.wait(), 5) == 3
    assert await first.raw_line() == b""  # no result
    second = await spawn(cli, *STREAM_JSON, "--continue")
    await second.say("again")
    assert (await second.until("result"))[-1]["result"] == "after the crash"
    assert script.turns_consumed() == 2


async def test_kill_self_dies_by_signal(script: FakeCliScript, cli: Path, spawn: Spawn) -> None:
    script.turn(Step.kill_self("SIGKILL"))
    proc = await spawn(cli, *STREAM_JSON)

    await proc.say("die")

    assert await asyncio.wait_for(proc.proc.wait(), 5) == -signal.SIGKILL


async def test_start_exit_prints_stderr_without_waiting_for_input(
    script: FakeCliScript, cli: Path, spawn: Spawn
) -> None:
    script.on_start(exit=1, stderr=ROOT_REFUSAL)
    proc = await spawn(cli, *STREAM_JSON, "--dangerously-skip-permissions")

    assert await asyncio.wait_for(proc.proc.wait(), 5) == 1
    await proc._drain
    assert proc.stderr.decode() == ROOT_REFUSAL
    assert await proc.raw_line() == b""


async def test_start_actions_can_apply_to_the_first_starts_only(script: FakeCliScript, cli: Path, spawn: Spawn) -> None:
    script.on_start(exit=2, stderr="boom", times=1)
    failing = await spawn(cli, *STREAM_JSON)
    assert await asyncio.wait_for(failing.proc.wait(), 5) == 2

    working = await spawn(cli, *STREAM_JSON)
    await working.say("hi")

    assert (await working.until("result"))[-1]["result"] == "echo: hi"
    assert [i["start"] for i in script.invocations()] == [1, 2]


async def test_sigterm_exits_143_unless_ignored(script: FakeCliScript, tmp_path: Path, spawn: Spawn) -> None:
    plain = await spawn(make_fake_cli(tmp_path, script), *STREAM_JSON)
    stubborn_script = FakeCliScript(tmp_path / "stubborn.json").on_start(ignore_sigterm=True)
    stubborn = await spawn(make_fake_cli(tmp_path, stubborn_script, name="stubborn"), *STREAM_JSON)
    for proc in (plain, stubborn):
        await proc.control("ready", subtype="initialize")
        await proc.next()

    plain.proc.send_signal(signal.SIGTERM)
    stubborn.proc.send_signal(signal.SIGTERM)

    assert await asyncio.wait_for(plain.proc.wait(), 5) == 143
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(asyncio.shield(stubborn.proc.wait()), 0.3)


async def test_spawn_child_runs_in_its_own_process_group_and_outlives_a_kill(
    script: FakeCliScript, cli: Path, spawn: Spawn, tmp_path: Path
) -> None:
    pid_file = tmp_path / "child.pid"
    script.turn(Step.spawn_child("sleep 300", pid_file))
    proc = await spawn(cli, *STREAM_JSON)
    try:
        await proc.say("run sleep")
        child = await wait_for_pid(pid_file)

        assert os.getpgid(child) == child != os.getpgid(proc.proc.pid)
        assert os.getsid(child) == child
        os.killpg(proc.proc.pid, signal.SIGKILL)
        await proc.proc.wait()
        assert psutil.pid_exists(child) and psutil.Process(child).status() != psutil.STATUS_ZOMBIE
    finally:
        kill_group_of(pid_file)


async def test_interrupt_kills_a_waited_for_child(
    script: FakeCliScript, cli: Path, spawn: Spawn, tmp_path: Path
) -> None:
    pid_file = tmp_path / "child.pid"
    script.turn(Step.spawn_child("sleep 300", pid_file))
    proc = await spawn(cli, *STREAM_JSON)
    try:
        await proc.say("run sleep")
        child = await wait_for_pid(pid_file)

        await proc.control("int", subtype="interrupt")
        result = (await proc.until("result", timeout=5))[-1]

        assert result["terminal_reason"] == "aborted_tools"
        assert not psutil.pid_exists(child)
    finally:
        kill_group_of(pid_file)


async def test_garbage_line_on_stdout_then_normal_lines(script: FakeCliScript, cli: Path, spawn: Spawn) -> None:
    script.turn(Step.garbage("[SandboxDebug] not json"), Step.text("fine"))
    proc = await spawn(cli, *STREAM_JSON)

    await proc.say("x")

    assert (await proc.next())["subtype"] == "init"
    assert await proc.raw_line() == b"[SandboxDebug] not json\n"
    assert (await proc.until("result"))[-1]["result"] == "fine"


async def test_non_json_stdin_line_is_fatal(cli: Path, spawn: Spawn) -> None:
    proc = await spawn(cli, *STREAM_JSON)
    assert proc.proc.stdin is not None

    proc.proc.stdin.write(b"not json at all\n")

    assert await asyncio.wait_for(proc.proc.wait(), 5) == 1
    await proc._drain
    assert proc.stderr.startswith(b"Error parsing streaming input line: not json at all: SyntaxError")


async def test_stream_json_without_verbose_is_refused(cli: Path, spawn: Spawn) -> None:
    proc = await spawn(cli, "-p", "--input-format", "stream-json", "--output-format", "stream-json")

    assert await asyncio.wait_for(proc.proc.wait(), 5) == 1
    await proc._drain
    assert b"requires --verbose" in proc.stderr


async def test_invocations_are_logged_with_flags_and_env(
    script: FakeCliScript, cli: Path, spawn: Spawn, tmp_path: Path
) -> None:
    proc = await spawn(
        cli, *STREAM_JSON, "--model=opus", "--append-system-prompt=Be brief.", "--continue", env={"CLAUDECODE": "1"}
    )
    await proc.say("hi")
    await proc.until("result")
    await proc.close()

    [record] = script.invocations()
    assert record["argv"] == [*STREAM_JSON, "--model=opus", "--append-system-prompt=Be brief.", "--continue"]
    assert record["pid"] == proc.proc.pid and record["cwd"] == str((tmp_path / "work").resolve())
    assert record["claudecode"] is True and record["env"]["PATH"] == os.environ["PATH"]
    assert [r["message"]["message"]["content"] for r in script.received()] == ["hi"]


async def test_eof_during_a_turn_finishes_it_then_exits(script: FakeCliScript, cli: Path, spawn: Spawn) -> None:
    script.turn(Step.text("slow", chunks=2, delay=0.2), Step.error_result("API Error: 500 boom"))
    proc = await spawn(cli, *STREAM_JSON)
    await proc.say("go")
    await proc.until("system", "init")

    code = await proc.close()

    events = await proc.until("result")
    assert [e["message"]["content"][0]["text"] for e in events[:2]] == ["sl", "ow"]
    assert events[-1]["result"] == "API Error: 500 boom"
    assert code == 1  # the last result was an error (§3)


async def test_messages_sent_during_a_turn_merge_into_one_next_turn(
    script: FakeCliScript, cli: Path, spawn: Spawn
) -> None:
    script.turn(Step.text("first", chunks=2, delay=0.3))
    proc = await spawn(cli, *STREAM_JSON)
    await proc.say("a")
    await proc.until("system", "init")

    await proc.say("b")
    await proc.say("c")
    first = (await proc.until("result"))[-1]
    second = (await proc.until("result"))[-1]

    assert (first["result"], second["result"]) == ("first", "echo: b\nc")


async def test_api_retry_error_result_and_max_turns(script: FakeCliScript, cli: Path, spawn: Spawn) -> None:
    script.turn(Step.api_retry(error_status=500, error="server_error"), Step.error_result("API Error: 500 x"))
    script.turn(Step.tool("Bash", {"command": "ls"}, result="a b"), Step.max_turns())
    proc = await spawn(cli, *STREAM_JSON, "--max-turns=1")

    await proc.say("one")
    retry, *_, failed = (await proc.until("result"))[1:]
    await proc.say("two")
    capped = (await proc.until("result"))[-1]

    assert (retry["subtype"], retry["attempt"], retry["error_status"]) == ("api_retry", 1, 500)
    assert (failed["subtype"], failed["is_error"], failed["result"]) == ("success", True, "API Error: 500 x")
    assert failed["api_error_status"] == 500
    assert (capped["subtype"], capped["is_error"], capped["terminal_reason"]) == ("error_max_turns", True, "max_turns")
    assert capped["errors"] == ["Reached maximum number of turns (1)"] and "result" not in capped


async def test_permission_prompt_round_trip(script: FakeCliScript, cli: Path, spawn: Spawn) -> None:
    script.turn(Step.ask_permission("Bash", {"command": "touch f"}, result="ok"), Step.text("done"))
    proc = await spawn(cli, *STREAM_JSON, "--permission-prompt-tool", "stdio")
    await proc.say("touch it")
    request = (await proc.until("control_request"))[-1]

    assert request["request"]["subtype"] == "can_use_tool" and request["request"]["input"] == {"command": "touch f"}
    await proc.send(
        {
            "type": "control_response",
            "response": {
                "subtype": "success",
                "request_id": request["request_id"],
                "response": {"behavior": "allow", "updatedInput": {"command": "touch f"}},
            },
        }
    )
    tool_result, _, result = await proc.until("result")

    assert tool_result["message"]["content"][0]["content"] == "ok"
    assert result["result"] == "done" and result["num_turns"] == 2


async def test_sigint_interrupts_the_turn_then_exits_0(script: FakeCliScript, cli: Path, spawn: Spawn) -> None:
    script.turn(Step.tool("Bash", {"command": "sleep 30"}, sleep=30))
    proc = await spawn(cli, *STREAM_JSON)
    await proc.say("run")
    await proc.until("assistant")

    result = None
    for _ in range(3):  # the tool takes 30 s: a result before that is the interrupt's
        proc.proc.send_signal(signal.SIGINT)
        with contextlib.suppress(TimeoutError):
            result = (await proc.until("result", timeout=5))[-1]
            break
        # Measured in the full suite under xdist: about 1 SIGINT in 150 is never handled by the fake (its worker in
        # its wait, its main thread in its read, nothing pending or blocked; cause not found); a second one was.
    assert result is not None, "no result after three SIGINTs"
    assert result["terminal_reason"] == "aborted_tools"
    assert await asyncio.wait_for(proc.proc.wait(), 5) == 0


async def test_resume_of_an_unknown_session_fails_at_once(cli: Path, spawn: Spawn) -> None:
    proc = await spawn(cli, *STREAM_JSON, "--resume=00000000-0000-4000-8000-000000000000")

    result = await proc.next()

    assert result["subtype"] == "error_during_execution" and result["num_turns"] == 0
    assert result["errors"] == ["No conversation found with session ID: 00000000-0000-4000-8000-000000000000"]
    assert await asyncio.wait_for(proc.proc.wait(), 5) == 1
