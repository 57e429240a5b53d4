"""One persistent Claude Code CLI process speaking stream-json: argv, env, NDJSON framing, control requests.

With claude_events.py (the output schema) it is the only code that knows the CLI. It knows nothing of sessions'
names on disk, personas or Telegram: callers submit messages and read typed events back, one turn at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import psutil

from claude_bridge.errors import BridgeError, ClaudeNotFound, ClaudeStartError
from claude_bridge.protocol.events import (
    CANCELLED,
    EXITED,
    PERMISSION_MODES,
    START_FAILED,
    WATCHDOG,
    AssistantText,
    ControlResponse,
    Event,
    ProcessStatus,
    SessionStarted,
    TextDelta,
    ToolResult,
    ToolUse,
    TurnResult,
    parse_event,
)
from claude_bridge.settings import usual_bin_dirs

logger = logging.getLogger(__name__)

# --include-partial-messages: without it text arrives only when a whole block is done, so nothing streams.
BASE_ARGS = (
    "-p",
    "--input-format",
    "stream-json",
    "--output-format",
    "stream-json",
    "--verbose",
    "--include-partial-messages",
)
# asyncio's 64 KiB readline limit corrupts the stream on ordinary turns (a Read of a 200 KB file is a
# 422 KB line), so stdout is read in chunks and framed here; a line may be far larger than this chunk.
READ_CHUNK = 1 << 20
MAX_LINE_BYTES = 512 << 20
STDERR_KEEP = 256 << 10
MARKER_ENV = "CLAUDE_BRIDGE_PROCESS"


# ---- options, turns, timings -----------------------------------------------------------------------


@dataclass(frozen=True)
class ProcessOptions:
    """How to launch one session's CLI."""

    claude_bin: Path
    cwd: Path
    env: Mapping[str, str]
    model: str | None = None
    append_system_prompt: str | None = None
    max_turns: int | None = None
    permission_mode: str | None = None
    continue_conversation: bool = False
    watchdog_seconds: float = 600.0
    restart_delays: tuple[float, ...] = (1.0, 2.0, 4.0)
    start_timeout: float = 60.0
    stop_timeout: float = 5.0
    label: str = "claude"
    pid_file: Path | None = None


def build_argv(options: ProcessOptions, *, model: str | None, continue_conversation: bool) -> list[str]:
    """The CLI's argv: values in `--flag=value` form so a value starting with '-' cannot become a flag."""
    argv = [str(options.claude_bin), *BASE_ARGS]
    if model:
        argv.append(f"--model={model}")
    if options.append_system_prompt:
        argv.append(f"--append-system-prompt={options.append_system_prompt}")
    if options.max_turns:
        argv.append(f"--max-turns={int(options.max_turns)}")
    if options.permission_mode:
        if options.permission_mode not in PERMISSION_MODES:
            raise BridgeError(f"unknown permission mode {options.permission_mode!r}")
        argv.append(f"--permission-mode={options.permission_mode}")
    if continue_conversation:
        argv.append("--continue")
    return argv


def build_env(base: Mapping[str, str], claude_bin: Path, marker: str) -> dict[str, str]:
    """The inherited environment minus CLAUDECODE, with the usual install directories on PATH."""
    env = {k: v for k, v in base.items() if k != "CLAUDECODE"}
    home = Path(env.get("HOME") or Path.home())
    extra = [str(claude_bin.parent), *(str(d) for d in usual_bin_dirs(home))]
    path = [p for p in env.get("PATH", os.defpath).split(os.pathsep) if p]
    env["PATH"] = os.pathsep.join(path + [p for p in extra if p not in path])
    # Offline-friendly and faster start (measured 0.62 s vs 0.84 s); the user's own value wins.
    env.setdefault("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
    # Tool processes inherit this, so after a crash we can find the ones the CLI left behind.
    env[MARKER_ENV] = marker
    return env


def explain_start_failure(stderr: str, exit_code: int | None) -> str:
    """A clear sentence for a CLI that exited before taking a message."""
    tail = stderr.strip()[-1500:]
    if "cannot be used with root/sudo" in stderr:
        return (
            "Claude Code refuses to skip permission prompts when run as root. Run the bot as a normal user, "
            "or set IS_SANDBOX=1 if this machine is a disposable sandbox. CLI said: " + tail
        )
    if "unknown option" in stderr or "error: " in stderr.lower():
        return f"Claude Code rejected its command line (is the CLI too old or too new?): {tail}"
    return f"Claude Code exited at start (exit code {exit_code}): {tail or 'no error output'}"


@dataclass
class TurnTimings:
    """Seconds from spawn to init, and from send to first text and to the result."""

    spawn_to_init: float | None = None
    send_to_first_text: float | None = None
    send_to_result: float | None = None


class Turn:
    """One submitted message: its events arrive in order, ending with exactly one TurnResult."""

    def __init__(self, content: str | list[dict[str, Any]]) -> None:
        self.content = content
        self.written = asyncio.Event()
        self.done = asyncio.Event()
        self.result: TurnResult | None = None
        self.timings = TurnTimings()
        self.interrupted = False
        self.watchdog_fired = False
        self._events: asyncio.Queue[Event] = asyncio.Queue()
        self._sent_at = 0.0
        self._open_tools: set[str] = set()

    def push(self, event: Event) -> None:
        """Feed the turn one event (the process does this; test fakes may too)."""
        if self.done.is_set():
            return
        now = time.monotonic()
        if isinstance(event, (AssistantText, TextDelta)) and self.timings.send_to_first_text is None and self._sent_at:
            self.timings.send_to_first_text = now - self._sent_at
        elif isinstance(event, ToolUse):
            self._open_tools.add(event.id)
        elif isinstance(event, ToolResult):
            self._open_tools.discard(event.tool_use_id)
        elif isinstance(event, TurnResult):
            if self._sent_at:
                self.timings.send_to_result = now - self._sent_at
            self.result = event
            self.done.set()
        self._events.put_nowait(event)

    async def events(self) -> AsyncIterator[Event]:
        """Yield this turn's events up to and including its TurnResult."""
        while True:
            event = await self._events.get()
            yield event
            if isinstance(event, TurnResult):
                return

    async def wait(self) -> TurnResult:
        """Wait for the turn's result without reading its events."""
        await self.done.wait()
        assert self.result is not None
        return self.result


@dataclass
class _Live:
    """One running OS process and the tasks reading it."""

    proc: asyncio.subprocess.Process
    marker: str
    spawned_at: float
    stderr: bytearray = field(default_factory=bytearray)
    ready: bool = False
    inited: bool = False
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    exited: asyncio.Event = field(default_factory=asyncio.Event)
    returncode: int | None = None
    exit_reason: str = ""

    @property
    def stderr_tail(self) -> str:
        return self.stderr.decode("utf-8", "replace")


# ---- the process ----------------------------------------------------------------------------------


class ClaudeSubprocess:
    """A long-lived CLI process for one session directory, fed one turn at a time, restarted on crashes."""

    def __init__(self, options: ProcessOptions, on_status: Callable[[ProcessStatus], None] | None = None) -> None:
        self.options = options
        self.model = options.model
        self.session_id = ""
        self.last_timings = TurnTimings()
        self._on_status = on_status
        self._live: _Live | None = None
        self._pending: deque[Turn] = deque()
        self._current: Turn | None = None
        self._wakeup = asyncio.Event()
        self._write_lock = asyncio.Lock()
        self._control: dict[str, asyncio.Future[ControlResponse]] = {}
        self._request_seq = 0
        self._has_conversation = options.continue_conversation
        self._restarts = 0
        self._recovering = False
        self._closing = False
        self._failed = False
        self._last_activity = time.monotonic()
        self._cumulative_cost = 0.0
        self._tasks: list[asyncio.Task[None]] = []

    # -- public face --

    @property
    def pid(self) -> int | None:
        return self._live.proc.pid if self._live else None

    @property
    def alive(self) -> bool:
        return self._live is not None and self._live.returncode is None and self._live.ready

    @property
    def busy(self) -> bool:
        return self._current is not None

    @property
    def queue_length(self) -> int:
        """Messages waiting behind the running turn."""
        return len(self._pending)

    @property
    def failed(self) -> bool:
        """Recovery gave up; the next submit tries a fresh start."""
        return self._failed

    @property
    def stderr_tail(self) -> str:
        return self._live.stderr_tail if self._live else ""

    async def start(self) -> None:
        """Spawn the CLI and wait until it answers; raises ClaudeNotFound / ClaudeStartError."""
        await self._spawn(continue_conversation=self._has_conversation)
        self._tasks.append(asyncio.create_task(self._pump(), name=f"{self.options.label}-pump"))
        self._tasks.append(asyncio.create_task(self._watchdog(), name=f"{self.options.label}-watchdog"))

    def submit(self, content: str | list[dict[str, Any]]) -> Turn:
        """Queue a message; it is written to the CLI only after the previous turn's result."""
        if self._closing:
            raise BridgeError("this Claude process is stopping")
        turn = Turn(content)
        self._pending.append(turn)
        self._wakeup.set()
        return turn

    async def interrupt(self) -> bool:
        """Stop the running turn (the process lives on, queued messages continue); False if idle."""
        turn = self._current
        if turn is None or turn.done.is_set():
            return False
        turn.interrupted = True
        try:
            await self._control_request({"subtype": "interrupt"}, timeout=5.0)
        except (BridgeError, TimeoutError) as exc:
            logger.warning("%s: interrupt was not acknowledged: %s", self.options.label, exc)
        return True

    async def set_model(self, model: str | None) -> None:
        """Switch model: at once on a live process (`set_model`), and for every later spawn."""
        self.model = model
        if self.alive:
            await self._control_request({"subtype": "set_model", "model": model or "default"}, timeout=10.0)

    async def stop(self) -> None:
        """Interrupt if busy, close stdin, wait, then SIGTERM/SIGKILL the group; no process is left behind."""
        if self._closing and not self._tasks and self._live is None:
            return
        self._closing = True
        turn = self._current  # the pump may clear it while we wait below
        if turn is not None and self.alive:
            await self.interrupt()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(3.0, self.options.stop_timeout)):
                    await turn.done.wait()
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        # gather, not `await task` under suppress(CancelledError): a cancel of stop() itself must propagate.
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._live is not None:
            await self._shutdown_process(self._live, graceful=True)
        self._current = None
        self._fail_waiting(CANCELLED, "The session was stopped before this message was answered.")

    # -- spawning and reading --

    async def _spawn(self, *, continue_conversation: bool) -> None:
        marker = uuid.uuid4().hex
        argv = build_argv(self.options, model=self.model, continue_conversation=continue_conversation)
        if not self.options.cwd.is_dir():
            raise ClaudeStartError(f"The session directory {self.options.cwd} does not exist.", None, "")
        env = build_env(self.options.env, self.options.claude_bin, marker)
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=self.options.cwd,
                env=env,
                start_new_session=True,
            )
        except FileNotFoundError as exc:
            raise ClaudeNotFound([str(self.options.claude_bin)]) from exc
        except PermissionError as exc:
            raise ClaudeStartError(f"{self.options.claude_bin} is not executable: {exc}", None, "") from exc
        live = _Live(proc=proc, marker=marker, spawned_at=time.monotonic())
        self._live = live
        if self.options.pid_file is not None:
            # Lets the next start find this CLI if the bot itself is killed (see reap_leftover).
            self.options.pid_file.write_text(f"{proc.pid}\n")
        logger.info(
            "%s: spawned Claude CLI pid %s%s%s",
            self.options.label,
            proc.pid,
            " --continue" if continue_conversation else "",
            f" model={self.model}" if self.model else "",
        )
        live.tasks.append(asyncio.create_task(self._read_stdout(live), name=f"{self.options.label}-stdout"))
        live.tasks.append(asyncio.create_task(self._read_stderr(live), name=f"{self.options.label}-stderr"))
        # The CLI prints nothing until its first input; `initialize` proves it started (and warms it up),
        # while flag errors and the root refusal make it exit at once with the reason on stderr.
        answered = asyncio.create_task(self._control_request({"subtype": "initialize", "hooks": None}, live))
        exited = asyncio.create_task(live.exited.wait())
        done, _ = await asyncio.wait(
            {answered, exited}, timeout=self.options.start_timeout, return_when=asyncio.FIRST_COMPLETED
        )
        exited.cancel()
        if answered in done and answered.exception() is None:
            live.ready = True
            return
        answered.cancel()
        with contextlib.suppress(asyncio.CancelledError, BridgeError, TimeoutError):
            await answered
        if not live.exited.is_set():
            await self._shutdown_process(live, graceful=False)
            raise ClaudeStartError(
                f"Claude Code did not answer within {self.options.start_timeout:.0f} s of starting",
                None,
                live.stderr_tail,
            )
        await asyncio.gather(*live.tasks, return_exceptions=True)
        self._live = None
        message = explain_start_failure(live.stderr_tail, live.returncode)
        logger.error("%s: CLI exited at start (code %s): %s", self.options.label, live.returncode, message)
        raise ClaudeStartError(message, live.returncode, live.stderr_tail)

    async def _read_stdout(self, live: _Live) -> None:
        stream = live.proc.stdout
        assert stream is not None
        buffer = bytearray()
        scan_from = 0
        discarding = False
        while True:
            chunk = await stream.read(READ_CHUNK)
            if not chunk:
                break
            buffer += chunk
            while True:
                newline = buffer.find(b"\n", scan_from)
                if newline < 0:
                    scan_from = len(buffer)
                    if len(buffer) > MAX_LINE_BYTES:
                        logger.error("%s: stdout line over %d bytes dropped", self.options.label, MAX_LINE_BYTES)
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
                self._handle_line(live, line)
        if buffer and not discarding:
            self._handle_line(live, bytes(buffer))
        live.returncode = await live.proc.wait()
        stderr_task = live.tasks[1] if len(live.tasks) > 1 else None
        if stderr_task is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(stderr_task), 2.0)
        live.exited.set()
        for future in self._control.values():
            if not future.done():
                future.set_exception(BridgeError("the Claude process exited"))
        if live.ready and live is self._live:
            self._on_exit(live)

    async def _read_stderr(self, live: _Live) -> None:
        stream = live.proc.stderr
        assert stream is not None
        while chunk := await stream.read(64 << 10):
            live.stderr += chunk
            if len(live.stderr) > STDERR_KEEP:
                del live.stderr[: len(live.stderr) - STDERR_KEEP]

    def _handle_line(self, live: _Live, line: bytes) -> None:
        if not line.strip():
            return
        try:
            raw = json.loads(line)
        except ValueError:
            logger.warning("%s: skipping non-JSON stdout line: %.200r", self.options.label, line)
            return
        if not isinstance(raw, dict):
            return
        self._last_activity = time.monotonic()
        try:
            events = parse_event(raw)
        except (TypeError, ValueError, AttributeError):
            # A shape we did not foresee must not wedge the session: skip the line, keep reading.
            logger.warning("%s: skipping unparsable event: %.200r", self.options.label, line, exc_info=True)
            return
        for event in events:
            self._dispatch(live, event)

    def _dispatch(self, live: _Live, event: Event) -> None:
        if isinstance(event, ControlResponse):
            future = self._control.pop(event.request_id, None)
            if future is not None and not future.done():
                future.set_result(event)
            return
        turn = self._current
        if isinstance(event, SessionStarted):
            if event.session_id:
                self.session_id = event.session_id
            if not live.inited:
                live.inited = True
                if turn is not None:
                    turn.timings.spawn_to_init = time.monotonic() - live.spawned_at
        if isinstance(event, TurnResult):
            if event.session_id:
                self.session_id = event.session_id
            self._has_conversation = True
            cost = max(0.0, event.total_cost_usd - self._cumulative_cost)
            self._cumulative_cost = event.total_cost_usd
            event = replace(event, cost_usd=cost)
            if turn is not None and turn.watchdog_fired:
                event = replace(event, subtype=WATCHDOG, text=self._watchdog_text())
            if not event.is_error:
                self._restarts = 0
        if turn is None:
            logger.debug("%s: event outside a turn: %s", self.options.label, type(event).__name__)
            return
        turn.push(event)

    # -- writing --

    async def _write(self, obj: Mapping[str, Any], live: _Live | None = None) -> None:
        # One json.dumps line per message: a raw newline or any non-JSON line kills the CLI (rc 1).
        live = live or self._live
        if live is None or live.proc.stdin is None:
            raise BridgeError("the Claude process is not running")
        data = (json.dumps(obj) + "\n").encode("utf-8")
        async with self._write_lock:
            live.proc.stdin.write(data)
            await live.proc.stdin.drain()

    async def _control_request(
        self, request: Mapping[str, Any], live: _Live | None = None, timeout: float | None = None
    ) -> ControlResponse:
        self._request_seq += 1
        request_id = f"req_{self._request_seq}_{uuid.uuid4().hex[:8]}"
        future: asyncio.Future[ControlResponse] = asyncio.get_running_loop().create_future()
        self._control[request_id] = future
        try:
            await self._write({"type": "control_request", "request_id": request_id, "request": dict(request)}, live)
            async with asyncio.timeout(timeout):
                response = await future
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise BridgeError("the Claude process is not running") from exc
        finally:
            self._control.pop(request_id, None)
        if not response.ok:
            raise BridgeError(f"Claude refused {request.get('subtype')}: {response.error}")
        return response

    # -- the turn pump --

    async def _pump(self) -> None:
        while not self._closing:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending and not self._closing:
                if not self.alive:
                    if self._recovering:
                        break
                    try:
                        self._failed = False
                        await self._spawn(continue_conversation=self._has_conversation)
                    except BridgeError as exc:
                        self._fail_waiting(START_FAILED, str(exc))
                        break
                turn = self._pending.popleft()
                self._current = turn
                turn._sent_at = time.monotonic()
                self._last_activity = turn._sent_at
                message = {
                    "type": "user",
                    "message": {"role": "user", "content": turn.content},
                    "parent_tool_use_id": None,
                    "session_id": self.session_id or "default",
                }
                try:
                    await self._write(message)
                    turn.written.set()
                except (BridgeError, BrokenPipeError, ConnectionResetError):
                    logger.warning("%s: could not write the message; the process is gone", self.options.label)
                    turn.written.set()
                await turn.done.wait()
                self.last_timings = turn.timings
                self._current = None

    def _fail_waiting(self, subtype: str, text: str) -> None:
        while self._pending:
            self._pending.popleft().push(TurnResult(subtype=subtype, is_error=True, text=text))

    # -- crashes --

    def _on_exit(self, live: _Live) -> None:
        code = live.returncode
        self._live = None
        tail = live.stderr_tail.strip()[-800:]
        turn = self._current
        if self._closing:
            reason = "The session was stopped while Claude was working"
        else:
            reason = live.exit_reason or f"Claude exited unexpectedly (exit code {code})"
            logger.error("%s: CLI pid %s exited with code %s", self.options.label, live.proc.pid, code)
        if turn is not None and not turn.done.is_set():
            text = f"{reason}. Your message was cut off and was not re-sent (its tools may have run)."
            if tail and not self._closing:
                text += f"\n{tail}"
            turn.push(TurnResult(subtype=EXITED, is_error=True, text=text))
        if self._closing:
            return
        self._emit(ProcessStatus("crashed", reason, exit_code=code))
        self._recovering = True
        self._tasks.append(
            asyncio.create_task(self._recover(live.marker, code, tail), name=f"{self.options.label}-recover")
        )

    async def _recover(self, marker: str, code: int | None, tail: str) -> None:
        try:
            await self._reap_orphans(marker)
            delays = self.options.restart_delays
            while self._restarts < len(delays):
                delay = delays[self._restarts]
                self._restarts += 1
                self._emit(
                    ProcessStatus(
                        "restarting",
                        f"Restarting Claude in {delay:g} s (attempt {self._restarts} of {len(delays)})…",
                        exit_code=code,
                        attempt=self._restarts,
                    )
                )
                await asyncio.sleep(delay)
                try:
                    await self._spawn(continue_conversation=True)
                except BridgeError as exc:
                    tail = str(exc)
                    continue
                self._emit(
                    ProcessStatus("recovered", "Claude restarted; the conversation continues.", attempt=self._restarts)
                )
                return
            self._failed = True
            message = (
                f"Claude could not be restarted after {len(delays)} attempts (last exit code {code}). "
                f"Send a message to try again.{(' ' + tail) if tail else ''}"
            )
            logger.error("%s: giving up restarting the CLI", self.options.label)
            self._emit(ProcessStatus("gave_up", message, exit_code=code, attempt=self._restarts))
            self._fail_waiting(EXITED, message)
            self._restarts = 0
        finally:
            self._recovering = False
            self._wakeup.set()

    def _emit(self, status: ProcessStatus) -> None:
        if self._pending:
            self._pending[0].push(status)
        if self._on_status is not None:
            self._on_status(status)

    # -- watchdog --

    def _watchdog_text(self) -> str:
        limit = self.options.watchdog_seconds
        silence = f"{limit / 60:g} min" if limit >= 60 else f"{limit:g} s"
        return f"Claude sent nothing for {silence}, so the turn was stopped by the hang watchdog."

    async def _watchdog(self) -> None:
        limit = self.options.watchdog_seconds
        tick = max(0.05, min(5.0, limit / 4))
        while not self._closing:
            await asyncio.sleep(tick)
            turn, live = self._current, self._live
            if turn is None or live is None or turn.done.is_set() or not turn.written.is_set():
                continue
            if turn._open_tools and _has_descendants(live.proc.pid):
                # A tool is still running (a long build, a test suite): that is work, not a hang.
                self._last_activity = time.monotonic()
                continue
            if time.monotonic() - self._last_activity < limit:
                continue
            logger.warning("%s: no output for %g s; interrupting the turn", self.options.label, limit)
            turn.watchdog_fired = True
            with contextlib.suppress(BridgeError, TimeoutError):
                await self._control_request({"subtype": "interrupt"}, timeout=min(10.0, limit))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(10.0, limit)):
                    await turn.done.wait()
            if not turn.done.is_set() and live is self._live:
                logger.error("%s: interrupt ignored; killing the CLI", self.options.label)
                live.exit_reason = self._watchdog_text() + " The interrupt was ignored, so Claude was restarted"
                await _kill_tree(live.proc.pid, signal.SIGKILL)

    # -- stopping --

    async def _shutdown_process(self, live: _Live, *, graceful: bool) -> None:
        proc = live.proc
        if graceful and proc.returncode is None and proc.stdin is not None:
            # Closing stdin lets the CLI end on its own and clean up its tool shells (SIGTERM would orphan them).
            with contextlib.suppress(OSError):
                proc.stdin.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(live.exited.wait(), self.options.stop_timeout)
        if proc.returncode is None:
            # Tool shells run in their own process groups: signal them first, while they are still our
            # descendants, then the CLI's group; escalate to SIGKILL.
            await _kill_tree(proc.pid, signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), self.options.stop_timeout)
        if proc.returncode is None:
            await _kill_tree(proc.pid, signal.SIGKILL)
            await proc.wait()
        for task in live.tasks:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(task), 2.0)
            task.cancel()
        await self._reap_orphans(live.marker)
        if self._live is live:
            self._live = None
        if self.options.pid_file is not None:
            self.options.pid_file.unlink(missing_ok=True)
        logger.info("%s: CLI pid %s stopped (exit code %s)", self.options.label, proc.pid, proc.returncode)

    async def _reap_orphans(self, marker: str) -> None:
        await asyncio.to_thread(kill_marked_processes, marker)


def _has_descendants(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).children(recursive=True))
    except psutil.Error:
        return False


async def _kill_tree(pid: int, sig: signal.Signals) -> None:
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
