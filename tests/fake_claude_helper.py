"""Test-side face of tests/fake_claude.py: build its JSON script, wrap it as an executable `claude`, read its logs.

Typical use: `script = FakeCliScript(tmp_path / "script.json").turn(Step.text("hi", chunks=3, delay=0.2))`,
`claude_bin = make_fake_cli(tmp_path, script)`, run the code under test, then assert on `script.invocations()`.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

FAKE_CLAUDE = Path(__file__).resolve().with_name("fake_claude.py")
SESSION_FILE = ".fake-claude-session"
ROOT_REFUSAL = "--dangerously-skip-permissions cannot be used with root/sudo privileges for security reasons"


class Step:
    """Constructors for the steps of one scripted turn (plain dicts; see fake_claude.py for semantics)."""

    @staticmethod
    def text(text: str, chunks: int = 1, delay: float = 0.0) -> dict[str, Any]:
        """Assistant text as `chunks` assistant lines, each after `delay` seconds (interruptible)."""
        return {"text": text, "chunks": chunks, "delay": delay}

    @staticmethod
    def tool(
        name: str = "Bash",
        input: dict[str, Any] | None = None,
        result: str = "",
        sleep: float = 0.0,
        *,
        task: bool = False,
        is_error: bool = False,
    ) -> dict[str, Any]:
        """tool_use, [system/task_started], `sleep` s (interruptible → aborted_tools), user tool_result."""
        step: dict[str, Any] = {"tool": name, "result": result, "sleep": sleep, "task": task, "is_error": is_error}
        if input is not None:
            step["input"] = input
        return step

    @staticmethod
    def spawn_child(command: str = "sleep 300", pid_file: Path | None = None, *, wait: bool = True) -> dict[str, Any]:
        """A real Bash-tool child in its own session; the turn waits for it unless wait=False."""
        step: dict[str, Any] = {"spawn_child": command, "wait": wait}
        if pid_file is not None:
            step["pid_file"] = str(pid_file)
        return step

    @staticmethod
    def ask_permission(
        tool: str = "Bash", input: dict[str, Any] | None = None, result: str = "", suggestions: list[Any] | None = None
    ) -> dict[str, Any]:
        """tool_use then `control_request can_use_tool` (needs --permission-prompt-tool stdio; else auto-deny)."""
        spec: dict[str, Any] = {"tool": tool, "result": result, "suggestions": suggestions or []}
        if input is not None:
            spec["input"] = input
        return {"ask_permission": spec}

    @staticmethod
    def huge_line(n_bytes: int, char: str = "x", *, in_result: bool = True) -> dict[str, Any]:
        """One assistant line whose text is n_bytes long (the result repeats it, like the real CLI, unless told)."""
        return {"huge_line": n_bytes, "char": char, "in_result": in_result}

    @staticmethod
    def stderr(data: int | str) -> dict[str, Any]:
        """n bytes (int, in 1 KiB lines) or the given text to stderr; blocks while nobody drains it."""
        return {"stderr": data}

    @staticmethod
    def garbage(line: str = "not json") -> dict[str, Any]:
        return {"garbage": line}

    @staticmethod
    def crash(code: int = 1) -> dict[str, Any]:
        """Exit at once with `code`: no result, children left running."""
        return {"crash": code}

    @staticmethod
    def kill_self(signal_name: str = "SIGKILL") -> dict[str, Any]:
        return {"kill_self": signal_name}

    @staticmethod
    def hang(*, ignore_interrupt: bool = False) -> dict[str, Any]:
        """Emit nothing and never finish, until interrupted (or forever)."""
        return {"hang": True, "ignore_interrupt": ignore_interrupt}

    @staticmethod
    def sleep(seconds: float) -> dict[str, Any]:
        """Silence, as while waiting for the API (interruptible → aborted_streaming)."""
        return {"sleep": seconds}

    @staticmethod
    def api_retry(delay: float = 0.0, **fields: Any) -> dict[str, Any]:
        """A system/api_retry line (fields override attempt/max_retries/retry_delay_ms/error_status/error)."""
        return {"api_retry": fields, "delay": delay}

    @staticmethod
    def error_result(text: str = "API Error: 500 fake 500 api_error", status: int = 500) -> dict[str, Any]:
        """Synthetic assistant + result subtype success, is_error true; ends the turn."""
        return {"error_result": text, "status": status}

    @staticmethod
    def background(description: str, after: float = 0.5) -> dict[str, Any]:
        """A `run_in_background` Bash; `after` s later: task_notification, then Claude's own turn (next script turn)."""
        return {"background": description, "after": after}

    @staticmethod
    def ask(subtype: str, **fields: Any) -> dict[str, Any]:
        """A control_request to the host; the turn's text is the JSON of our control_response (null: none came)."""
        return {"ask": {"subtype": subtype, **fields}}

    @staticmethod
    def max_turns() -> dict[str, Any]:
        """Result subtype error_max_turns; ends the turn."""
        return {"max_turns": True}


class FakeCliScript:
    """Builder for the fake's script file, and reader of what the fake recorded beside it."""

    def __init__(self, path: Path, *, queued: str = "merge") -> None:
        self.path = Path(path).resolve()
        self.data: dict[str, Any] = {"on_start": [], "turns": [], "queued": queued}

    def on_start(self, **action: Any) -> FakeCliScript:
        """e.g. on_start(exit=1, stderr=ROOT_REFUSAL), on_start(ignore_sigterm=True), on_start(sleep=1, times=1)."""
        self.data["on_start"].append(action)
        return self.save()

    def ignore_control(self, *subtypes: str) -> FakeCliScript:
        """Never answer these control requests (e.g. "set_model")."""
        self.data["ignore_control"] = list(subtypes)
        return self.save()

    def turn(self, *steps: dict[str, Any]) -> FakeCliScript:
        """Append one turn; turns are consumed in order across every process that runs this script."""
        self.data["turns"].append(list(steps))
        return self.save()

    def save(self) -> FakeCliScript:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self.data))
        tmp.replace(self.path)  # a live fake re-reads the file at each turn
        return self

    def invocations(self) -> list[dict[str, Any]]:
        """One record per process start: argv, cwd, pid, pgid, sid, start, claudecode, env."""
        return _read_jsonl(self.path.with_name(self.path.name + ".invocations.jsonl"))

    def received(self) -> list[dict[str, Any]]:
        """Every JSON line the fakes read on stdin: {"pid", "time", "message"}."""
        return _read_jsonl(self.path.with_name(self.path.name + ".received.jsonl"))

    def turns_consumed(self) -> int:
        state = self.path.with_name(self.path.name + ".state")
        return int(json.loads(state.read_text())["next_turn"]) if state.exists() else 0


def session_state(cwd: Path) -> dict[str, Any] | None:
    """The fake's per-cwd 'transcript': {"session_id", "turns", "prompts"}, or None before the first turn."""
    path = Path(cwd) / SESSION_FILE
    return json.loads(path.read_text()) if path.exists() else None


def make_fake_cli(
    tmp_path: Path, script: FakeCliScript | Path | None = None, *, name: str = "claude", argv0: bool = False
) -> Path:
    """Write an executable `<tmp_path>/fake-bin/<name>` that runs fake_claude.py with this test's Python.

    The script path is baked in as FAKE_CLAUDE_SCRIPT (None: the caller's env decides). With argv0=True the
    wrapper uses bash `exec -a` so /proc/<pid>/cmdline starts with the wrapper path, as the real binary's does
    (the interpreter then runs without the venv, which the stdlib-only fake does not need).
    """
    if isinstance(script, FakeCliScript):
        script = script.save().path
    lines = ["#!/bin/bash" if argv0 else "#!/bin/sh"]
    if script is not None:
        lines.append(f"export FAKE_CLAUDE_SCRIPT={shlex.quote(str(Path(script).resolve()))}")
    exec_a = 'exec -a "$0"' if argv0 else "exec"
    lines.append(f'{exec_a} {shlex.quote(sys.executable)} {shlex.quote(str(FAKE_CLAUDE))} "$@"')
    wrapper = Path(tmp_path) / "fake-bin" / name
    wrapper.parent.mkdir(parents=True, exist_ok=True)
    wrapper.write_text("\n".join(lines) + "\n")
    wrapper.chmod(0o755)
    return wrapper


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
