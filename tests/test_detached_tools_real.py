"""Nothing Claude starts outlives its session: a tool that detaches itself (`setsid env -u CLAUDE_BRIDGE_PROCESS … &`)
is stopped with its own session and no other, and what the bot adopts is reaped (real CLI, fake Messages API)."""

from __future__ import annotations

import ctypes
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import psutil
import pytest
import pytest_asyncio

from claude_bridge.process.argv import ProcessOptions
from claude_bridge.process.reaping import reap_adopted
from claude_bridge.process.subprocess import ClaudeSubprocess
from claude_bridge.runtime import PR_SET_CHILD_SUBREAPER, become_subreaper
from conftest import cli_env, real_cli_path
from fake_anthropic import FakeAnthropic, Text
from fake_anthropic import ToolUse as ScriptedTool
from processes import eventually, long_command, processes_matching, sleeping

pytestmark = pytest.mark.real_cli


def detached(seconds: float) -> str:
    """How a tool escapes its shell, its process group and the bot's environment marker."""
    return f"setsid env -u CLAUDE_BRIDGE_PROCESS {long_command(seconds)} > /dev/null 2>&1 < /dev/null &"


def options(tmp_path: Path, api: FakeAnthropic, name: str) -> ProcessOptions:
    workdir = tmp_path / name
    workdir.mkdir()
    env = cli_env(tmp_path, api.url)
    return ProcessOptions(claude_bin=real_cli_path(), cwd=workdir, env=env, permission_mode="bypassPermissions")


@pytest_asyncio.fixture
async def started() -> AsyncIterator[list[ClaudeSubprocess]]:
    assert become_subreaper()  # as main() does
    processes: list[ClaudeSubprocess] = []
    yield processes
    for process in processes:
        await process.stop()
    # This process runs other tests next (an xdist worker, or the whole serial run): their orphans must not become
    # its children, the zombies these tests count.
    assert ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0) == 0


async def detach_in(process: ClaudeSubprocess, api: FakeAnthropic, seconds: float) -> None:
    api.enqueue(ScriptedTool("Bash", {"command": detached(seconds), "description": "start a daemon"}), Text("ok"))
    await process.submit("start it").wait()
    await eventually(lambda: processes_matching(sleeping(seconds)))


def zombie_children() -> list[int]:
    return [c.pid for c in psutil.Process().children() if c.status() == psutil.STATUS_ZOMBIE]


def tree(process: ClaudeSubprocess) -> set[int]:
    """The CLI and everything below it now: what its stop must leave gone and reaped."""
    assert process.pid is not None
    return {process.pid, *(p.pid for p in psutil.Process(process.pid).children(recursive=True))}


def left_unreaped(pids: set[int]) -> list[tuple[int, str]]:
    """Zombies among `pids` that stop left to the bot. A helper the CLI starts while it exits is not in its tree
    when stop begins: if it exits after stop, the bot's periodic reap (reap_adopted) takes it, checked apart."""
    return [(pid, psutil.Process(pid).name()) for pid in zombie_children() if pid in pids]


async def test_a_detached_tool_stops_with_its_session_and_not_with_another(tmp_path, api, started):
    first = ClaudeSubprocess(options(tmp_path, api, "first"), on_status=lambda status: None)
    second = ClaudeSubprocess(options(tmp_path, api, "second"), on_status=lambda status: None)
    started += [first, second]
    await first.start()
    await second.start()
    await detach_in(first, api, 300.625)
    await detach_in(second, api, 300.875)
    [daemon] = processes_matching(sleeping(300.625))
    assert "CLAUDE_BRIDGE_PROCESS" not in " ".join(daemon.environ())  # the marker sweep cannot find it
    trees = tree(first) | tree(second)

    await first.stop()

    assert not processes_matching(sleeping(300.625))
    assert processes_matching(sleeping(300.875))  # the other session's daemon is its own business
    await second.stop()
    assert not processes_matching(sleeping(300.875))
    assert not left_unreaped(trees)
    reap_adopted()  # what the manager runs periodically
    assert not zombie_children(), [(p, psutil.Process(p).name()) for p in zombie_children()]


async def test_what_a_killed_cli_detached_stops_with_its_session_and_not_with_another(tmp_path, api, started):
    """A CLI killed outright (OOM, kill -9) cannot be asked for its tree: its detached daemon moves to the bot. It
    runs on (Claude, resumed, believes it does) and stops with its own session, not with a later crash of another."""
    statuses: dict[str, list[str]] = {"first": [], "second": []}
    first = ClaudeSubprocess(options(tmp_path, api, "first"), on_status=lambda s: statuses["first"].append(s.kind))
    second = ClaudeSubprocess(options(tmp_path, api, "second"), on_status=lambda s: statuses["second"].append(s.kind))
    started += [first, second]
    await first.start()
    await second.start()
    await detach_in(first, api, 300.375)
    await detach_in(second, api, 300.125)

    for name, process in (("first", first), ("second", second)):
        assert process.pid is not None
        os.kill(process.pid, signal.SIGKILL)
        await eventually(lambda name=name: "recovered" in statuses[name])
    [mine] = processes_matching(sleeping(300.375))
    assert mine.ppid() == os.getpid()  # re-parented to the bot, tied to no live CLI

    trees = tree(first) | tree(second) | {mine.pid, *(p.pid for p in mine.children(recursive=True))}
    await second.stop()
    assert not processes_matching(sleeping(300.125))
    assert processes_matching(sleeping(300.375))  # the first session's, though it is the bot's child like the other
    await first.stop()
    assert not processes_matching(sleeping(300.375))
    assert not left_unreaped(trees)
    reap_adopted()  # what the manager runs periodically
    assert not zombie_children(), [(p, psutil.Process(p).name()) for p in zombie_children()]
