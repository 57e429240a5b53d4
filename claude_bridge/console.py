"""`python bot.py console`: the bot's sessions driven from a terminal, no Telegram needed.

Lines in, text out: a line is a message for the SessionManager or a /command for the command layer (its choices
print as numbered lines; typing the number picks one); each turn prints as it streams. Works through a pipe and on
a tty; input is read while an answer streams, so /stop works.
"""

from __future__ import annotations

import argparse
import asyncio
import codecs
import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from claude_bridge.commands import menu
from claude_bridge.commands.asks import prompt_reply
from claude_bridge.commands.catalog import CommandSpec
from claude_bridge.commands.core import Commands, parse
from claude_bridge.commands.describe import tool_line
from claude_bridge.commands.limit_wording import limit_message, queued_line, warning_text
from claude_bridge.commands.reply import Choice, Reply
from claude_bridge.commands.schedules import Runner
from claude_bridge.commands.wording import claude_turn_title, queued_text, retry_text
from claude_bridge.errors import BridgeError, ConfigError
from claude_bridge.protocol import events
from claude_bridge.protocol.limits import RateLimit
from claude_bridge.runtime import become_subreaper, protect_process, setup_logging, take_instance_lock
from claude_bridge.sessions.factory import build_manager
from claude_bridge.sessions.frontend import ClaudeCommands, FrontEnd
from claude_bridge.sessions.homes import CONSOLE_CHAT
from claude_bridge.sessions.limits import Hold
from claude_bridge.sessions.manager import SessionManager
from claude_bridge.sessions.place import Place
from claude_bridge.sessions.prompts import Prompt, PromptKind
from claude_bridge.sessions.schedules import STORE_NAME, FireTarget, Schedules
from claude_bridge.sessions.store import STATE_DIR
from claude_bridge.sessions.tools import OutgoingFile
from claude_bridge.sessions.worker import Delivery, Notice
from claude_bridge.settings import Settings, find_claude, load_settings

logger = logging.getLogger(__name__)

CHAT_ID = CONSOLE_CHAT  # Telegram never uses 0 for a chat, so the console has its own active session in chats.json
QUIT = CommandSpec(
    "quit",
    "/quit",
    "stop every session and leave (Ctrl-C stops an answer, a second one leaves; end of input leaves after the "
    "last answer)",
    in_menu=False,
)


class Screen:
    """Text out: streamed answer text and whole lines, never glued onto each other."""

    def __init__(self, stream: TextIO, interactive: bool) -> None:
        self.stream = stream
        self.interactive = interactive
        self.at_line_start = True

    def write(self, text: str) -> None:
        """Write text as it comes (answer deltas)."""
        if not text:
            return
        self.stream.write(text)
        self.stream.flush()
        self.at_line_start = text.endswith("\n")

    def end_line(self) -> None:
        """Finish a line of streamed text, if one is open."""
        if not self.at_line_start:
            self.write("\n")

    def line(self, text: str) -> None:
        """Write a whole line on a line of its own."""
        self.end_line()
        self.write(text + "\n")

    def info(self, text: str) -> None:
        """A line about what is going on, not from Claude."""
        self.line(f"[info] {text}")

    def prompt(self) -> None:
        """`> ` when a person is typing at a terminal; nothing through a pipe."""
        if self.interactive:
            self.end_line()
            self.write("> ")

    def typed(self) -> None:
        """The user pressed Enter: the terminal's echo moved the cursor to a new line."""
        self.at_line_start = True


class TurnPrinter:
    """Prints one turn's events: text as it streams, a line per tool, info lines, the error if any."""

    def __init__(self, screen: Screen) -> None:
        self.screen = screen
        self.streamed = ""  # the text block arriving as deltas; its AssistantText repeats it whole
        self.printed = False

    def show(self, event: events.Event | Notice) -> None:
        """Print one event."""
        screen = self.screen
        match event:
            case Notice(text=text):
                screen.info(text)
            case events.TextDelta(text=text):
                self.streamed += text
                self.printed = True
                screen.write(text)
            case events.AssistantText(text=text):
                self._block(text)
            case events.ToolUse(name=name, input=tool_input):
                screen.line(tool_line(name, dict(tool_input)))
            case events.ToolResult(is_error=True, preview=preview):
                screen.line(f"  ✗ tool failed: {_first_line(preview)}")
            case events.ApiRetry():
                screen.info(retry_text(event))
            case events.ProcessStatus(message=message):
                screen.info(message)
            case events.TurnResult():
                self._end(event)

    def _block(self, text: str) -> None:
        if self.streamed and text.startswith(self.streamed):
            self.screen.write(text[len(self.streamed) :])
        elif self.streamed:
            self.screen.line(text)  # the deltas and the block disagree: the block is the truth
        else:
            self.screen.write(text)
        self.screen.end_line()
        self.streamed = ""
        self.printed = True

    def _end(self, result: events.TurnResult) -> None:
        if not result.is_error and not self.printed and result.text:
            self.screen.write(result.text)
        if result.stopped:
            self.screen.info("Stopped.")
        elif result.is_error:
            self.screen.line(f"[error] {result.error_text}")
        self.screen.end_line()
        self.screen.write("\n")


def _first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0][:200] if lines else "(no output)"


class Console:
    """Reads lines, drives the manager, and prints each accepted message's turn, one turn at a time.

    It is the sessions' FrontEnd port too: `manager_for` builds the manager with it."""

    def __init__(
        self,
        manager_for: Callable[[FrontEnd], SessionManager],
        screen: Screen,
        schedules_for: Callable[[FireTarget], Schedules] | None = None,
    ) -> None:
        self.screen = screen
        self.inputs: asyncio.Queue[str | None] = asyncio.Queue()
        self.turns: asyncio.Queue[Delivery] = asyncio.Queue()
        self.showing: Delivery | None = None
        self.stopping: Delivery | None = None
        self.quitting = False
        self.choices: tuple[Choice, ...] = ()
        self._plans_shown: set[str] = set()
        self._menu: tuple[tuple[str, str], ...] = ()
        self.manager = manager_for(self)
        self.schedules = schedules_for(Runner(self.manager, self._show_scheduled)) if schedules_for else None
        self.commands = Commands(self.manager, extra=(QUIT,), schedules=self.schedules)

    # -- the loop --

    async def run(self) -> None:
        """Handle input until /quit, a signal, or the end of input (which first waits for the answers)."""
        printer = asyncio.create_task(self.print_turns(), name="console-printer")
        self.screen.prompt()
        try:
            while not self.quitting:
                line = await self.inputs.get()
                if line is None:  # end of input: the answers still coming are what a pipe is waiting for
                    await self._finish_answers()
                    break
                if self.screen.interactive:
                    self.screen.typed()
                await self.handle(line)
                if not self.quitting and self.showing is None and self.turns.empty():
                    self.screen.prompt()
        finally:
            await self.manager.close_all()
            # Show how the turns close_all ended, then stop printing.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.turns.join(), 5.0)
            printer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await printer

    async def _finish_answers(self) -> None:
        answered = asyncio.create_task(self.turns.join())
        signalled = asyncio.create_task(self.inputs.get())
        await asyncio.wait({answered, signalled}, return_when=asyncio.FIRST_COMPLETED)
        for task in (answered, signalled):
            task.cancel()

    async def print_turns(self) -> None:
        """The one task that prints turns, in the order they were sent."""
        while True:
            delivery = await self.turns.get()
            self.showing = delivery
            try:
                if delivery.by_claude:
                    self.screen.info(claude_turn_title(delivery, self.manager.active_session(CHAT_ID)))
                printer = TurnPrinter(self.screen)
                async for event in delivery.events():
                    printer.show(event)
            finally:
                self.showing = None
                self.turns.task_done()
            if self.turns.empty() and not self.quitting:
                self.screen.prompt()

    def on_interrupt(self) -> None:
        """Ctrl-C: stop the running answer; a second Ctrl-C (or one while idle) quits."""
        showing = self.showing
        if showing is not None and showing is not self.stopping:
            self.stopping = showing
            self.inputs.put_nowait("/stop")
        else:
            self.inputs.put_nowait("/quit")

    async def handle(self, line: str) -> None:
        """One line: a /command, or a message for the active session."""
        text = line.strip()
        choices, self.choices = self.choices, ()  # choices answer the very next line only
        if not text:
            return
        if text.isdigit() and 1 <= int(text) <= len(choices):
            text = choices[int(text) - 1].command
        try:
            if text.startswith("/"):
                await self.command(text)
            else:
                await self.send(text)
        except BridgeError as exc:
            self.screen.line(f"[error] {exc}")

    async def command(self, text: str) -> None:
        """A /command: /quit here, everything else through the command layer."""
        name, args = parse(text)
        if name in ("quit", "exit"):
            self.quitting = True
            return
        if not self.commands.knows(name) and (claude := self.commands.claude_line(CHAT_ID, text)) is not None:
            await self.send(claude)  # one of the session's Claude commands
            return
        if name == "stop":
            self.stopping = self.showing
            if self.showing is not None and not args:
                text = f"/stop {self.showing.session}"  # the answer on screen, even after a /switch
        self.show(await self.commands.run(CHAT_ID, text))

    def on_prompt(self, prompt: Prompt) -> None:
        """Claude asks (a tool, a question, a plan): numbered choices or a typed reply; then what was decided."""
        if not prompt.waiting:
            self.screen.info(prompt.outcome)
            return
        if prompt.kind == PromptKind.PLAN and prompt.id not in self._plans_shown:
            self._plans_shown.add(prompt.id)
            self.screen.line(prompt.plan)
        self.show(prompt_reply(prompt))

    def show(self, reply: Reply) -> None:
        """A command's reply: its text, then its choices as numbered lines that typing the number picks."""
        self.screen.line(reply.text)
        for number, choice in enumerate(reply.choices, 1):
            self.screen.line(f"  {number}. {choice.label}")
        if reply.choices:
            self.screen.line("(type a number to pick one)")
        self.choices = reply.choices

    async def send(self, text: str) -> None:
        """Queue a message for the active session; its turn prints when the turns before it are done."""
        delivery = await self.manager.send(CHAT_ID, text)
        if (hold := self.manager.limits.held(delivery.session)) is not None:  # it waits for the usage limit's reset
            self.screen.info(queued_line(hold, time.time(), self.manager.limits.book.zone))
        elif delivery.position:
            self.screen.info(queued_text(delivery.position))
        self.turns.put_nowait(delivery)

    # -- the FrontEnd port --

    async def notify(self, place: Place, text: str) -> None:
        """The manager's notices (a crashed process restarted, …)."""
        self.screen.info(text)

    def show_claude_turn(self, delivery: Delivery) -> None:
        """Claude's own turn prints in its turn, like a message's."""
        self.turns.put_nowait(delivery)

    async def send_file(self, outgoing: OutgoingFile) -> None:
        """A file Claude sends stays where it is on this machine: say where."""
        self.screen.info(
            f"Claude sent a file: {outgoing.path}" + (f" — {outgoing.caption}" if outgoing.caption else "")
        )

    def show_prompt(self, prompt: Prompt) -> None:
        self.on_prompt(prompt)

    def show_commands(self, place: Place, session: str, commands: ClaudeCommands) -> None:
        """The session's Claude commands, printed once when they change (typing one runs it)."""
        if self.manager.active_session(place.where) != session:
            return
        claude = menu.build(commands, own=()).commands
        if claude and claude != self._menu:
            self.screen.info(f"{session}: Claude's commands: " + " ".join(f"/{name}" for name, _ in claude))
        self._menu = claude

    def _show_scheduled(self, delivery: Delivery, heading: str) -> None:
        """A scheduled prompt's turn prints in its turn, under its heading."""
        self.screen.info(heading)
        self.turns.put_nowait(delivery)

    async def show_limit(self, place: Place, hold: Hold, message_id: int | None) -> int | None:
        """The usage limit's message; a later state prints as a new one (a terminal edits nothing)."""
        self.show(limit_message(hold, time.time(), self.manager.limits.book.zone))
        return 1  # one message stands for the hold here: it is printed again when the hold changes

    async def warn_limit(self, place: Place, limit: RateLimit) -> None:
        self.screen.info(warning_text(limit, time.time(), self.manager.limits.book.zone))


def read_lines(fd: int, loop: asyncio.AbstractEventLoop, inputs: asyncio.Queue[str | None]) -> None:
    """Feed the lines of `fd` into `inputs` from a daemon thread, then None for the end of input.

    os.read, not sys.stdin: a daemon thread parked in a buffered read holds its lock, and the interpreter
    aborts at exit ("could not acquire lock for <stdin>"). Works the same for a pipe, a file and a tty.
    """

    def put(item: str | None) -> None:
        with contextlib.suppress(RuntimeError):  # the loop has closed: the console is gone
            loop.call_soon_threadsafe(inputs.put_nowait, item)

    def read() -> None:
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        pending = ""
        while True:
            try:
                chunk = os.read(fd, 1 << 16)
            except OSError:  # EIO: the terminal went away
                chunk = b""
            pending += decoder.decode(chunk, final=not chunk)
            *lines, pending = pending.split("\n")
            for line in lines:
                put(line)
            if not chunk:
                break
        if pending:
            put(pending)
        put(None)

    threading.Thread(target=read, name="console-stdin", daemon=True).start()


async def console_main(settings: Settings, claude_bin: Path) -> int:
    """Run the console on stdin / stdout until /quit or the end of input; every session is closed after."""
    screen = Screen(sys.stdout, interactive=sys.stdin.isatty())
    store = settings.sessions_dir / STATE_DIR / STORE_NAME
    console = Console(
        lambda front_end: build_manager(settings, claude_bin, front_end),
        screen,
        lambda target: Schedules(store, target, settings.time_zone),
    )
    manager = console.manager
    reaped = manager.reap_leftovers()
    if reaped:
        logger.warning("stopped %d Claude process(es) left by a previous run: %s", len(reaped), reaped)
    manager.start_scheduler()
    if console.schedules is not None:
        await console.schedules.start()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, console.on_interrupt)
    loop.add_signal_handler(signal.SIGTERM, console.inputs.put_nowait, "/quit")
    read_lines(sys.stdin.fileno(), loop, console.inputs)
    try:
        await console.run()
    finally:
        if console.schedules is not None:
            await console.schedules.shutdown()
        loop.remove_signal_handler(signal.SIGINT)
        loop.remove_signal_handler(signal.SIGTERM)
    return 0


def run_console(args: list[str]) -> int:
    """`python bot.py console`: 0 after /quit or the end of input, 2 when settings or the CLI are missing."""
    parser = argparse.ArgumentParser(prog="bot.py console", description="Chat with the bot's sessions here.")
    parser.parse_args(args)
    try:
        settings = load_settings(require_telegram=False)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"• {problem}", file=sys.stderr)
        return 2
    level = settings.log_level if "LOG_LEVEL" in settings.env else "WARNING"
    setup_logging(level, settings.telegram_token, settings.transcribe.api_key or "")
    protect_process()  # the console's files are as private as the bot's (umask 077), its memory as closed
    become_subreaper()  # and what Claude's tools detach is re-parented to it, to be stopped with its session
    try:
        claude_bin = find_claude(settings.claude_bin, settings.env)
    except BridgeError as exc:
        print(exc, file=sys.stderr)
        return 2
    lock = take_instance_lock(settings.sessions_dir)
    if lock is None:
        print(
            f"The bot (or another console) is using {settings.sessions_dir}. Stop it first, "
            "or set SESSIONS_DIR to another folder for the console.",
            file=sys.stderr,
        )
        return 1
    with lock:
        return asyncio.run(console_main(settings, claude_bin))
