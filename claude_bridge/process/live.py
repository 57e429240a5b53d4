"""One running CLI OS process: NDJSON framing both ways, our control requests and the CLI's requests to us.

It owns its reader and handler tasks and the futures of the control requests sent to it; when the process ends,
those futures fail at once. It knows nothing of turns, restarts or sessions.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from claude_bridge.errors import BridgeError, ClaudeNoAnswer, ClaudeStartError
from claude_bridge.process import pidfile
from claude_bridge.process.argv import ProcessOptions, start_failure
from claude_bridge.process.reaping import descendants, kill_marked_processes, kill_tree, stop_survivors
from claude_bridge.protocol import messages
from claude_bridge.protocol.events import ControlCancel, ControlRequest, ControlResponse, Event, parse_event
from claude_bridge.runtime import SPAWNED, become_subreaper

logger = logging.getLogger(__name__)

# asyncio's 64 KiB readline limit corrupts the stream on ordinary turns (a Read of a 200 KB file is a
# 422 KB line), so stdout is read in chunks and framed here; a line may be far larger than this chunk.
READ_CHUNK = 1 << 20
MAX_LINE_BYTES = 512 << 20
STDERR_KEEP = 256 << 10

ControlHandler = Callable[[ControlRequest], Awaitable[Mapping[str, Any]]]
EventSink = Callable[["LiveProcess", Event], None]
ExitSink = Callable[["LiveProcess"], None]


class OsProcess(Protocol):
    """What LiveProcess needs of an OS process: asyncio's own, or one adopted across a reload (handover.py)."""

    @property
    def pid(self) -> int: ...
    @property
    def returncode(self) -> int | None: ...
    @property
    def stdin(self) -> asyncio.StreamWriter | None: ...
    @property
    def stdout(self) -> asyncio.StreamReader | None: ...
    @property
    def stderr(self) -> asyncio.StreamReader | None: ...
    async def wait(self) -> int: ...


class LiveProcess:
    """A spawned CLI: `spawn()`, `write()`, `request()`; `shutdown()` to end it, `close()` once it has exited."""

    def __init__(
        self,
        proc: OsProcess,
        marker: str,
        label: str,
        on_event: EventSink,
        on_exit: ExitSink,
        on_control_request: ControlHandler | None = None,
        pid_file: Path | None = None,
    ) -> None:
        self.proc = proc
        self.marker = marker
        self.label = label
        self.pid_file = pid_file
        self.spawned_at = time.monotonic()
        self.awaiting_first_init = True
        self.exit_reason = ""
        self.returncode: int | None = None
        self.exited = asyncio.Event()
        self.stderr = bytearray()
        self._on_event = on_event
        self._on_exit = on_exit
        self._on_control_request = on_control_request
        self._pending: dict[str, tuple[str, asyncio.Future[ControlResponse]]] = {}
        self._serving: dict[str, asyncio.Task[None]] = {}
        self._open_requests: dict[str, ControlRequest] = {}
        self._stdout_buffer = bytearray()  # read but not yet framed: a reload hands it over (handover.py)
        self._readers: list[asyncio.Task[None]] = []
        self._write_lock = asyncio.Lock()
        self._seq = 0

    @classmethod
    async def spawn(
        cls,
        options: ProcessOptions,
        argv: list[str],
        env: Mapping[str, str],
        marker: str,
        on_event: EventSink,
        on_exit: ExitSink,
        on_control_request: ControlHandler | None = None,
    ) -> LiveProcess:
        """Start the CLI in its own process group and start reading it; ClaudeNotFound / ClaudeStartError."""
        if not options.cwd.is_dir():
            raise ClaudeStartError(f"The session directory {options.cwd} does not exist.", None, "")
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=options.cwd,
                env=dict(env),
                start_new_session=True,
                # The CLI adopts what its tools detach, so a stop finds every process of the session in its tree.
                preexec_fn=become_subreaper,
            )
        except (OSError, ValueError) as exc:  # ValueError: a NUL byte in an argument
            raise start_failure(exc, options.claude_bin, launching=True) from exc
        SPAWNED.add(proc.pid)
        live = cls(proc, marker, options.label, on_event, on_exit, on_control_request, options.pid_file)
        live.start_reading()
        if options.pid_file is not None:
            # Lets the next start find this CLI if the bot itself is killed; start time and marker make sure a
            # reused pid is never taken for it (pidfile.still_ours).
            try:
                pidfile.write(options.pid_file, proc.pid, marker)
            except OSError as exc:
                # ENOSPC, a read-only folder: no CLI is left running.
                await live.shutdown(graceful=False, timeout=options.stop_timeout)
                raise start_failure(exc, options.claude_bin, launching=False) from exc
        return live

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def stderr_tail(self) -> str:
        return self.stderr.decode("utf-8", "replace")

    def start_reading(self, pending: bytes = b"", reopen: tuple[ControlRequest, ...] = ()) -> None:
        """Start draining stdout (framed into events) and stderr (into a bounded buffer).

        An adopted process (handover.py) starts with the bytes its previous reader had not framed yet and serves
        again the CLI's requests that were still unanswered.
        """
        self._stdout_buffer[:0] = pending
        for request in reopen:
            self._serve(request)
        self._readers = [
            asyncio.create_task(self._read_stdout(), name=f"{self.label}-stdout"),
            asyncio.create_task(self._read_stderr(), name=f"{self.label}-stderr"),
        ]

    async def write(self, obj: Mapping[str, Any]) -> None:
        """Write one message line; BridgeError if the process is gone."""
        # One json.dumps line per message: a raw newline or any non-JSON line kills the CLI (rc 1).
        stdin = self.proc.stdin
        if stdin is None or self.exited.is_set():
            raise BridgeError("the Claude process is not running")
        data = (json.dumps(obj) + "\n").encode("utf-8")
        try:
            async with self._write_lock:
                stdin.write(data)
                await stdin.drain()
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise BridgeError("the Claude process is not running") from exc

    async def request(self, body: Mapping[str, Any], timeout: float | None = None) -> ControlResponse:
        """Send a control request and wait for its answer.

        The one place its failures become the error tree: no answer in time or the process ended first →
        ClaudeNoAnswer; a refusal → BridgeError with the CLI's reason.
        """
        subtype = str(body.get("subtype", "request"))
        self._seq += 1
        request_id = f"req_{self._seq}_{uuid.uuid4().hex[:8]}"
        future: asyncio.Future[ControlResponse] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = (subtype, future)
        try:
            await self.write(messages.control_request(request_id, body))
            async with asyncio.timeout(timeout):
                response = await future
        except TimeoutError as exc:
            raise ClaudeNoAnswer(subtype, f"Claude did not answer {subtype} within {timeout:g} s") from exc
        except BridgeError as exc:
            if isinstance(exc, ClaudeNoAnswer):
                raise
            raise ClaudeNoAnswer(subtype, f"Claude could not take {subtype}: {exc}") from exc
        finally:
            self._pending.pop(request_id, None)
        if not response.ok:
            raise BridgeError(f"Claude refused {subtype}: {response.error or 'no reason given'}")
        return response

    async def shutdown(self, *, graceful: bool, timeout: float) -> None:
        """End the process and everything it started: close stdin, wait, SIGTERM the tree, wait, SIGKILL."""
        proc = self.proc
        tree = await asyncio.to_thread(descendants, proc.pid)  # before it exits and its orphans move to the bot
        if graceful and proc.returncode is None and proc.stdin is not None:
            # Closing stdin lets the CLI end on its own and clean up its tool shells (SIGTERM would orphan them).
            with contextlib.suppress(OSError):
                proc.stdin.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.exited.wait(), timeout)
        if proc.returncode is None:
            # Tool shells run in their own process groups: signal them first, while they are still our
            # descendants, then the CLI's group; escalate to SIGKILL.
            await kill_tree(proc.pid, signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), timeout)
        if proc.returncode is None:
            await kill_tree(proc.pid, signal.SIGKILL)
            await proc.wait()
        await self.close()
        await self.reap_orphans()
        await asyncio.to_thread(stop_survivors, tree)
        if self.pid_file is not None:
            self.pid_file.unlink(missing_ok=True)
        logger.info("%s: CLI pid %s stopped (exit code %s)", self.label, proc.pid, proc.returncode)

    async def reap_orphans(self) -> None:
        """Kill tool processes this CLI left behind (they carry its marker in their environment)."""
        await asyncio.to_thread(kill_marked_processes, self.marker)

    async def release(self, timeout: float) -> tuple[bytes, tuple[ControlRequest, ...]]:
        """Stop reading and serving without ending the process, so a reload can hand it over.

        Waits up to `timeout` for our own control requests to be answered (their answer would reach the next
        image, which has no future for it); BridgeError if they are not, or if the process is ending. Returns the
        stdout bytes read but not framed yet and the CLI's requests still unanswered (no answer is written).
        """
        waiting = [future for _, future in self._pending.values()]
        if waiting:
            await asyncio.wait(waiting, timeout=timeout)
        if self._pending:
            raise BridgeError(f"{self.label}: Claude has not answered {len(self._pending)} control request(s)")
        if self.exited.is_set() or any(task.done() for task in self._readers):
            raise BridgeError(f"{self.label}: the Claude process is ending")
        async with self._write_lock:
            # Under the lock no answer is half written: each open request was answered in full or not at all.
            tasks = [*self._readers, *self._serving.values()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            requests = tuple(self._open_requests.values())
            if self.proc.stdin is not None:
                # What is still in the transport's buffer would die with this image: flush it to the pipe.
                self.proc.stdin.transport.set_write_buffer_limits(high=0)
                await self.proc.stdin.drain()
        self._readers = []
        pending = bytes(self._stdout_buffer)
        self._stdout_buffer.clear()
        return pending, requests

    async def close(self) -> None:
        """After the process ended: let the readers finish briefly, then cancel and await every task we own."""
        for task in self._readers:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(task), 2.0)
        tasks = [*self._readers, *self._serving.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._serving.clear()

    @property
    def answering(self) -> bool:
        """The CLI waits for our answer to one of its requests (a person deciding a prompt): not a hang."""
        return bool(self._serving)

    # -- the CLI's requests to us --

    def _serve(self, request: ControlRequest) -> None:
        task = asyncio.create_task(self._answer(request), name=f"{self.label}-control-{request.subtype}")
        self._serving[request.request_id] = task
        self._open_requests[request.request_id] = request
        task.add_done_callback(lambda _: self._serving.pop(request.request_id, None))

    async def _answer(self, request: ControlRequest) -> None:
        handler = self._on_control_request
        try:
            if handler is None:
                raise BridgeError(f"the bridge does not handle {request.subtype or 'this request'}")
            reply = messages.control_success(request.request_id, await handler(request))
        except asyncio.CancelledError:
            raise  # control_cancel_request: the CLI no longer waits for an answer
        except Exception as exc:  # any failure must still be answered, or the CLI waits forever
            if not isinstance(exc, BridgeError):
                logger.warning("%s: handler for %s failed", self.label, request.subtype, exc_info=True)
            reply = messages.control_error(request.request_id, str(exc) or type(exc).__name__)
        with contextlib.suppress(BridgeError):
            await self.write(reply)
        self._open_requests.pop(request.request_id, None)

    # -- reading --

    async def _read_stdout(self) -> None:
        stream = self.proc.stdout
        assert stream is not None
        buffer = self._stdout_buffer
        scan_from = 0
        discarding = False
        while chunk := await stream.read(READ_CHUNK):
            buffer += chunk
            while True:
                newline = buffer.find(b"\n", scan_from)
                if newline < 0:
                    scan_from = len(buffer)
                    if len(buffer) > MAX_LINE_BYTES:
                        logger.error("%s: stdout line over %d bytes dropped", self.label, MAX_LINE_BYTES)
                        buffer.clear()
                        scan_from = 0
                        discarding = True
                    break
                line = bytes(buffer[:newline])
                del buffer[: newline + 1]
                scan_from = 0
                if discarding:
                    discarding = False
                    continue
                self._handle_line(line)
        if buffer and not discarding:
            self._handle_line(bytes(buffer))
        self.returncode = await self.proc.wait()
        SPAWNED.discard(self.proc.pid)
        if len(self._readers) > 1:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self._readers[1]), 2.0)
        self.exited.set()
        for subtype, future in self._pending.values():
            if not future.done():
                future.set_exception(
                    ClaudeNoAnswer(subtype, f"Claude exited before answering {subtype} (exit code {self.returncode})")
                )
        for task in self._serving.values():
            task.cancel()
        self._on_exit(self)

    async def _read_stderr(self) -> None:
        stream = self.proc.stderr
        assert stream is not None
        while chunk := await stream.read(64 << 10):
            self.stderr += chunk
            if len(self.stderr) > STDERR_KEEP:
                del self.stderr[: len(self.stderr) - STDERR_KEEP]

    def _handle_line(self, line: bytes) -> None:
        if not line.strip():
            return
        try:
            raw = json.loads(line)
        except ValueError:
            logger.warning("%s: skipping non-JSON stdout line: %.200r", self.label, line)
            return
        if not isinstance(raw, dict):
            return
        try:
            events = parse_event(raw)
        except (TypeError, ValueError, AttributeError):
            # A shape we did not foresee must not wedge the session: skip the line, keep reading.
            logger.warning("%s: skipping unparsable event: %.200r", self.label, line, exc_info=True)
            return
        for event in events:
            if isinstance(event, ControlResponse):
                _, future = self._pending.get(event.request_id, ("", None))
                if future is not None and not future.done():
                    future.set_result(event)
            elif isinstance(event, ControlRequest):
                self._serve(event)
            elif isinstance(event, ControlCancel):
                self._open_requests.pop(event.request_id, None)
                task = self._serving.get(event.request_id)
                if task is not None:
                    task.cancel()
            else:
                self._on_event(self, event)
