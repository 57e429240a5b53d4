"""The bot's in-process MCP server and its send_file tool, without a CLI: JSON-RPC in, answers and files out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from claude_bridge.protocol.mcp import McpServer, Tool, ToolOutcome, mcp_config
from claude_bridge.sessions.place import Place
from claude_bridge.sessions.tools import OutgoingFile, ToolContext, session_tools

pytestmark = pytest.mark.fast

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


class Chat:
    """A stand-in front end that records the files it was given."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.files: list[OutgoingFile] = []
        self.fail = fail

    async def __call__(self, outgoing: OutgoingFile) -> None:
        if self.fail is not None:
            raise self.fail
        self.files.append(outgoing)


def server(tmp_path: Path, chat: Chat, limit: int = 50 * 1024 * 1024) -> McpServer:
    context = ToolContext(cwd=tmp_path, place=lambda: Place(111), sink=chat, upload_limit=limit, own=(tmp_path,))
    return McpServer(session_tools(context))


async def call(mcp: McpServer, **arguments: Any) -> dict[str, Any]:
    answer = await mcp.handle(
        {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "send_file", "arguments": arguments}}
    )
    assert answer["id"] == 7
    result: dict[str, Any] = answer["result"]
    return result


async def test_the_handshake_lists_send_file_with_its_schema(tmp_path):
    mcp = server(tmp_path, Chat())

    hello = await mcp.handle(
        {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-11-25"}}
    )
    ack = await mcp.handle({"jsonrpc": "2.0", "method": "notifications/initialized"})
    listed = await mcp.handle({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})

    assert hello["result"]["protocolVersion"] == "2025-11-25" and hello["result"]["capabilities"] == {"tools": {}}
    assert ack == {"jsonrpc": "2.0", "result": {}}
    [tool] = listed["result"]["tools"]
    assert tool["name"] == "send_file" and tool["inputSchema"]["required"] == ["path"]


async def test_an_unknown_method_is_a_json_rpc_error_not_a_hang(tmp_path):
    answer = await server(tmp_path, Chat()).handle({"jsonrpc": "2.0", "id": 3, "method": "resources/list"})

    assert answer["error"]["code"] == -32601 and answer["id"] == 3


async def test_a_relative_text_file_goes_as_a_document_with_its_caption(tmp_path):
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs/run.log").write_text("all good\n")
    chat = Chat()

    result = await call(server(tmp_path, chat), path="logs/run.log", caption="the log")

    assert result["isError"] is False and "as a document" in result["content"][0]["text"]
    [sent] = chat.files
    assert sent.path == tmp_path / "logs/run.log" and sent.caption == "the log" and not sent.as_photo


async def test_a_png_goes_as_a_photo_but_a_png_named_txt_or_a_fake_png_does_not(tmp_path):
    (tmp_path / "plot.png").write_bytes(PNG)
    (tmp_path / "fake.png").write_bytes(b"not an image at all")
    chat = Chat()
    mcp = server(tmp_path, chat)

    await call(mcp, path=str(tmp_path / "plot.png"))
    await call(mcp, path="fake.png")

    assert [f.as_photo for f in chat.files] == [True, False]


async def test_missing_oversized_empty_and_directory_paths_are_tool_errors_and_nothing_is_sent(tmp_path):
    (tmp_path / "big.bin").write_bytes(b"x" * 2048)
    (tmp_path / "empty.txt").write_bytes(b"")
    chat = Chat()
    mcp = server(tmp_path, chat, limit=1024)

    answers = [await call(mcp, path=p) for p in ("nope.txt", "big.bin", "empty.txt", ".", "")]

    assert all(a["isError"] for a in answers)
    texts = [a["content"][0]["text"] for a in answers]
    assert texts[0].startswith("No such file") and "larger than the 1.0 KB" in texts[1]
    assert "empty" in texts[2] and texts[3].startswith("Not a regular file") and "needs a `path`" in texts[4]
    assert chat.files == []


async def test_a_front_end_failure_is_told_to_claude(tmp_path):
    (tmp_path / "a.txt").write_text("a")

    result = await call(server(tmp_path, Chat(fail=OSError("chat not found"))), path="a.txt")

    assert result["isError"] and "chat not found" in result["content"][0]["text"]


async def test_a_tool_that_raises_becomes_a_tool_error(tmp_path):
    async def broken(arguments: Any) -> ToolOutcome:
        raise ValueError("boom")

    mcp = McpServer([Tool("broken", "", {"type": "object"}, broken)])
    answer = await mcp.handle({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "broken"}})

    assert answer["result"]["isError"] and "boom" in answer["result"]["content"][0]["text"]


def test_the_mcp_config_declares_an_sdk_server() -> None:
    assert json.loads(mcp_config()) == {"mcpServers": {"telegram": {"type": "sdk", "name": "telegram"}}}
