"""A live CLI crosses the bot's own exec: detached mid-answer, adopted by fresh code in the same pid, read to the end.

The bot is tests/handover_helper.py in a process of its own (the fake Messages API lives here, so it outlives the
exec); the tests read its report lines from both images.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from claude_bridge.process.argv import ProcessOptions, build_argv, build_env
from conftest import cli_env, real_cli_path
from fake_anthropic import FakeAnthropic, Text
from fake_anthropic import ToolUse as ScriptedTool

HELPER = Path(__file__).with_name("handover_helper.py")
PARTS = [f"part{n:02d} " for n in range(30)]


async def run_helper(tmp_path: Path, **config: Any) -> list[dict[str, Any]]:
    """Run the stand-in bot through start → detach → exec → adopt → result; its report lines, in order."""
    config.setdefault("handover", str(tmp_path / "handover.json"))
    config.setdefault("marker", uuid.uuid4().hex)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    helper = await asyncio.create_subprocess_exec(
        sys.executable, str(HELPER), "start", str(path), stdout=asyncio.subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(helper.communicate(), 120)
    assert helper.returncode == 0, out.decode()
    return [json.loads(line) for line in out.decode().splitlines()]


def real_cli_config(tmp_path: Path, api: FakeAnthropic, **overrides: Any) -> dict[str, Any]:
    workdir = tmp_path / "session"
    workdir.mkdir()
    marker = uuid.uuid4().hex
    options = ProcessOptions(claude_bin=real_cli_path(), cwd=workdir, env=cli_env(tmp_path, api.url), **overrides)
    argv = build_argv(options, model=None, continue_conversation=False)
    env = build_env(options.env, options.claude_bin, marker)
    return {"argv": argv, "env": env, "cwd": str(workdir), "marker": marker}


def lines(report: list[dict[str, Any]], event: str) -> list[dict[str, Any]]:
    return [line for line in report if line["event"] == event]


@pytest.mark.real_cli
async def test_a_slow_answer_crosses_the_exec_with_every_part_exactly_once(tmp_path, api):
    api.enqueue(Text("".join(PARTS), chunk_size=len(PARTS[0]), delay=0.1))
    config = real_cli_config(tmp_path, api, permission_mode="bypassPermissions")

    report = await run_helper(tmp_path, **config, message="stream slowly", detach_after=5)

    first, second = lines(report, "spawned")[0], lines(report, "adopted")[0]
    assert first["pid"] == second["pid"]  # the same bot process, new code
    assert first["cli_pid"] == second["cli_pid"] and second["cli_ppid"] == second["pid"]
    deltas = lines(report, "delta")
    assert {d["image"] for d in deltas} == {"first", "second"}
    assert "".join(d["text"] for d in deltas) == "".join(PARTS)
    assert lines(report, "result")[0]["text"] == "".join(PARTS)
    assert lines(report, "stopped")[0]["code"] == 0


@pytest.mark.real_cli
async def test_a_permission_prompt_open_at_the_exec_is_answered_by_the_new_code(tmp_path, api):
    api.enqueue(
        ScriptedTool("Bash", {"command": "touch crossed; echo crossed-the-exec", "description": "touch"}),
        Text("the tool ran"),
    )
    config = real_cli_config(tmp_path, api, permission_mode="default")

    report = await run_helper(tmp_path, **config, message="run the tool")

    asked = lines(report, "control_request")
    assert [(a["image"], a["subtype"]) for a in asked] == [("first", "can_use_tool"), ("second", "can_use_tool")]
    assert asked[0]["request_id"] == asked[1]["request_id"]
    assert lines(report, "detached")[0]["open"] == 1
    assert lines(report, "result")[0]["text"] == "the tool ran"
    assert "crossed-the-exec" in str(api.requests[-1].tool_results)


# A stand-in CLI that leaves half a line in the reader's buffer at the exec: one write holds a whole line and the
# first half of the next; the rest comes only after the adopted image writes to stdin, then it exits 7 on EOF.
HALF_LINE_CLI = r"""
import json, os, sys
def delta(text):
    return json.dumps({"type": "stream_event", "event": {"type": "content_block_delta",
                       "delta": {"type": "text_delta", "text": text}}})
second = delta("second-half-crossed")
os.write(1, (delta("first") + "\n" + second[:25]).encode())
sys.stdin.readline()  # the first image's message
sys.stdin.readline()  # the adopted image's
os.write(1, (second[25:] + "\n").encode())
os.write(2, b"stderr written after the exec\n")
os.write(1, (json.dumps({"type": "result", "subtype": "success", "is_error": False, "result": "done"}) + "\n").encode())
sys.stdin.readline()
sys.exit(7)
"""


async def test_half_a_line_held_at_the_exec_is_completed_once_and_the_exit_code_is_seen(tmp_path):
    config = {"argv": [sys.executable, "-c", HALF_LINE_CLI], "env": {}, "cwd": str(tmp_path)}

    report = await run_helper(
        tmp_path, **config, message="go", initialize=False, detach_after=1, after_adopt={"type": "go"}
    )

    assert lines(report, "detached")[0]["pending"] == 25
    assert lines(report, "adopted")[0]["sighup_blocked"]  # a reload asked for during the exec waits, not kills
    assert [(d["image"], d["text"]) for d in lines(report, "delta")] == [
        ("first", "first"), ("second", "second-half-crossed")
    ]
    stopped = lines(report, "stopped")[0]
    assert stopped["code"] == 7 and lines(report, "exit")[0]["code"] == 7
    assert "stderr written after the exec" in stopped["stderr"]
