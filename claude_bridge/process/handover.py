"""Handing a live CLI process across the bot's own `exec`: detach it into a record, adopt it back after the exec.

The CLI is our child and talks over pipes, so it survives the exec untouched (same pid, same parent): only the
pipe fds, the bytes read but not framed yet and the CLI's unanswered requests must cross. What a session or a
Telegram view holds is the sessions layer's part of the hand-over; this module knows only the process.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from claude_bridge.errors import BridgeError
from claude_bridge.process import pidfile
from claude_bridge.process.live import ControlHandler, EventSink, ExitSink, LiveProcess, OsProcess
from claude_bridge.protocol.events import ControlRequest, TaskInfo

logger = logging.getLogger(__name__)

# asyncio reports 255 for a child whose exit status it could not learn; so do we.
UNKNOWN_EXIT = 255


class HandoverError(BridgeError):
    """A process cannot be handed over (it is ending, a request is unanswered) or a record cannot be read."""


@dataclass(frozen=True)
class ProcessHandover:
    """One live CLI as it crosses an exec: its inheritable pipe fds, identity and the bytes not yet framed."""

    pid: int
    start_time: int | None  # /proc/<pid>/stat field 22: with the marker it tells our CLI from a reused pid
    marker: str
    label: str
    stdin_fd: int
    stdout_fd: int
    stderr_fd: int
    pending_stdout: bytes = b""
    stderr_tail: bytes = b""
    awaiting_first_init: bool = False
    open_requests: tuple[ControlRequest, ...] = ()
    pid_file: Path | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (bytes as base64)."""
        return {
            "pid": self.pid,
            "start_time": self.start_time,
            "marker": self.marker,
            "label": self.label,
            "fds": [self.stdin_fd, self.stdout_fd, self.stderr_fd],
            "pending_stdout": base64.b64encode(self.pending_stdout).decode(),
            "stderr_tail": base64.b64encode(self.stderr_tail).decode(),
            "awaiting_first_init": self.awaiting_first_init,
            "open_requests": [
                {"request_id": r.request_id, "subtype": r.subtype, "request": dict(r.request)}
                for r in self.open_requests
            ],
            "pid_file": str(self.pid_file) if self.pid_file else None,
        }

    @classmethod
    def from_json(cls, raw: Any) -> ProcessHandover:
        """The record `to_json` wrote; HandoverError for anything else."""
        try:
            stdin_fd, stdout_fd, stderr_fd = (int(fd) for fd in raw["fds"])
            return cls(
                pid=int(raw["pid"]),
                start_time=raw["start_time"] if isinstance(raw["start_time"], int) else None,
                marker=str(raw["marker"]),
                label=str(raw["label"]),
                stdin_fd=stdin_fd,
                stdout_fd=stdout_fd,
                stderr_fd=stderr_fd,
                pending_stdout=base64.b64decode(raw["pending_stdout"], validate=True),
                stderr_tail=base64.b64decode(raw["stderr_tail"], validate=True),
                awaiting_first_init=bool(raw["awaiting_first_init"]),
                open_requests=tuple(
                    ControlRequest(str(r["request_id"]), str(r["subtype"]), dict(r["request"]))
                    for r in raw["open_requests"]
                ),
                pid_file=Path(raw["pid_file"]) if raw["pid_file"] else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise HandoverError(f"unreadable process hand-over: {exc!r}") from exc


@dataclass(frozen=True)
class SubprocessHandover:
    """A ClaudeSubprocess as it crosses an exec: its CLI and what it knows of the conversation and the turn in flight.

    `turn_header` is None when no turn runs, "" for a turn a message of ours started, else Claude's own turn's header.
    `restart_key` holds the settings the CLI was started with that only a restart changes (the CLI path, its env).
    """

    process: ProcessHandover
    session_id: str
    turn_header: str | None
    running_tasks: tuple[TaskInfo, ...] = ()
    notices: tuple[str, ...] = ()
    cumulative_cost: float = 0.0
    model: str | None = None
    restart_key: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "process": self.process.to_json(),
            "session_id": self.session_id,
            "turn_header": self.turn_header,
            "running_tasks": [[t.task_id, t.description, t.task_type] for t in self.running_tasks],
            "notices": list(self.notices),
            "cumulative_cost": self.cumulative_cost,
            "model": self.model,
            "restart_key": self.restart_key,
        }

    @classmethod
    def from_json(cls, raw: Any) -> SubprocessHandover:
        try:
            header = raw["turn_header"]
            return cls(
                process=ProcessHandover.from_json(raw["process"]),
                session_id=str(raw["session_id"]),
                turn_header=None if header is None else str(header),
                running_tasks=tuple(TaskInfo(str(a), str(b), str(c)) for a, b, c in raw["running_tasks"]),
                notices=tuple(str(n) for n in raw["notices"]),
                cumulative_cost=float(raw["cumulative_cost"]),
                model=None if raw["model"] is None else str(raw["model"]),
                restart_key=str(raw["restart_key"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise HandoverError(f"unreadable process hand-over: {exc!r}") from exc


async def detach(live: LiveProcess, timeout: float = 5.0) -> ProcessHandover:
    """Stop serving `live` in this image and describe it so the next image can adopt it; the CLI goes on.

    Afterwards this image must not touch `live` again (its readers are gone; its exit is never reported here).
    HandoverError if the process is ending or a request of ours stays unanswered for `timeout`.
    """
    transports = _pipe_transports(live.proc)
    for transport in transports[1:]:
        transport.pause_reading()  # from here on what the CLI writes waits in the kernel pipe for the next image
    try:
        pending, requests = await live.release(timeout)
    except BridgeError as exc:
        for transport in transports[1:]:
            transport.resume_reading()
        raise HandoverError(str(exc)) from exc
    stdout, stderr = live.proc.stdout, live.proc.stderr
    assert stdout is not None and stderr is not None
    pending += await _drain_buffered(stdout, transports[1])
    live.stderr += await _drain_buffered(stderr, transports[2])
    # Our own fds are close-on-exec; inheritable duplicates are what crosses. The originals die with the image.
    fds = [os.dup(transport.get_extra_info("pipe").fileno()) for transport in transports]
    for fd in fds:
        os.set_inheritable(fd, True)
    logger.info("%s: CLI pid %s detached for hand-over (%d bytes pending)", live.label, live.pid, len(pending))
    return ProcessHandover(
        pid=live.pid,
        start_time=pidfile.start_time(live.pid),
        marker=live.marker,
        label=live.label,
        stdin_fd=fds[0],
        stdout_fd=fds[1],
        stderr_fd=fds[2],
        pending_stdout=pending,
        stderr_tail=bytes(live.stderr[-8192:]),
        awaiting_first_init=live.awaiting_first_init,
        open_requests=requests,
        pid_file=live.pid_file,
    )


async def adopt(
    record: ProcessHandover,
    on_event: EventSink,
    on_exit: ExitSink,
    on_control_request: ControlHandler | None = None,
) -> LiveProcess:
    """The process `record` describes, reading again: the pending bytes first, then the pipe; unanswered requests
    are served again (the handler sees the same request_id, so it can re-attach to the prompt it showed).

    HandoverError if the pid is not our child any more or is another process now.
    """
    if not _is_our_process(record):
        raise HandoverError(f"{record.label}: CLI pid {record.pid} is not the process that was handed over")
    proc = await AdoptedProcess.attach(record)
    live = LiveProcess(proc, record.marker, record.label, on_event, on_exit, on_control_request, record.pid_file)
    live.awaiting_first_init = record.awaiting_first_init
    live.stderr += record.stderr_tail
    live.start_reading(record.pending_stdout, record.open_requests)
    logger.info("%s: adopted CLI pid %s (%d bytes pending)", record.label, record.pid, len(record.pending_stdout))
    return live


def _is_our_process(record: ProcessHandover) -> bool:
    if record.start_time is None:
        return True
    return pidfile.start_time(record.pid) in (record.start_time, None)  # None: a zombie we still have to reap


class AdoptedProcess:
    """A child started by a previous image of this process: asyncio streams over the inherited fds, and exit
    detection by a pidfd (asyncio's child watcher of that image died with it)."""

    def __init__(
        self,
        pid: int,
        stdin: asyncio.StreamWriter,
        stdout: tuple[asyncio.StreamReader, asyncio.ReadTransport],
        stderr: tuple[asyncio.StreamReader, asyncio.ReadTransport],
    ) -> None:
        self._pid = pid
        self._returncode: int | None = None
        self._exited = asyncio.Event()
        self._stdin, (self._stdout, stdout_transport), (self._stderr, stderr_transport) = stdin, stdout, stderr
        self.pipe_transports: tuple[Any, Any, Any] = (stdin.transport, stdout_transport, stderr_transport)
        self._pidfd: int | None = None

    @classmethod
    async def attach(cls, record: ProcessHandover) -> AdoptedProcess:
        """Connect the inherited fds to this image's loop and start watching for the exit."""
        loop = asyncio.get_running_loop()
        for fd in (record.stdin_fd, record.stdout_fd, record.stderr_fd):
            os.set_inheritable(fd, False)  # a CLI spawned later must not hold another CLI's pipe open
        stdout = await _read_pipe(loop, record.stdout_fd)
        stderr = await _read_pipe(loop, record.stderr_fd)
        transport, protocol = await loop.connect_write_pipe(
            lambda: asyncio.StreamReaderProtocol(asyncio.StreamReader()), os.fdopen(record.stdin_fd, "wb", 0)
        )
        stdin = asyncio.StreamWriter(transport, protocol, None, loop)
        adopted = cls(record.pid, stdin, stdout, stderr)
        adopted._watch(loop)
        return adopted

    @property
    def pid(self) -> int:
        return self._pid

    @property
    def returncode(self) -> int | None:
        return self._returncode

    @property
    def stdin(self) -> asyncio.StreamWriter:
        return self._stdin

    @property
    def stdout(self) -> asyncio.StreamReader:
        return self._stdout

    @property
    def stderr(self) -> asyncio.StreamReader:
        return self._stderr

    async def wait(self) -> int:
        """Wait for the exit and return its code (negative: killed by that signal, as asyncio says it)."""
        await self._exited.wait()
        assert self._returncode is not None
        return self._returncode

    def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._reap():
            return
        try:
            self._pidfd = os.pidfd_open(self._pid)
        except ProcessLookupError:
            self._reap()  # gone between the two calls
            return
        loop.add_reader(self._pidfd, self._on_pidfd, loop)

    def _on_pidfd(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._reap() and self._pidfd is not None:
            loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None

    def _reap(self) -> bool:
        """Collect the exit status if the child has ended; True once it has."""
        try:
            pid, status = os.waitpid(self._pid, os.WNOHANG)
        except ChildProcessError:
            # Reaped before the hand-over (the old image's child watcher got there first): the code is lost.
            logger.warning("CLI pid %s ended before it could be adopted; its exit code is unknown", self._pid)
            self._finish(UNKNOWN_EXIT)
            return True
        if pid == 0:
            return False
        self._finish(os.waitstatus_to_exitcode(status))
        return True

    def _finish(self, code: int) -> None:
        self._returncode = code
        self._exited.set()


async def _read_pipe(loop: asyncio.AbstractEventLoop, fd: int) -> tuple[asyncio.StreamReader, asyncio.ReadTransport]:
    # The limit only matters to readline, which LiveProcess never uses (it frames stdout itself).
    reader = asyncio.StreamReader(limit=1 << 20)
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", 0))
    return reader, transport


def _pipe_transports(proc: OsProcess) -> tuple[Any, Any, Any]:
    """The stdin, stdout and stderr pipe transports of asyncio's process or of an adopted one."""
    if isinstance(proc, AdoptedProcess):
        return proc.pipe_transports
    # asyncio.subprocess.Process exposes its subprocess transport only as `_transport`; the pipe transports hang
    # off it by fd number (BaseSubprocessTransport.get_pipe_transport, public).
    process_transport = getattr(proc, "_transport")  # noqa: B009 - no public accessor exists
    assert proc.stdin is not None
    return proc.stdin.transport, process_transport.get_pipe_transport(1), process_transport.get_pipe_transport(2)


async def _drain_buffered(reader: asyncio.StreamReader, transport: Any) -> bytes:
    """What the stream already took from the pipe but nobody read, without waiting for more.

    The transport is paused, so nothing new arrives; at EOF `read` returns what is buffered and never waits. A read
    may resume a transport the stream itself had paused (a full buffer), so it is paused again at once, before
    the loop can run its reader.
    """
    reader.feed_eof()
    taken = bytearray()
    while chunk := await reader.read(1 << 20):
        taken += chunk
        transport.pause_reading()
    transport.pause_reading()
    return bytes(taken)
