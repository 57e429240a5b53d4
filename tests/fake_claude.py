#!/usr/bin/env python3
"""A scripted stand-in for the Claude Code CLI in `-p` stream-json mode (protocol: claude-cli-protocol.md).

It speaks the real CLI's NDJSON both ways, but its turns come from a JSON script (FAKE_CLAUDE_SCRIPT), so
tests can force crashes, hangs, huge lines and slow tools. Stdlib only; it knows nothing of the bot.
"""

from __future__ import annotations

import contextlib
import faulthandler
import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
import uuid
from pathlib import Path
from typing import Any, NoReturn

VERSION = "2.1.197"
DEFAULT_MODEL = "claude-opus-4-8[1m]"
# §8: alias resolution of --model / set_model; anything else passes through unvalidated.
MODEL_ALIASES = {
    "default": DEFAULT_MODEL,
    "opus[1m]": "claude-opus-4-8[1m]",
    "opus": "claude-opus-4-8",
    "sonnet": "claude-sonnet-5",
    "sonnet[1m]": "claude-sonnet-5[1m]",
    "haiku": "claude-haiku-4-5-20251001",
    "fable": "claude-fable-5",
}
SESSION_FILE = ".fake-claude-session"
VALUE_FLAGS = {
    "--model",
    "--append-system-prompt",
    "--system-prompt",
    "--max-turns",
    "--permission-mode",
    "--resume",
    "-r",
    "--session-id",
    "--input-format",
    "--output-format",
    "--permission-prompt-tool",
    "--allowedTools",
    "--disallowedTools",
    "--max-budget-usd",
}
LOGGED_ENV_PREFIXES = ("CLAUDE", "ANTHROPIC", "IS_SANDBOX", "DISABLE_TELEMETRY")
LOGGED_ENV_NAMES = ("PATH", "HOME", "PWD")
TOOLS = ["Task", "Bash", "Glob", "Grep", "Read", "Edit", "Write", "WebFetch", "WebSearch", "TodoWrite"]
SLASH_COMMANDS = ["clear", "compact", "context", "cost", "init", "review"]
TOOL_REJECTED = (
    "The user doesn't want to proceed with this tool use. The tool use was rejected (eg. if it was a file edit, "
    "the new_string was NOT written to the file). STOP what you are doing and wait for the user to tell you how "
    "to proceed."
)
HUGE = "__FAKE_CLAUDE_HUGE_TEXT__"
CHUNK = 1 << 20


class Interrupted(Exception):
    """The running turn was interrupted (control request or SIGINT)."""


class TurnOver(Exception):
    """A step ended the turn with its own result line (error_result, max_turns)."""


def parse_args(argv: list[str]) -> tuple[dict[str, str], set[str]]:
    """Split argv into `--flag value` / `--flag=value` options and bare switches."""
    values: dict[str, str] = {}
    switches: set[str] = set()
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("--") and "=" in arg:
            name, value = arg.split("=", 1)
            values[name] = value
        elif arg in VALUE_FLAGS and i + 1 < len(argv):
            values[arg] = argv[i + 1]
            i += 1
        else:
            switches.add(arg)
        i += 1
    return values, switches


def resolve_model(name: str | None) -> str:
    """The model name init reports for a --model / set_model value."""
    if not name:
        return DEFAULT_MODEL
    return MODEL_ALIASES.get(name, name)


def api_model(model: str) -> str:
    return model.removesuffix("[1m]")


def new_uuid() -> str:
    return str(uuid.uuid4())


def user_text(content: Any) -> str:
    """A stdin user message's text: a string, or the text blocks of a list joined by newlines."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(b.get("text", "")) for b in content if isinstance(b, dict) and b.get("type") == "text")
    return ""


class ScriptStore:
    """The script file plus a cursor beside it, shared (under flock) by every process of one test."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.script: dict[str, Any] = self._load()

    def _load(self) -> dict[str, Any]:
        if self.path is None:
            return {}
        loaded = json.loads(self.path.read_text())
        if not isinstance(loaded, dict):
            raise SystemExit(f"fake claude: script {self.path} must be a JSON object")
        return loaded

    def _sibling(self, suffix: str) -> Path:
        assert self.path is not None
        return self.path.with_name(self.path.name + suffix)

    def log_path(self, key: str, suffix: str) -> Path | None:
        if self.script.get(key):
            return Path(self.script[key])
        return self._sibling(suffix) if self.path is not None else None

    @contextlib.contextmanager
    def _state(self) -> Any:
        assert self.path is not None
        state_path = self._sibling(".state")
        with open(self._sibling(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            state = json.loads(state_path.read_text()) if state_path.exists() else {"starts": 0, "next_turn": 0}
            yield state
            tmp = state_path.with_name(state_path.name + f".{os.getpid()}")
            tmp.write_text(json.dumps(state))
            tmp.replace(state_path)

    def count_start(self) -> int:
        """This process's 1-based start number among all processes of the script."""
        if self.path is None:
            return 1
        with self._state() as state:
            state["starts"] += 1
            return int(state["starts"])

    def next_turn(self) -> list[dict[str, Any]] | None:
        """The next scripted turn (re-reading the file, so tests may add turns to a live process), or None."""
        if self.path is None:
            return None
        with self._state() as state:
            turns = self._load().get("turns", [])
            index = int(state["next_turn"])
            if index >= len(turns):
                return None
            state["next_turn"] = index + 1
            return list(turns[index])


def append_jsonl(path: Path | None, record: dict[str, Any]) -> None:
    if path is None:
        return
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


class FakeClaude:
    """One long-lived CLI process: the main thread reads stdin, a worker thread runs turns."""

    def __init__(self, argv: list[str]) -> None:
        self.values, self.switches = parse_args(argv)
        script_env = os.environ.get("FAKE_CLAUDE_SCRIPT")
        self.store = ScriptStore(Path(script_env).resolve() if script_env else None)
        self.received_log = self.store.log_path("received_log", ".received.jsonl")
        self.cwd = Path.cwd()
        self.model = resolve_model(self.values.get("--model"))
        self.permission_mode = self.values.get("--permission-mode", "default")
        if "--dangerously-skip-permissions" in self.switches:
            self.permission_mode = "bypassPermissions"
        self.prompt_tool = self.values.get("--permission-prompt-tool")
        self.max_turns = int(self.values.get("--max-turns", "1"))
        self.merge_queued = self.store.script.get("queued", "merge") == "merge"
        self.emit_states = os.environ.get("CLAUDE_CODE_EMIT_SESSION_STATE_EVENTS") == "1"
        self.session_id = ""
        self.out_lock = threading.Lock()
        self.cond = threading.Condition()
        # Guarded by cond:
        self.busy = False  # a turn is running or was handed to the worker
        self.next_texts: list[str] | None = None
        self.turn_model = self.model  # the model as of hand-over, so set_model sent later waits for the next turn
        self.queued: list[str] = []
        self.interrupted = False
        self.eof = False
        self.exit_after_turn = False
        self.permission_answers: dict[str, dict[str, Any]] = {}
        self.pending_permission: str | None = None
        self.claude_turns: list[str] = []  # §16.1: task notifications waiting to start Claude's own turn
        self.turn_origin: str | None = None
        # Process-cumulative like the real CLI's total_cost_usd / duration_api_ms / modelUsage (§2).
        self.total_cost = 0.0
        self.api_ms = 0
        self.model_usage: dict[str, dict[str, Any]] = {}
        self.last_result_error = False
        self.children: list[subprocess.Popen[bytes]] = []

    # -- output --

    def emit(self, obj: dict[str, Any], huge: tuple[int, str] | None = None) -> None:
        """Write one NDJSON line; with `huge`, the HUGE placeholder string is streamed as n copies of a char."""
        line = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
        with self.out_lock:
            out = sys.stdout.buffer
            try:
                if huge is None:
                    out.write(line.encode() + b"\n")
                else:
                    head, tail = line.split(HUGE, 1)
                    out.write(head.encode())
                    size, char = huge
                    block = char.encode() * CHUNK
                    for _ in range(size // CHUNK):
                        out.write(block)
                    out.write(char.encode() * (size % CHUNK))
                    out.write(tail.encode() + b"\n")
                out.flush()
            except BrokenPipeError:
                os._exit(1)

    def emit_stderr(self, data: bytes) -> None:
        with contextlib.suppress(BrokenPipeError):
            for start in range(0, len(data), 1 << 16):
                sys.stderr.buffer.write(data[start : start + (1 << 16)])
            sys.stderr.buffer.flush()

    def system(self, subtype: str, **fields: Any) -> None:
        self.emit({"type": "system", "subtype": subtype, **fields, "uuid": new_uuid(), "session_id": self.session_id})

    def assistant(self, blocks: list[dict[str, Any]], msg_id: str, **outer: Any) -> dict[str, Any]:
        return {
            "type": "assistant",
            "message": {
                "id": msg_id,
                "type": "message",
                "role": "assistant",
                "model": outer.pop("model", api_model(self.turn_model)),
                "content": blocks,
                "stop_reason": outer.pop("stop_reason", None),
                "stop_sequence": None,
                "usage": self.usage(1),
                "context_management": None,
            },
            "parent_tool_use_id": None,
            "session_id": self.session_id,
            "uuid": new_uuid(),
            "request_id": "req_fake_" + uuid.uuid4().hex[:8],
            **outer,
        }

    def user(self, content: list[dict[str, Any]], **outer: Any) -> None:
        self.emit(
            {
                "type": "user",
                "message": {"role": "user", "content": content},
                "parent_tool_use_id": None,
                "session_id": self.session_id,
                "uuid": new_uuid(),
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
                **outer,
            }
        )

    def tool_result(self, tool_id: str, text: str, is_error: bool, interrupted: bool = False) -> None:
        self.user(
            [{"tool_use_id": tool_id, "type": "tool_result", "content": text, "is_error": is_error}],
            tool_use_result={
                "stdout": "" if is_error else text,
                "stderr": "",
                "interrupted": interrupted,
                "isImage": False,
                "noOutputExpected": False,
            }
            if not is_error
            else f"Error: {text}",
        )

    def control_response(self, request_id: str | None, subtype: str = "success", **fields: Any) -> None:
        response: dict[str, Any] = {"subtype": subtype}
        if request_id is not None:
            response["request_id"] = request_id
        response.update(fields)
        self.emit({"type": "control_response", "response": response})

    @staticmethod
    def usage(calls: int) -> dict[str, Any]:
        return {
            "input_tokens": 100 * calls,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": 20 * calls,
            "server_tool_use": {"web_search_requests": 0, "web_fetch_requests": 0},
            "service_tier": "standard",
            "cache_creation": {"ephemeral_1h_input_tokens": 0, "ephemeral_5m_input_tokens": 0},
            "inference_geo": "",
            "iterations": [],
            "speed": "standard",
        }

    # -- process lifecycle --

    def exit(self, code: int, *, kill_children: bool = True) -> NoReturn:
        if kill_children:
            self.kill_children()
        # Not `with out_lock`: a SIGINT handler may run while this same thread holds it mid-write.
        locked = self.out_lock.acquire(timeout=1)
        with contextlib.suppress(BrokenPipeError, ValueError):
            sys.stdout.flush()
            sys.stderr.flush()
        if locked:
            self.out_lock.release()
        os._exit(code)

    def kill_children(self, only: list[subprocess.Popen[bytes]] | None = None) -> None:
        for child in list(only if only is not None else self.children):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.pid, signal.SIGKILL)
            child.wait()
            if child in self.children:
                self.children.remove(child)

    def log_invocation(self, argv: list[str], start: int) -> None:
        env = {k: v for k, v in os.environ.items() if k.startswith(LOGGED_ENV_PREFIXES) or k in LOGGED_ENV_NAMES}
        env.update({k: os.environ[k] for k in self.store.script.get("log_env", []) if k in os.environ})
        append_jsonl(
            self.store.log_path("invocation_log", ".invocations.jsonl"),
            {
                "start": start,
                "argv": argv,
                "cwd": str(self.cwd),
                "pid": os.getpid(),
                "ppid": os.getppid(),
                "pgid": os.getpgid(0),
                "sid": os.getsid(0),
                "claudecode": "CLAUDECODE" in os.environ,
                "env": env,
                "time": time.time(),
            },
        )

    def run_on_start(self, start: int) -> None:
        for action in self.store.script.get("on_start", []):
            if "times" in action and start > int(action["times"]):
                continue
            if action.get("ignore_sigterm"):
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
            if "sleep" in action:
                time.sleep(float(action["sleep"]))
            if "exit" in action:
                self.emit_stderr(str(action.get("stderr", "")).encode())
                self.exit(int(action["exit"]))

    def check_flags(self) -> None:
        """The flag errors the real CLI reports at once, rc 1, nothing on stdout (§1)."""
        out_format, in_format = self.values.get("--output-format"), self.values.get("--input-format")
        if out_format == "stream-json" and "--verbose" not in self.switches:
            self.emit_stderr(b"Error: When using --print, --output-format=stream-json requires --verbose\n")
            self.exit(1)
        if in_format == "stream-json" and out_format != "stream-json":
            self.emit_stderr(b"Error: --input-format=stream-json requires output-format=stream-json.\n")
            self.exit(1)

    # -- sessions (§9) --

    def session_path(self) -> Path:
        return self.cwd / SESSION_FILE

    def load_session(self) -> dict[str, Any] | None:
        with contextlib.suppress(OSError, ValueError):
            loaded = json.loads(self.session_path().read_text())
            return loaded if isinstance(loaded, dict) else None
        return None

    def open_session(self) -> None:
        stored = self.load_session()
        resume = self.values.get("--resume") or self.values.get("-r")
        if resume:
            if stored is None or stored.get("session_id") != resume:
                self.session_id = new_uuid()
                self.result(
                    "error_during_execution",
                    num_turns=0,
                    errors=[f"No conversation found with session ID: {resume}"],
                    terminal_reason=None,
                    text=None,
                )
                self.emit_stderr(f"No conversation found with session ID: {resume}".encode())
                self.exit(1)
            self.session_id = resume
        elif ("--continue" in self.switches or "-c" in self.switches) and stored:
            self.session_id = str(stored["session_id"])
        else:
            self.session_id = self.values.get("--session-id") or new_uuid()

    def record_prompt(self, text: str) -> None:
        """Append to the 'transcript' at turn start, like the real CLI (the prompt survives a SIGKILL)."""
        stored = self.load_session()
        if stored is None or stored.get("session_id") != self.session_id:
            stored = {"session_id": self.session_id, "turns": 0, "prompts": []}
        stored["turns"] = int(stored.get("turns", 0)) + 1
        stored.setdefault("prompts", []).append(text)
        self.session_path().write_text(json.dumps(stored))

    # -- stdin (main thread) --

    def read_stdin(self) -> None:
        for raw in iter(sys.stdin.buffer.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if not line.strip():
                continue
            try:
                msg = json.loads(line)
            except ValueError as exc:
                self.emit_stderr(
                    f"Error parsing streaming input line: {line}: SyntaxError: JSON Parse error: {exc}\n".encode()
                )
                self.exit(1)
            append_jsonl(self.received_log, {"pid": os.getpid(), "time": time.time(), "message": msg})
            if isinstance(msg, dict):
                self.handle_input(msg)
        with self.cond:
            self.eof = True
            self.cond.notify_all()

    def handle_input(self, msg: dict[str, Any]) -> None:
        kind = msg.get("type")
        if kind == "user":
            message = msg.get("message")
            if not isinstance(message, dict):
                self.emit_stderr(b"TypeError: undefined is not an object (evaluating 't.message.role')\n")
                self.exit(1)
            if message.get("role") != "user":
                self.emit_stderr(f"Error: Expected message role 'user', got '{message.get('role')}'\n".encode())
                self.exit(1)
            if "content" not in message:
                self.result("error_during_execution", num_turns=0, terminal_reason=None, text=None, errors=[])
                self.exit(1)
            self.enqueue(user_text(message["content"]))
        elif kind == "control_request":
            self.handle_control(msg.get("request_id"), msg.get("request") or {})
        elif kind == "control_response":
            response = msg.get("response") or {}
            with self.cond:
                request_id = response.get("request_id")
                if request_id is not None and request_id == self.pending_permission:
                    self.permission_answers[request_id] = response
                    self.cond.notify_all()

    def enqueue(self, text: str) -> None:
        with self.cond:
            if self.busy:
                self.queued.append(text)
            else:
                self.busy = True
                self.next_texts, self.turn_model = [text], self.model
                self.cond.notify_all()

    def handle_control(self, request_id: str | None, request: dict[str, Any]) -> None:
        subtype = request.get("subtype")
        if subtype in self.store.script.get("ignore_control", []):
            return  # a CLI that never answers this request (the bridge must time out, not hang)
        if subtype == "interrupt":
            with self.cond:
                if self.pending_permission is not None:
                    self.emit({"type": "control_cancel_request", "request_id": self.pending_permission})
                self.control_response(request_id)
                if self.busy:
                    self.interrupted = True
                    self.cond.notify_all()
        elif subtype == "set_model":
            self.model = resolve_model(request.get("model"))
            self.control_response(request_id)
        elif subtype == "set_permission_mode":
            self.permission_mode = str(request.get("mode"))
            self.control_response(request_id, response={"mode": self.permission_mode})
            self.system("status", status=None, permissionMode=self.permission_mode)
        elif subtype == "initialize":
            self.control_response(
                request_id,
                response={
                    "commands": [{"name": c, "description": "", "argumentHint": ""} for c in SLASH_COMMANDS],
                    "agents": [],
                    "output_style": "default",
                    "available_output_styles": ["default"],
                    "models": [{"value": k, "resolvedModel": v} for k, v in MODEL_ALIASES.items()],
                    "account": {
                        "tokenSource": "none",
                        "apiKeySource": "ANTHROPIC_API_KEY",
                        "apiProvider": "firstParty",
                    },
                    "pid": os.getpid(),
                },
            )
        elif subtype == "mcp_status":
            self.control_response(request_id, response={"mcpServers": []})
        else:
            self.control_response(request_id, "error", error=f"Unsupported control request subtype: {subtype}")

    def on_sigint(self, signum: int, frame: Any) -> None:
        """SIGINT interrupts the running turn like a control interrupt, then the process exits rc 0 (§5)."""
        with self.cond:
            if not self.busy:
                self.exit(0)
            self.exit_after_turn = True
            self.interrupted = True
            self.cond.notify_all()

    # -- turns (worker thread) --

    def guarded_worker(self) -> None:
        """A bug in the fake must show up as a dead process with a traceback, not as a silent hang."""
        # The kernel may hand a SIGINT or SIGTERM to any thread that does not block it; Python runs the handler only in
        # the main thread, which, blocked reading stdin, would never get to it (seen under load: no result 10 s after a
        # SIGINT, this thread in its wait and the main thread in its read). Threads started from here inherit the mask.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            self.worker()
        except BaseException:
            traceback.print_exc()
            self.exit(70)

    def worker(self) -> None:
        while True:
            with self.cond:
                while self.next_texts is None and not self.claude_turns and not self.eof:
                    self.cond.wait()
                texts: list[str] | None = None
                if self.claude_turns:
                    summary = self.claude_turns.pop(0)
                elif self.next_texts is not None:
                    texts, self.next_texts = self.next_texts, None
                else:
                    return
            if texts is None:
                self.run_turn(f"<task-notification>{summary}</task-notification>", origin="task-notification")
            else:
                self.run_turn("\n".join(texts))
            with self.cond:
                self.interrupted = False
                if self.exit_after_turn:
                    self.exit(0)
                if self.queued:
                    # §4: messages sent during a turn become ONE next turn, joined with "\n".
                    if self.merge_queued:
                        self.next_texts, self.queued = self.queued, []
                    else:
                        self.next_texts = [self.queued.pop(0)]
                    self.turn_model = self.model
                elif not self.claude_turns:
                    self.busy = False
                    if self.emit_states:
                        self.system("session_state_changed", state="idle")

    def wait(self, seconds: float, until: Any = None, *, interruptible: bool = True, poll: float | None = None) -> None:
        """Sleep up to `seconds` (or until `until()`), raising Interrupted as soon as an interrupt arrives."""
        deadline = time.monotonic() + seconds
        with self.cond:
            while True:
                if interruptible and self.interrupted:
                    raise Interrupted
                if until is not None and until():
                    return
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                timeout = min(remaining, poll) if poll else remaining
                self.cond.wait(None if timeout == float("inf") else timeout)

    def run_turn(self, text: str, origin: str | None = None) -> None:
        self.turn_origin = origin
        started = time.monotonic()
        if self.emit_states:
            self.system("session_state_changed", state="running")
        self.record_prompt(text)
        if text.strip() == "/clear":
            self.session_id = new_uuid()
            self.record_prompt(text)
            self.turn = Turn(started)
            self.result("success", num_turns=0, text="")
            return
        self.emit(
            {
                "type": "system",
                "subtype": "init",
                "cwd": str(self.cwd),
                "session_id": self.session_id,
                "tools": TOOLS,
                "mcp_servers": [],
                "model": self.turn_model,
                "permissionMode": self.permission_mode,
                "slash_commands": SLASH_COMMANDS,
                "apiKeySource": "ANTHROPIC_API_KEY" if os.environ.get("ANTHROPIC_API_KEY") else "none",
                "claude_code_version": VERSION,
                "output_style": "default",
                "agents": ["claude", "Explore", "general-purpose", "Plan"],
                "skills": [],
                "plugins": [],
                "analytics_disabled": False,
                "product_feedback_disabled": False,
                "uuid": new_uuid(),
                "memory_paths": {"auto": str(self.cwd / ".claude-memory")},
                "fast_mode_state": "off",
            }
        )
        steps = self.store.next_turn()
        if steps is None:
            steps = [{"text": f"echo: {text}"}]
        self.turn = Turn(started)
        try:
            for step in steps:
                self.run_step(step)
        except Interrupted:
            self.abort()
            return
        except TurnOver:
            return
        self.result("success", num_turns=self.turn.calls, text=self.turn.last_text)

    def run_step(self, step: dict[str, Any]) -> None:
        turn = self.turn
        if "text" in step:
            self.step_text(str(step["text"]), int(step.get("chunks", 1)), float(step.get("delay", 0)))
        elif "tool" in step:
            self.step_tool(step)
        elif "spawn_child" in step:
            self.step_spawn_child(step)
        elif "ask_permission" in step:
            self.step_permission(step["ask_permission"])
        elif "huge_line" in step:
            size, char = int(step["huge_line"]), str(step.get("char", "x"))
            if len(char) != 1 or not (" " <= char <= "~") or char in '"\\':
                raise SystemExit('fake claude: huge_line char must be one printable ASCII char other than " and \\')
            self.emit(self.assistant([{"type": "text", "text": HUGE}], turn.msg_id), huge=(size, char))
            turn.last_text = (size, char) if step.get("in_result", True) else ""
        elif "stderr" in step:
            data = step["stderr"]
            if isinstance(data, int):
                line = b"e" * 1023 + b"\n"
                self.emit_stderr(line * (data // 1024) + b"e" * (data % 1024))
            else:
                self.emit_stderr(str(data).encode())
        elif "garbage" in step:
            with self.out_lock:
                sys.stdout.buffer.write(str(step["garbage"]).encode() + b"\n")
                sys.stdout.buffer.flush()
        elif "crash" in step:
            self.exit(int(step["crash"]), kill_children=False)
        elif "kill_self" in step:
            sys.stdout.flush()
            os.kill(os.getpid(), getattr(signal, str(step["kill_self"])))
            time.sleep(60)
        elif "hang" in step:
            self.wait(float("inf"), interruptible=not step.get("ignore_interrupt", False))
        elif "sleep" in step:
            self.wait(float(step["sleep"]))
        elif "background" in step:
            self.step_background(step)
        elif "ask" in step:
            self.step_ask(dict(step["ask"]))
        elif "api_retry" in step:
            fields = {
                "attempt": 1,
                "max_retries": 10,
                "retry_delay_ms": 596.2,
                "error_status": 529,
                "error": "overloaded",
            }
            fields.update(step["api_retry"] or {})
            self.system("api_retry", **fields)
            self.wait(float(step.get("delay", 0)))
        elif "error_result" in step:
            self.step_error_result(step)
        elif "max_turns" in step:
            self.result(
                "error_max_turns",
                num_turns=self.max_turns + 1,
                text=None,
                stop_reason="tool_use",
                terminal_reason="max_turns",
                errors=[f"Reached maximum number of turns ({self.max_turns})"],
            )
            raise TurnOver
        else:
            raise SystemExit(f"fake claude: unknown step {step!r}")

    def step_text(self, text: str, chunks: int, delay: float) -> None:
        size = -(-len(text) // max(chunks, 1)) or 1
        pieces = [text[i : i + size] for i in range(0, len(text), size)] or [""]
        for piece in pieces:
            self.wait(delay)
            self.emit(self.assistant([{"type": "text", "text": piece}], self.turn.msg_id))
            self.turn.last_text = (self.turn.last_text if isinstance(self.turn.last_text, str) else "") + piece

    def tool_use(self, name: str, tool_input: dict[str, Any]) -> str:
        tool_id = "toolu_" + uuid.uuid4().hex[:22]
        self.turn.in_tool = True
        self.emit(
            self.assistant([{"type": "tool_use", "id": tool_id, "name": name, "input": tool_input}], self.turn.msg_id)
        )
        self.turn.tool_id = tool_id
        return tool_id

    def tool_done(self, tool_id: str, text: str, is_error: bool = False) -> None:
        self.tool_result(tool_id, text, is_error)
        # The tool result goes back to the model: a new API call, a new message id, fresh final text.
        self.turn.in_tool = False
        self.turn.calls += 1
        self.turn.msg_id = new_msg_id()
        self.turn.last_text = ""
        with self.cond:
            injected, self.queued = (self.queued, []) if self.merge_queued else ([], self.queued)
        for text_in in injected:
            # §4: messages queued behind a tool-using turn are injected into it, not run as their own turn.
            self.record_prompt(text_in)

    def step_tool(self, step: dict[str, Any]) -> None:
        tool_input = step.get("input") or {"command": "true", "description": "run command"}
        tool_id = self.tool_use(str(step["tool"]), tool_input)
        task_id = uuid.uuid4().hex[:9]
        description = str(tool_input.get("description", ""))
        if step.get("task"):
            self.system(
                "task_started", task_id=task_id, tool_use_id=tool_id, description=description, task_type="local_bash"
            )
        self.wait(float(step.get("sleep", 0)))
        if step.get("task"):
            self.system(
                "task_notification",
                task_id=task_id,
                tool_use_id=tool_id,
                status="completed",
                output_file="",
                summary=description,
            )
        self.tool_done(tool_id, str(step.get("result", "")), bool(step.get("is_error", False)))

    def step_spawn_child(self, step: dict[str, Any]) -> None:
        command = str(step["spawn_child"])
        tool_id = self.tool_use("Bash", {"command": command, "description": "run command"})
        # Like the real Bash tool: its own process group/session, so killpg(cli) does not reach it (§10).
        child = subprocess.Popen(
            ["/bin/sh", "-c", command],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.children.append(child)
        if step.get("pid_file"):
            Path(step["pid_file"]).write_text(f"{child.pid}\n")
        if not step.get("wait", True):
            self.tool_done(tool_id, "Command running in background with ID: " + uuid.uuid4().hex[:9])
            return
        self.turn.tool_children.append(child)
        self.wait(float("inf"), until=lambda: child.poll() is not None, poll=0.05)
        self.children.remove(child)
        self.tool_done(tool_id, str(step.get("result", "")), child.returncode != 0)

    def step_background(self, step: dict[str, Any]) -> None:
        """A `run_in_background` Bash: returns at once; `after` s later the task ends and Claude's own turn starts."""
        description = str(step["background"])
        tool_id = self.tool_use("Bash", {"command": description, "description": description, "run_in_background": True})
        task_id = uuid.uuid4().hex[:9]
        self.system(
            "task_started", task_id=task_id, tool_use_id=tool_id, description=description, task_type="local_bash"
        )
        self.tool_done(tool_id, f"Command running in background with ID: {task_id}.")

        def finish() -> None:
            summary = f'Background command "{description}" completed (exit code 0)'
            with self.cond:
                self.system(
                    "task_notification",
                    task_id=task_id,
                    tool_use_id=tool_id,
                    status="completed",
                    output_file="",
                    summary=summary,
                )
                self.claude_turns.append(summary)
                self.busy = True
                self.cond.notify_all()

        timer = threading.Timer(float(step.get("after", 0.5)), finish)
        timer.daemon = True
        timer.start()

    def step_ask(self, request: dict[str, Any]) -> None:
        """A control_request to the host (any subtype); our answer's `response` object becomes the text, as JSON."""
        request_id = new_uuid()
        with self.cond:
            self.pending_permission = request_id
        self.emit({"type": "control_request", "request_id": request_id, "request": request})
        try:
            self.wait(float("inf"), until=lambda: request_id in self.permission_answers or self.eof)
        finally:
            with self.cond:
                self.pending_permission = None
                answer = self.permission_answers.pop(request_id, None)
        self.step_text(json.dumps(answer, sort_keys=True), 1, 0.0)

    def step_permission(self, spec: dict[str, Any]) -> None:
        name, tool_input = (
            str(spec.get("tool", "Bash")),
            spec.get("input") or {"command": "touch f", "description": "x"},
        )
        tool_id = self.tool_use(name, tool_input)
        if self.prompt_tool != "stdio":
            # Without a prompt tool, -p mode auto-denies (§6).
            self.turn.denials.append({"tool_name": name, "tool_use_id": tool_id, "tool_input": tool_input})
            self.tool_done(tool_id, "This command requires approval", True)
            return
        request_id = new_uuid()
        with self.cond:
            self.pending_permission = request_id
        if self.emit_states:
            self.system("session_state_changed", state="requires_action")
        self.emit(
            {
                "type": "control_request",
                "request_id": request_id,
                "request": {
                    "subtype": "can_use_tool",
                    "tool_name": name,
                    "display_name": name,
                    "input": tool_input,
                    "description": str(tool_input.get("description", "")),
                    "permission_suggestions": spec.get("suggestions", []),
                    "decision_reason": "This command requires approval",
                    "decision_reason_type": "other",
                    "tool_use_id": tool_id,
                },
            }
        )
        try:
            self.wait(float("inf"), until=lambda: request_id in self.permission_answers or self.eof)
        except Interrupted:
            self.turn.denials.append({"tool_name": name, "tool_use_id": tool_id, "tool_input": tool_input})
            raise
        finally:
            with self.cond:
                self.pending_permission = None
                answer = self.permission_answers.pop(request_id, None)
        if self.emit_states:
            self.system("session_state_changed", state="running")
        if answer is None:
            self.tool_done(
                tool_id,
                "Tool permission request failed: Error: Tool permission stream closed before response received",
                True,
            )
        elif answer.get("subtype") == "error":
            self.tool_done(tool_id, f"Tool permission request failed: Error: {answer.get('error')}", True)
        elif (answer.get("response") or {}).get("behavior") == "allow":
            self.tool_done(tool_id, str(spec.get("result", "")))
        else:
            response = answer.get("response") or {}
            self.turn.denials.append({"tool_name": name, "tool_use_id": tool_id, "tool_input": tool_input})
            if response.get("interrupt"):
                raise Interrupted
            self.tool_done(tool_id, str(response.get("message", "denied")), True)

    def step_error_result(self, step: dict[str, Any]) -> None:
        text = str(step["error_result"])
        self.emit(
            self.assistant(
                [{"type": "text", "text": text}],
                new_msg_id(),
                model="<synthetic>",
                stop_reason="stop_sequence",
                error=str(step.get("error", "server_error")),
            )
        )
        self.result(
            "success", is_error=True, num_turns=self.turn.calls, text=text, api_error_status=step.get("status", 500)
        )
        raise TurnOver

    def abort(self) -> None:
        """The real CLI's interrupt sequence (§5): [reject tool_result], marker, error_during_execution result."""
        turn = self.turn
        self.kill_children(turn.tool_children)
        if turn.in_tool:
            self.tool_result(turn.tool_id, TOOL_REJECTED, True, interrupted=True)
            self.user([{"type": "text", "text": "[Request interrupted by user for tool use]"}])
            stop_reason, terminal = "tool_use", "aborted_tools"
        else:
            self.user([{"type": "text", "text": "[Request interrupted by user]"}])
            stop_reason, terminal = None, "aborted_streaming"
        self.result(
            "error_during_execution",
            num_turns=turn.calls,
            text=None,
            stop_reason=stop_reason,
            terminal_reason=terminal,
            errors=[
                "[ede_diagnostic] result_type=user last_content_type=n/a stop_reason="
                + ("tool_use" if stop_reason else "null")
            ],
        )

    def result(
        self,
        subtype: str,
        *,
        num_turns: int,
        text: str | tuple[int, str] | None,
        is_error: bool | None = None,
        stop_reason: str | None = "end_turn",
        terminal_reason: str | None = "completed",
        errors: list[str] | None = None,
        api_error_status: int | None = None,
    ) -> None:
        turn: Turn | None = getattr(self, "turn", None)
        duration_ms = int((time.monotonic() - turn.started) * 1000) if turn else 0
        is_error = subtype != "success" if is_error is None else is_error
        billed = 0 if api_error_status is not None else num_turns
        cost = round(0.001 * billed, 6)
        self.total_cost = round(self.total_cost + cost, 6)
        self.api_ms += 10 * billed
        model_key = self.turn_model
        totals = self.model_usage.setdefault(
            model_key,
            {
                "inputTokens": 0,
                "outputTokens": 0,
                "cacheReadInputTokens": 0,
                "cacheCreationInputTokens": 0,
                "webSearchRequests": 0,
                "costUSD": 0.0,
                "contextWindow": 1000000 if model_key.endswith("[1m]") else 200000,
                "maxOutputTokens": 64000,
            },
        )
        totals["inputTokens"] += 100 * billed
        totals["outputTokens"] += 20 * billed
        totals["costUSD"] = round(totals["costUSD"] + cost, 6)
        obj: dict[str, Any] = {
            "type": "result",
            "subtype": subtype,
            "is_error": is_error,
            "api_error_status": api_error_status,
            "duration_ms": duration_ms,
            "duration_api_ms": self.api_ms,
            "ttft_ms": 5,
            "num_turns": num_turns,
        }
        huge = None
        if isinstance(text, tuple):
            obj["result"], huge = HUGE, text
        elif text is not None:
            obj["result"] = text
        obj.update(
            {
                "stop_reason": stop_reason,
                "session_id": self.session_id,
                "total_cost_usd": self.total_cost,
                "usage": self.usage(billed),
                "modelUsage": self.model_usage,
                "permission_denials": turn.denials if turn else [],
                "terminal_reason": terminal_reason,
                "fast_mode_state": "off",
                "uuid": new_uuid(),
            }
        )
        if errors is not None:
            obj["errors"] = errors
        if self.turn_origin:
            obj["origin"] = {"kind": self.turn_origin}
        self.last_result_error = is_error
        self.emit(obj, huge=huge)

    # -- main --

    def main(self, argv: list[str]) -> NoReturn:
        signal.signal(signal.SIGTERM, lambda *_: os._exit(143))  # §10: SIGTERM → rc 143, no output at all
        start = self.store.count_start()
        self.log_invocation(argv, start)
        if "--version" in self.switches or "-v" in self.switches:
            sys.stdout.write(f"{VERSION} (Claude Code)\n")
            self.exit(0)
        self.run_on_start(start)
        self.check_flags()
        self.open_session()
        signal.signal(signal.SIGINT, self.on_sigint)
        faulthandler.register(signal.SIGUSR1, all_threads=True)  # a test that waits in vain asks where each thread is
        worker = threading.Thread(target=self.guarded_worker, name="turns", daemon=True)
        worker.start()
        self.read_stdin()
        # §3: at EOF an idle process exits at once; a running turn (and any queued one) finishes first.
        while worker.is_alive():
            worker.join(0.2)
        self.exit(1 if self.last_result_error else 0)


def new_msg_id() -> str:
    return "msg_" + uuid.uuid4().hex[:24]


class Turn:
    """Bookkeeping of the turn being run."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.calls = 1
        self.msg_id = new_msg_id()
        self.last_text: str | tuple[int, str] = ""
        self.in_tool = False
        self.tool_id = ""
        self.tool_children: list[subprocess.Popen[bytes]] = []
        self.denials: list[dict[str, Any]] = []


if __name__ == "__main__":
    FakeClaude(sys.argv[1:]).main(sys.argv[1:])
