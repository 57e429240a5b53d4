"""`python bot.py console` as a user drives it: in-process over a fake process (its commands are the command layer's),
then through a pipe and on a terminal with the real CLI behind it."""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import os
import pty
import signal
import sys
from asyncio.subprocess import DEVNULL, Process
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot_harness import bot_env
from claude_bridge.console import Console
from claude_bridge.console import Screen as ConsoleScreen
from claude_bridge.protocol.events import AssistantText, ControlRequest, TurnResult
from claude_bridge.runtime import take_instance_lock
from claude_bridge.sessions.frontend import FrontEnd
from claude_bridge.sessions.manager import SessionManager
from claude_bridge.sessions.store import Persona
from conftest import ROOT
from fake_anthropic import FakeAnthropic, Text
from fake_process import FakeClock, FakeSpawner, base_options
from fake_telegram import FakeBotAPI
from processes import claude_processes

real_cli = pytest.mark.real_cli
fast = pytest.mark.fast  # the in-process console tests (a fake process, no real CLI)

PROMPT = "\r\n> "  # a terminal turns "\n" into "\r\n"


class Screen:
    """The console's output as the user reads it: wait until something appears."""

    def __init__(self, stream: asyncio.StreamReader) -> None:
        self.stream = stream
        self.unread = ""
        self.everything = ""
        self._decoder = codecs.getincrementaldecoder("utf-8")()

    async def read_until(self, needle: str, timeout: float = 60.0) -> str:
        """Everything printed since the last read, up to and including `needle`."""
        try:
            async with asyncio.timeout(timeout):
                while needle not in self.unread:
                    chunk = await self.stream.read(4096)
                    if not chunk:
                        raise AssertionError(f"the console ended before printing {needle!r}:\n{self.everything}")
                    text = self._decoder.decode(chunk)
                    self.unread += text
                    self.everything += text
        except TimeoutError:
            raise AssertionError(f"{needle!r} never appeared; the console printed:\n{self.everything}") from None
        head, _, self.unread = self.unread.partition(needle)
        return head + needle

    async def read_line(self) -> str:
        return (await self.read_until("\n")).strip()


def console_env(tmp_path: Path, tg: FakeBotAPI, api: FakeAnthropic) -> dict[str, str]:
    """The bot's environment without anything Telegram: the console must not need it."""
    env = bot_env(tmp_path, tg, api)
    return {k: v for k, v in env.items() if not k.startswith("TELEGRAM_") and k != "ALLOWED_USER_IDS"}


async def start_console(
    tmp_path: Path, env: dict[str, str], stdin: int = asyncio.subprocess.PIPE, stdout: int = asyncio.subprocess.PIPE
) -> Process:
    """`python bot.py console` in tmp_path (no developer's .env); its log goes to console-stderr.log."""
    stderr = (tmp_path / "console-stderr.log").open("wb")
    with stderr:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            str(ROOT / "bot.py"),
            "console",
            cwd=tmp_path,
            env=env,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
        )


@contextlib.asynccontextmanager
async def piped_console(tmp_path: Path, tg: FakeBotAPI, api: FakeAnthropic) -> AsyncIterator[Process]:
    """A console whose stdin and stdout are pipes; killed if a test leaves it running."""
    process = await start_console(tmp_path, console_env(tmp_path, tg, api))
    try:
        yield process
    finally:
        await stop(process)


async def stop(process: Process) -> None:
    """After a failed test: SIGTERM lets the console stop its CLIs; SIGKILL only if it does not."""
    if process.returncode is not None:
        return
    process.terminate()
    try:
        await asyncio.wait_for(process.wait(), 30)
    except TimeoutError:
        process.kill()
        await process.wait()


def type_line(process: Process, line: str) -> None:
    assert process.stdin is not None
    process.stdin.write(line.encode() + b"\n")


def screen_of(process: Process) -> Screen:
    assert process.stdout is not None
    return Screen(process.stdout)


class Terminal:
    """Where an in-process console writes: text a test can wait for."""

    def __init__(self) -> None:
        self.text = ""
        self._changed = asyncio.Event()

    def write(self, text: str) -> int:
        self.text += text
        self._changed.set()
        return len(text)

    def flush(self) -> None:
        pass

    async def until(self, needle: str) -> None:
        async with asyncio.timeout(5):
            while needle not in self.text:
                self._changed.clear()
                await self._changed.wait()


@contextlib.asynccontextmanager
async def console_in_process(tmp_path: Path) -> AsyncIterator[tuple[Console, Terminal, FakeSpawner]]:
    """A Console over a SessionManager with fake processes; type with `console.inputs`, read the Terminal."""
    spawner, terminal = FakeSpawner(), Terminal()
    personas = {"default": Persona("default", "plain", ""), "poet": Persona("poet", "rhymes", "Rhyme.")}

    def manager_for(front_end: FrontEnd) -> SessionManager:  # as console_main builds it
        return SessionManager(
            tmp_path / "sessions",
            spawn=spawner,
            base_options=base_options(tmp_path),
            personas=personas,
            clock=FakeClock(),
            front_end=front_end,
        )

    console = Console(manager_for, ConsoleScreen(terminal, interactive=False))
    running = asyncio.create_task(console.run())
    try:
        yield console, terminal, spawner
    finally:
        console.inputs.put_nowait(None)
        await asyncio.wait_for(running, 10)


def typed(console: Console, *lines: str) -> None:
    for line in lines:
        console.inputs.put_nowait(line)


@fast
async def test_a_commands_choices_show_as_numbered_lines_and_typing_a_number_picks_one(tmp_path):
    async with console_in_process(tmp_path) as (console, terminal, _):
        typed(console, "/model", "3")
        await terminal.until("is now haiku.")

    assert "  1. sonnet\n  2. opus\n  3. haiku\n  4. default\n(type a number to pick one)\n" in terminal.text
    assert terminal.text.startswith("ℹ️ Created session “default” and made it active.")
    assert "🧠 Model of “default” is now haiku." in terminal.text
    assert console.manager.status("default").model == "haiku"


@fast
async def test_a_number_with_no_choices_pending_is_a_message_for_claude(tmp_path):
    async with console_in_process(tmp_path) as (console, terminal, spawner):
        typed(console, "/persona", "/status", "2")
        await terminal.until("echo: 2")

    assert console.manager.status("default").persona == "default"
    assert spawner.started[0].received == ["2"]


@fast
async def test_stop_stops_the_answer_on_screen_even_after_switching_away(tmp_path):
    async with console_in_process(tmp_path) as (console, terminal, spawner):
        spawner.enqueue([AssistantText("partial answer"), "hold"])
        typed(console, "/new first", "tell me slowly")
        await terminal.until("partial answer")
        typed(console, "/new second", "/stop")
        await terminal.until("[info] Stopped.")

    assert "⏹ Stopping “first”…" in terminal.text
    assert spawner.interrupts == 1


@fast
async def test_claudes_own_turn_prints_with_its_header(tmp_path):
    async with console_in_process(tmp_path) as (console, terminal, spawner):
        typed(console, "start the tests in the background", "/new other")
        await terminal.until("New session “other”")
        turn = spawner.started[0].begin_claude_turn('Background command "pytest -q" completed (exit code 0)')
        turn.push(AssistantText("all tests passed"))
        turn.push(TurnResult("success", False, "all tests passed"))
        await terminal.until("all tests passed")

    assert "🔔 Background task finished: `pytest -q` — session “default”" in terminal.text


@fast
async def test_a_tool_approval_shows_numbered_choices_and_typing_one_answers_claude(tmp_path):
    async with console_in_process(tmp_path) as (console, terminal, spawner):
        spawner.enqueue([AssistantText("about to write"), "hold"])
        typed(console, "write it")
        await terminal.until("about to write")
        request = ControlRequest("r1", "can_use_tool", {"tool_name": "Write", "input": {"file_path": "a.txt"}})
        asking = asyncio.create_task(spawner.started[0].control_request(request))
        await terminal.until("(type a number to pick one)")
        typed(console, "1")
        assert await asking == {"behavior": "allow", "updatedInput": {"file_path": "a.txt"}}
        await terminal.until("✅ Allowed")
        spawner.release.set()

    assert "🔐 Claude wants to use Write in “default”:\n📝 write a.txt" in terminal.text
    assert "  1. ✅ Allow\n  2. 🚫 Deny\n" in terminal.text


@fast
async def test_help_adds_quit_and_quit_leaves_before_reading_more(tmp_path):
    async with console_in_process(tmp_path) as (console, terminal, spawner):
        typed(console, "/help", "/quit", "never read")
        await terminal.until("/quit — stop every session and leave")

    assert "/model [sonnet|opus|haiku|<full model id>|default] — show or change the model" in terminal.text
    assert not spawner.started


@fast
async def test_a_refusal_is_one_error_line_and_delete_asks_with_numbered_choices(tmp_path):
    async with console_in_process(tmp_path) as (console, terminal, _):
        typed(console, "/switch nowhere", "/new scratch", "/delete scratch", "1")
        await terminal.until("Deleted session")

    assert "[error] There is no session named “nowhere” here." in terminal.text
    assert "  1. 🗑 Delete scratch\n  2. Cancel\n" in terminal.text
    assert not (tmp_path / "sessions/scratch").exists()


@real_cli
async def test_a_conversation_through_a_pipe(tmp_path, tg, api):
    async with piped_console(tmp_path, tg, api) as console:
        screen = screen_of(console)

        type_line(console, "hello console")
        first = await screen.read_until("echo: hello console\n\n")  # a blank line ends each turn
        type_line(console, "/new other")
        await screen.read_until("New session “other” (persona default) is now active.")
        type_line(console, "/sessions")
        await screen.read_until("Sessions:\n")
        listing = [await screen.read_line(), await screen.read_line()]
        type_line(console, "/quit")
        code = await asyncio.wait_for(console.wait(), 60)

    assert "[info] Created session “default”" in first
    assert listing[0].startswith("▶️ other — suspended; default")
    assert listing[1].startswith("• default — live; default") and "1 turns" in listing[1]
    assert code == 0
    assert "> " not in screen.everything  # no prompt through a pipe
    assert not claude_processes(tmp_path / "sessions")


@real_cli
async def test_end_of_input_waits_for_the_last_answer_then_closes_everything(tmp_path, tg, api):
    async with piped_console(tmp_path, tg, api) as console:
        output, _ = await asyncio.wait_for(console.communicate(b"one\ntwo\n"), 90)

    assert console.returncode == 0
    assert output.decode().index("echo: one") < output.decode().index("echo: two")
    assert not claude_processes(tmp_path / "sessions")


@real_cli
async def test_stop_interrupts_a_streaming_answer_and_the_session_carries_on(tmp_path, tg, api):
    api.enqueue(Text("slow " * 200, chunk_size=5, delay=0.1))
    async with piped_console(tmp_path, tg, api) as console:
        screen = screen_of(console)

        type_line(console, "tell me a long story")
        await screen.read_until("slow slow")
        type_line(console, "/stop")
        await screen.read_until("[info] Stopped.")
        type_line(console, "and now?")
        answer = await screen.read_until("and now?")
        console.stdin.close()
        code = await asyncio.wait_for(console.wait(), 60)

    assert "echo:" in answer  # the CLI tells the model about the interruption, and the fake echoes it all
    assert api.requests[-1].last_user_text.endswith("and now?")
    assert screen.everything.count("slow") < 200
    assert code == 0


@real_cli
async def test_ctrl_c_stops_the_answer_and_a_second_one_leaves(tmp_path, tg, api):
    api.enqueue(Text("slow " * 200, chunk_size=5, delay=0.1))
    async with piped_console(tmp_path, tg, api) as console:
        screen = screen_of(console)

        type_line(console, "tell me a long story")
        await screen.read_until("slow slow")
        console.send_signal(signal.SIGINT)
        await screen.read_until("[info] Stopped.")
        console.send_signal(signal.SIGINT)
        code = await asyncio.wait_for(console.wait(), 60)

    assert code == 0
    assert not claude_processes(tmp_path / "sessions")


@real_cli
async def test_model_and_persona_changes_reach_the_next_answer(tmp_path, tg, api):
    async with piped_console(tmp_path, tg, api) as console:
        screen = screen_of(console)

        type_line(console, "/new work")
        await screen.read_until("is now active.\n")
        type_line(console, "/model")
        await screen.read_until("(type a number to pick one)\n")
        type_line(console, "3")
        model = await screen.read_line()
        type_line(console, "/persona brainstorm")
        persona = await screen.read_line()
        type_line(console, "ideas please")
        await screen.read_until("echo: ideas please\n\n")
        type_line(console, "/status")
        status = await screen.read_until("Queued:")
        type_line(console, "/quit")
        await asyncio.wait_for(console.wait(), 60)

    assert model == "🧠 Model of “work” is now haiku."
    assert persona == "🎭 Persona of “work” is now brainstorm; it applies from the next message."
    assert "Session: work (live, pid " in status and "Persona: brainstorm · permissions: default" in status
    assert "haiku" in api.requests[-1].model
    assert "brainstorming partner" in api.requests[-1].system_text


@real_cli
async def test_a_bad_command_or_session_name_is_one_line_and_the_console_goes_on(tmp_path, tg, api):
    async with piped_console(tmp_path, tg, api) as console:
        screen = screen_of(console)

        type_line(console, "/switch nowhere")
        refused = await screen.read_line()
        type_line(console, "/frobnicate")
        unknown = await screen.read_line()
        type_line(console, "/quit")
        code = await asyncio.wait_for(console.wait(), 60)

    assert refused.startswith("[error] There is no session named “nowhere” here.")
    assert unknown == "Unknown command /frobnicate. /help lists them."
    assert code == 0


@real_cli
async def test_without_the_cli_it_says_how_to_install_it(tmp_path, tg, api):
    env = console_env(tmp_path, tg, api) | {"CLAUDE_BIN": str(tmp_path / "nowhere/claude")}
    process = await start_console(tmp_path, env, DEVNULL, DEVNULL)

    assert await asyncio.wait_for(process.wait(), 60) == 2
    assert "npm install -g @anthropic-ai/claude-code" in (tmp_path / "console-stderr.log").read_text()


@real_cli
async def test_it_refuses_sessions_the_running_bot_is_using(tmp_path, tg, api):
    held = take_instance_lock(tmp_path / "sessions")  # what a running bot holds
    assert held is not None
    with held:
        process = await start_console(tmp_path, console_env(tmp_path, tg, api), DEVNULL, DEVNULL)
        code = await asyncio.wait_for(process.wait(), 60)

    assert code == 1
    assert "Stop it first, or set SESSIONS_DIR" in (tmp_path / "console-stderr.log").read_text()


@contextlib.asynccontextmanager
async def terminal_console(tmp_path: Path, tg: FakeBotAPI, api: FakeAnthropic) -> AsyncIterator[tuple[int, Screen]]:
    """A console on a pseudo-terminal: yields the terminal's master side to type on, and its screen."""
    master, slave = pty.openpty()
    process = await start_console(tmp_path, console_env(tmp_path, tg, api), slave, slave)
    os.close(slave)
    reader = asyncio.StreamReader()
    transport, _ = await asyncio.get_running_loop().connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(master, "rb", buffering=0)
    )
    try:
        yield master, Screen(reader)
        assert await asyncio.wait_for(process.wait(), 60) == 0
    finally:
        await stop(process)
        transport.close()


@real_cli
async def test_on_a_terminal_it_prompts_answers_and_quits(tmp_path, tg, api):
    async with terminal_console(tmp_path, tg, api) as (keyboard, screen):
        await screen.read_until("> ")
        os.write(keyboard, b"hello tty\n")
        await screen.read_until("echo: hello tty")
        await screen.read_until(PROMPT)
        os.write(keyboard, b"/help\n")
        help_text = await screen.read_until(PROMPT)
        os.write(keyboard, b"/quit\n")

    assert "/new [name] [folder] [persona]" in help_text and "/stop" in help_text
    assert not claude_processes(tmp_path / "sessions")
