"""How one CLI process is launched: its options, argv and environment, and what a failed start means (the one
wording of every start failure: the OS refusing to launch it, its pid file, or the CLI exiting at once).

Pure functions of ProcessOptions; nothing here spawns or reads a process.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from claude_bridge.errors import BridgeError, ClaudeNotFound, ClaudeStartError
from claude_bridge.protocol.events import PERMISSION_MODES
from claude_bridge.runtime import cannot_write
from claude_bridge.settings import usual_bin_dirs

# --include-partial-messages: without it text arrives only when a whole block is done, so nothing streams.
BASE_ARGS = (
    "-p",
    "--input-format",
    "stream-json",
    "--output-format",
    "stream-json",
    "--verbose",
    "--include-partial-messages",
    # Tool approvals, Claude's questions and plans come to us as `can_use_tool` control requests (§6, §16.3).
    "--permission-prompt-tool",
    "stdio",
)
MARKER_ENV = "CLAUDE_BRIDGE_PROCESS"
RESUME_ID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# What the CLI says (stderr, and `errors` of its one result) when --resume names a conversation it cannot find.
NO_CONVERSATION = "No conversation found with session ID"


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
    # The conversation to resume (`--resume=<id>`): a session's own, since several sessions may share one folder.
    # `continue_conversation` alone (`--continue`: the folder's newest conversation) is for an unknown id.
    resume_id: str | None = None
    watchdog_seconds: float = 600.0
    restart_delays: tuple[float, ...] = (1.0, 2.0, 4.0)
    start_timeout: float = 60.0
    stop_timeout: float = 5.0
    control_timeout: float = 10.0  # how long set_model / stop_task wait for the CLI's answer
    label: str = "claude"
    pid_file: Path | None = None
    # After a task_notification the CLI starts Claude's own turn within milliseconds (measured); our next message
    # waits this long for its `init` so it does not race Claude's turn.
    claude_turn_grace: float = 2.0
    mcp_config: str | None = None  # --mcp-config JSON: the bot's in-process (SDK-type) MCP servers
    allowed_tools: tuple[str, ...] = ()  # tools that never need a permission prompt (the bot's own)


def build_argv(
    options: ProcessOptions, *, model: str | None, continue_conversation: bool, resume_id: str | None = None
) -> list[str]:
    """The CLI's argv: values in `--flag=value` form so a value starting with '-' cannot become a flag.

    With `resume_id` the CLI resumes that conversation; else `continue_conversation` picks the folder's newest.
    """
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
    if options.mcp_config:
        argv.append(f"--mcp-config={options.mcp_config}")
    if options.allowed_tools:
        argv.append(f"--allowedTools={','.join(options.allowed_tools)}")
    if resume_id:
        if not RESUME_ID.fullmatch(resume_id):
            raise BridgeError(f"{resume_id!r} is not a Claude session id")
        argv.append(f"--resume={resume_id}")
    elif continue_conversation:
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


RETRY = "Your next message will try again once that is fixed."


def start_failure(exc: OSError | ValueError, claude_bin: Path, *, launching: bool) -> BridgeError:
    """What a start that failed before the CLI ran means: launching it (exec) or writing its pid file."""
    # The folder was checked just before exec: a missing or forbidden file there is the CLI itself.
    if launching and isinstance(exc, FileNotFoundError):
        return ClaudeNotFound([str(claude_bin)])
    if launching and isinstance(exc, PermissionError):
        return ClaudeStartError(f"{claude_bin} is not executable: {exc}", None, "")
    return ClaudeStartError(f"Could not start Claude: {_cause(exc)}. {RETRY}", None, "")


def _cause(exc: OSError | ValueError) -> str:
    if isinstance(exc, ValueError):
        if "null byte" in str(exc):
            return "the persona's prompt or a setting contains a NUL byte"
        return str(exc)
    if exc.errno in (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM):
        return cannot_write(exc)
    if exc.errno == errno.E2BIG:
        return f"the persona's prompt is too long to pass to the CLI ({exc.strerror})"
    if exc.errno == errno.ENOENT:
        return f"a folder or file is missing{f' ({exc.filename})' if exc.filename else ''}"
    return str(exc)
