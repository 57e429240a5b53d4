"""What send_file may send, as a pure judgement over resolved paths, and the tool's asking around it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from claude_bridge.protocol.mcp import McpServer
from claude_bridge.sessions.file_policy import Protected, Verdict, bot_folder, judge, secret_in
from claude_bridge.sessions.place import Place
from claude_bridge.sessions.tools import OutgoingFile, ToolContext, session_tools
from conftest import ROOT

TOKEN = "123456:AAH-secret-token-value"


def protected(tmp_path: Path) -> Protected:
    env = {"HOME": str(tmp_path), "CLAUDE_CONFIG_DIR": str(tmp_path / "config")}
    return Protected.of(sessions_dir=tmp_path / "sessions", env=env, secrets=(TOKEN, "short"))


def test_the_session_folder_is_inside_its_state_is_never_and_the_rest_is_asked(tmp_path):
    rules = protected(tmp_path)
    work, state = tmp_path / "sessions/app", tmp_path / "sessions/.bot/sessions/app"
    own = (work, state / "files")

    assert judge(work / "plot.png", own, rules).verdict == Verdict.INSIDE
    assert judge(state / "files/upload.txt", own, rules).verdict == Verdict.INSIDE  # a project session's uploads
    assert judge(state / "metadata.json", own, rules).verdict == Verdict.NEVER
    assert judge(tmp_path / "config/.credentials.json", own, rules).verdict == Verdict.NEVER
    assert judge(ROOT / ".env", own, rules).verdict == Verdict.NEVER and bot_folder() == ROOT.resolve()
    assert judge(ROOT / "README.md", own, rules).verdict == Verdict.NEVER
    outside = judge(tmp_path / "payroll.csv", own, rules)
    assert outside.verdict == Verdict.ASK and "outside this session's folder" in outside.reason
    assert rules.secrets == (TOKEN,)  # a too-short "secret" would match ordinary text


def test_a_secret_is_found_across_the_chunk_boundary(tmp_path):
    path = tmp_path / "big.log"
    path.write_bytes(b"x" * ((1 << 20) - 5) + TOKEN.encode() + b"\n")

    assert secret_in(path, [TOKEN]) and not secret_in(path, ["not-there-at-all"])


class Asker:
    def __init__(self, answer: bool) -> None:
        self.answer, self.asked = answer, []

    async def __call__(self, tool: str, tool_input: Mapping[str, Any], reason: str) -> bool:
        self.asked.append((tool, dict(tool_input), reason))
        return self.answer


async def send(tmp_path: Path, path: Path, asker: Asker, mode: str = "default") -> tuple[dict[str, Any], list[Any]]:
    sent: list[OutgoingFile] = []

    async def sink(outgoing: OutgoingFile) -> None:
        sent.append(outgoing)

    context = ToolContext(
        tmp_path / "sessions/app",
        lambda: Place(1),
        sink,
        1 << 20,
        own=(tmp_path / "sessions/app",),
        protected=protected(tmp_path),
        ask=asker,
        mode=lambda: mode,
    )
    answer = await McpServer(session_tools(context)).handle(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": "send_file", "arguments": {"path": str(path)}},
        }
    )
    return answer["result"], sent


async def test_outside_is_asked_with_the_path_and_a_no_sends_nothing_bypass_mode_skips_the_asking(tmp_path):
    outside = tmp_path / "payroll.csv"
    outside.write_text("bob,100\n")

    refused, none = await send(tmp_path, outside, no := Asker(False))
    allowed, one = await send(tmp_path, outside, Asker(True))
    _, two = await send(tmp_path, outside, never_called := Asker(False), mode="bypassPermissions")

    assert refused["isError"] and not none and no.asked[0][1] == {"path": str(outside)}
    assert no.asked[0][0] == "mcp__telegram__send_file"
    assert not allowed["isError"] and len(one) == 1 and len(two) == 1 and not never_called.asked


async def test_never_holds_in_bypass_mode_too(tmp_path):
    (tmp_path / "config").mkdir()
    (tmp_path / "config/.credentials.json").write_text("{}")
    (tmp_path / "sessions/app").mkdir(parents=True)
    (tmp_path / "sessions/app/copy.txt").write_text(TOKEN)

    login, _ = await send(tmp_path, tmp_path / "config/.credentials.json", Asker(True), mode="bypassPermissions")
    copy, sent = await send(tmp_path, tmp_path / "sessions/app/copy.txt", Asker(True), mode="bypassPermissions")

    assert login["isError"] and "Claude's login" in login["content"][0]["text"]
    assert copy["isError"] and "token" in copy["content"][0]["text"] and not sent
