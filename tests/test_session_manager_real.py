"""SessionManager with real Claude Code CLI processes (build_manager) against the fake Messages API.

Suspend and resume, /model and /persona across new processes and a bot restart, and the durable queue across a
SIGKILL of the bot itself (tests/manager_driver.py plays the bot in a child process).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import pytest_asyncio

from claude_bridge.process import pidfile
from claude_bridge.process.reaping import reap_leftover
from claude_bridge.protocol.events import TurnResult
from claude_bridge.sessions.inbox import Inbox
from claude_bridge.sessions.manager import SessionManager
from claude_bridge.sessions.store import load_personas
from claude_bridge.sessions.worker import Delivery, Notice
from claude_bridge.settings import load_settings
from conftest import ROOT, cli_env, real_cli_path
from fake_anthropic import FakeAnthropic, Text
from processes import eventually
from session_manager import build_manager

pytestmark = pytest.mark.real_cli

CHAT = 1
IDLE_AFTER = 0.05  # seconds; a tiny IDLE_TIMEOUT_SECONDS lets the real clock make a session idle at once
PERSONAS, _ = load_personas(ROOT / "personas")
DRIVER = Path(__file__).with_name("manager_driver.py")


def manager_env(tmp_path: Path, api: FakeAnthropic) -> dict[str, str]:
    env = cli_env(tmp_path, api.url)
    env.update(
        SESSIONS_DIR=str(tmp_path / "sessions"),
        PERSONAS_DIR=str(ROOT / "personas"),
        IDLE_TIMEOUT_SECONDS=str(IDLE_AFTER),
        CLAUDE_BIN=str(real_cli_path()),
    )
    return env


@contextlib.asynccontextmanager
async def real_manager(tmp_path: Path, api: FakeAnthropic) -> AsyncIterator[SessionManager]:
    """The manager the bot builds, over tmp_path/sessions; every process is stopped at the end."""
    settings = load_settings(manager_env(tmp_path, api), dotenv_path=None, require_telegram=False)
    manager = build_manager(settings, real_cli_path())
    try:
        yield manager
    finally:
        await manager.close_all()


async def drain(delivery: Delivery, timeout: float = 15.0) -> list[Any]:
    async with asyncio.timeout(timeout):
        return [event async for event in delivery.events()]


async def ask(manager: SessionManager, text: str) -> list[Any]:
    """Send to the chat's active session and read the delivery to its end."""
    return await drain(await manager.send(CHAT, text))


def result_of(events: list[Any]) -> TurnResult:
    assert isinstance(events[-1], TurnResult), events
    return events[-1]


async def make_idle(manager: SessionManager, name: str) -> None:
    """Let the real clock pass the manager's idle limit."""
    await asyncio.sleep(max(0.0, manager.status(name).last_active + manager.idle_after - time.time()) + 0.01)


def cli_processes(root: Path) -> list[psutil.Process]:
    """Running Claude CLIs whose working directory is inside `root`."""
    found = []
    for proc in psutil.process_iter(["cmdline", "cwd", "status"]):
        cmdline, cwd = proc.info["cmdline"] or [], proc.info["cwd"]
        ours = cmdline[:1] == [str(real_cli_path())] and cwd and Path(cwd).is_relative_to(root)
        if ours and proc.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(proc)
    return found



async def test_suspend_then_resume_keeps_the_history_and_the_session_id(tmp_path, api):
    async with real_manager(tmp_path, api) as manager:
        await ask(manager, "remember the word kiwi")
        before = manager.status("default")
        await make_idle(manager, "default")

        assert await manager.suspend_idle() == ["default"]

        assert manager.status("default").state == "suspended"
        assert before.pid is not None and not psutil.pid_exists(before.pid)
        assert cli_processes(tmp_path) == []
        answer = result_of(await ask(manager, "what was the word?"))
        assert answer.text == "echo: what was the word?"
        assert api.requests[-1].user_texts == ["remember the word kiwi", "what was the word?"]
        after = manager.status("default")
        assert after.claude_session_id == before.claude_session_id != ""
        assert after.pid is not None and f"--resume={before.claude_session_id}" in psutil.Process(after.pid).cmdline()


async def test_model_haiku_applies_at_once_and_survives_a_resume_and_a_bot_restart(tmp_path, api):
    async with real_manager(tmp_path, api) as manager:
        await ask(manager, "hello")
        pid = manager.status("default").pid

        await manager.set_model("default", "haiku")
        await ask(manager, "on haiku now?")

        assert "haiku" not in api.requests[0].model and "haiku" in api.requests[-1].model
        assert manager.status("default").pid == pid
        await make_idle(manager, "default")
        assert await manager.suspend_idle() == ["default"]
        await ask(manager, "still haiku after a resume?")
        assert "haiku" in api.requests[-1].model

    async with real_manager(tmp_path, api) as restarted:
        assert restarted.status("default").model == "haiku"
        await ask(restarted, "and after a restart?")
        assert "haiku" in api.requests[-1].model
        assert api.requests[-1].user_texts[0] == "hello"


async def test_persona_prompt_is_sent_and_a_switch_restarts_with_the_new_prompt_and_the_history(tmp_path, api):
    planner, default = PERSONAS["planner"].system_prompt, PERSONAS["default"].system_prompt
    async with real_manager(tmp_path, api) as manager:
        manager.create("plans", persona="planner")
        manager.switch(CHAT, "plans")
        await ask(manager, "plan the kiwi feature")
        assert planner in api.requests[-1].system_text and default not in api.requests[-1].system_text
        old_pid = manager.status("plans").pid

        await manager.set_persona("plans", "default")
        events = await ask(manager, "now build it")

        assert any(isinstance(e, Notice) and "Restarting" in e.text for e in events)
        assert old_pid is not None and not psutil.pid_exists(old_pid)
        assert manager.status("plans").pid not in (None, old_pid)
        request = api.requests[-1]
        assert default in request.system_text and planner not in request.system_text
        assert request.user_texts == ["plan the kiwi feature", "now build it"]


async def test_a_graceful_restart_tells_queued_messages_to_wait_then_delivers_them(tmp_path, api):
    api.enqueue(Text("slow " * 200, chunk_size=5, delay=0.05))
    async with real_manager(tmp_path, api) as manager:
        running = await manager.send(CHAT, "message 0")
        queued = [await manager.send(CHAT, f"message {n}") for n in (1, 2)]
        await api.wait_for_requests(1)

        await manager.close_all()

        assert result_of(await drain(running)).is_error
        for delivery in queued:
            assert "delivered after it restarts" in result_of(await drain(delivery, timeout=3)).text
    async with real_manager(tmp_path, api) as restarted:
        answers = [result_of(await drain(delivery)).text for delivery in await restarted.recover()]
    assert answers == ["echo: message 1", "echo: message 2"]
    assert [request.last_user_text for request in api.requests] == ["message 0", "message 1", "message 2"]


class Driver:
    """tests/manager_driver.py in a child process, its stdout read line by line."""

    def __init__(self, proc: asyncio.subprocess.Process, log: Path) -> None:
        self.proc = proc
        self.log = log
        self.lines: list[str] = []

    async def read_until(self, line: str, timeout: float = 20.0) -> None:
        """Read stdout until `line` has been printed."""
        assert self.proc.stdout is not None
        async with asyncio.timeout(timeout):
            while line not in self.lines:
                raw = await self.proc.stdout.readline()
                assert raw, f"the driver ended before printing {line!r}:\n{self.log.read_text()[-3000:]}"
                self.lines.append(raw.decode().rstrip("\n"))

    def printed(self, kind: str) -> list[str]:
        return [line.removeprefix(kind + " ") for line in self.lines if line.startswith(kind + " ")]

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
        await self.proc.wait()


class Drivers:
    """Starts drivers and kills whichever are still running when the test ends."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = {**env, "PYTHONPATH": str(ROOT)}
        self.logs = logs
        self.started: list[Driver] = []

    async def start(self, *args: str) -> Driver:
        log = self.logs / f"driver-{len(self.started)}-{args[0]}.log"
        with log.open("wb") as stderr:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, str(DRIVER), *args, env=self.env, stdout=asyncio.subprocess.PIPE, stderr=stderr
            )
        driver = Driver(proc, log)
        self.started.append(driver)
        return driver


@pytest_asyncio.fixture
async def drivers(tmp_path: Path, api: FakeAnthropic) -> AsyncIterator[Drivers]:
    holder = Drivers(manager_env(tmp_path, api), tmp_path)
    yield holder
    for driver in holder.started:
        await driver.kill()
    for leftover in cli_processes(tmp_path):
        with contextlib.suppress(OSError):
            os.killpg(leftover.pid, signal.SIGKILL)  # the CLI leads its own process group


async def test_queued_messages_survive_a_crash_of_the_bot_and_the_cut_off_one_is_not_resent(tmp_path, api, drivers):
    messages = [f"message {n}" for n in range(5)]
    api.enqueue(Text("slow " * 200, chunk_size=5, delay=0.05))
    crashing = await drivers.start("send", *messages)
    await crashing.read_until("ACCEPTED 4")
    await api.wait_for_requests(1)
    inbox = Inbox(tmp_path / "sessions/.bot/sessions/default/inbox.jsonl")
    await eventually(lambda: [entry.state for entry in inbox.read()] == ["sent"] + ["queued"] * 4)
    record = pidfile.read(tmp_path / "sessions/.bot/sessions/default/claude.pid")
    assert record is not None
    cli_pid = record.pid

    await crashing.kill()
    assert reap_leftover(cli_pid, real_cli_path())
    await api.wait_until_idle()
    restarted = await drivers.start("recover")
    await restarted.read_until("DONE")

    cut_off = [n for n in restarted.printed("NOTICE") if "cut off" in n]
    assert len(cut_off) == 1 and "message 0" in cut_off[0]
    assert restarted.printed("ANSWER") == [f"echo: message {n}" for n in range(1, 5)]
    assert [request.last_user_text for request in api.requests] == messages
    assert await restarted.proc.wait() == 0
    assert cli_processes(tmp_path) == []
