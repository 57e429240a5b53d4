"""Process-table and waiting helpers shared by the tests that check what runs and what is left behind."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path

import psutil

# The process table is the whole machine's: other pytest processes (xdist's workers, another checkout's run) start
# the same commands. This process's pid in each command keeps their look-ups apart.
TAG = f"# pytest {os.getpid()}"


def long_command(seconds: float) -> str:
    """A Bash command that runs `seconds` (newer CLIs refuse a foreground `sleep N`); see sleeping(seconds)."""
    return f"python3 -c 'import time; time.sleep({seconds})  {TAG}'"


def sleeping(seconds: float) -> str:
    """What the process table shows for long_command(seconds) (the shell running it, then Python): pick a unique
    `seconds` per test of a file; tests in other processes never match it."""
    return f"time.sleep({seconds})  {TAG}"


def processes_matching(needle: str) -> list[psutil.Process]:
    """Live (non-zombie) processes whose command line contains `needle`."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if needle in cmdline and proc.info["status"] != psutil.STATUS_ZOMBIE and proc.pid != os.getpid():
            found.append(proc)
    return found


def claude_processes(sessions_dir: Path) -> list[psutil.Process]:
    """Live stream-json CLI processes working in this test's sessions directory."""
    found = []
    for proc in psutil.process_iter(["cmdline", "cwd", "status"]):
        with contextlib.suppress(psutil.Error):
            in_sessions = str(proc.info["cwd"] or "").startswith(str(sessions_dir))
            live = proc.info["status"] != psutil.STATUS_ZOMBIE
            if in_sessions and live and "stream-json" in (proc.info["cmdline"] or []):
                found.append(proc)
    return found


def transcript_text(root: Path) -> str:
    """Every transcript the CLI wrote under `root`/claude-config (the config dir `cli_env` gives it)."""
    return "".join(p.read_text() for p in (root / "claude-config/projects").rglob("*.jsonl"))


async def eventually(predicate: Callable[[], object], timeout: float = 30.0) -> None:
    """For state no event announces (the process table, a file on disk): poll until it holds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)
