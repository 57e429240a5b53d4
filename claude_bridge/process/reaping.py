"""Leaving no process behind: signal a CLI's whole tree, kill the tool shells a crashed CLI orphaned (found by
the marker in their environment), stop a CLI a previous run of the bot left behind, stop what a CLI's tools
detached (`setsid env -u CLAUDE_BRIDGE_PROCESS …`), and reap the orphans re-parented to the bot (a subreaper).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from collections.abc import Collection, Iterable
from pathlib import Path

import psutil

from claude_bridge.process import pidfile
from claude_bridge.process.argv import MARKER_ENV
from claude_bridge.runtime import SPAWNED

logger = logging.getLogger(__name__)


def has_descendants(pid: int) -> bool:
    """Whether the process has any child left (a tool still running)."""
    try:
        return bool(psutil.Process(pid).children(recursive=True))
    except psutil.Error:
        return False


async def kill_tree(pid: int, sig: signal.Signals) -> None:
    """Signal every descendant's process group, then the CLI's own group."""
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        children = []
    groups = set()
    for child in children:
        with contextlib.suppress(psutil.Error, OSError):
            groups.add(os.getpgid(child.pid))
    with contextlib.suppress(OSError):
        groups.add(os.getpgid(pid))
    for group in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, sig)
    for child in children:
        with contextlib.suppress(psutil.Error):
            child.send_signal(sig)


CLAIMED: set[int] = set()  # orphans of a crashed CLI a session has taken as its own (stopped with that session)


def descendants(pid: int) -> list[psutil.Process]:
    """Every process below `pid` now; a CLI that is a subreaper keeps its tools' detached orphans among them."""
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def stop_survivors(processes: list[psutil.Process], timeout: float = 5.0) -> list[int]:
    """SIGKILL the processes of a snapshot that still run (psutil checks the start time, so a reused pid is safe),
    then wait for them, which reaps those re-parented to us."""
    alive = []
    for process in processes:
        with contextlib.suppress(psutil.Error):
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                process.kill()
                alive.append(process)
    psutil.wait_procs([p for p in processes if p.pid not in SPAWNED], timeout=timeout)
    CLAIMED.difference_update(process.pid for process in processes)
    if alive:
        logger.info("stopped %d process(es) a session's tools left running: %s", len(alive), [p.pid for p in alive])
    return [p.pid for p in alive]


def claim_orphans() -> list[psutil.Process]:
    """What a CLI that just died had detached, now re-parented to the bot (a subreaper), with everything below it.

    Every live CLI is a subreaper itself, so its tools' orphans stay below it: a live child of the bot that is not a
    process asyncio waits for and not claimed yet can only come from a CLI that died. The caller stops them with
    its session (stop_survivors), as it would have if the CLI had lived."""
    taken: list[psutil.Process] = []
    for child in children_of_self():
        with contextlib.suppress(psutil.Error):
            if child.pid in SPAWNED or child.pid in CLAIMED or child.status() == psutil.STATUS_ZOMBIE:
                continue
            taken += [child, *child.children(recursive=True)]
    CLAIMED.update(process.pid for process in taken)
    if taken:
        logger.info("a crashed CLI left %d detached process(es) running: %s", len(taken), [p.pid for p in taken])
    return taken


def reap_adopted() -> list[int]:
    """Reap every exited child of the bot that asyncio does not wait for: orphans re-parented to the subreaper."""
    reaped = []
    for child in children_of_self():
        with contextlib.suppress(psutil.Error, ChildProcessError):
            if child.pid not in SPAWNED and child.status() == psutil.STATUS_ZOMBIE:
                os.waitpid(child.pid, os.WNOHANG)
                reaped.append(child.pid)
    return reaped


def children_of_self() -> list[psutil.Process]:
    try:
        return psutil.Process().children()
    except psutil.Error:
        return []


def kill_marked_processes(marker: str, sig: signal.Signals = signal.SIGKILL) -> list[int]:
    """Kill every process whose environment carries this CLI's marker (tool shells orphaned by a crash)."""
    needle = f"{MARKER_ENV}={marker}".encode()
    killed: list[int] = []
    me = os.getpid()
    for pid_dir in Path("/proc").iterdir():
        if not pid_dir.name.isdigit() or int(pid_dir.name) == me:
            continue
        try:
            environ = (pid_dir / "environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(pid_dir.name), sig)
                killed.append(int(pid_dir.name))
    if killed:
        logger.info("killed %d process(es) left behind by a Claude CLI: %s", len(killed), killed)
    return killed


def reap_leftover(pid: int, claude_bin: Path | None = None) -> bool:
    """Stop a CLI a previous run of the bot left behind (pid from its pid file), and its tool processes.

    The pid is trusted only if /proc/<pid>/cmdline is a stream-json Claude CLI, so a reused pid is left alone.
    """
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False
    args = [a.decode("utf-8", "replace") for a in cmdline if a]
    if "stream-json" not in args or "--input-format" not in args:
        return False
    if claude_bin is not None and args and Path(args[0]).name != claude_bin.name:
        return False
    marker = next((e.split(b"=", 1)[1].decode() for e in environ if e.startswith(MARKER_ENV.encode() + b"=")), "")
    if not marker:
        return False  # not one of ours: a CLI someone started by hand
    logger.warning("stopping Claude CLI pid %s left behind by a previous run", pid)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(os.getpgid(pid), signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)
    if marker:
        kill_marked_processes(marker)
    return True


def reap_leftovers(
    pid_files: Iterable[Path], claude_bin: Path | None = None, keep: Collection[int] = ()
) -> list[int]:
    """Stop the CLIs a previous run left behind (a pid file per live session; each file goes); a reused pid is left
    alone, and so are the processes in `keep` (adopted by a reload, their files stay). Returns the pids stopped."""
    stopped = []
    for pid_file in pid_files:
        record = pidfile.read(pid_file)
        if record is not None and record.pid in keep:
            continue
        with contextlib.suppress(OSError):
            if record is None:
                pass
            elif not pidfile.still_ours(record):
                logger.info("pid %s from %s is another process now; left alone", record.pid, pid_file)
            elif reap_leftover(record.pid, claude_bin):
                stopped.append(record.pid)
            pid_file.unlink(missing_ok=True)
    return stopped
