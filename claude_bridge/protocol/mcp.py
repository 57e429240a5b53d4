"""The bot's own MCP server as the CLI speaks to it in-process: JSON-RPC carried in `mcp_message` control requests.

It knows MCP's few methods (initialize, notifications/initialized, tools/list, tools/call) and the shape of
`--mcp-config` for an SDK-type server (protocol notes §16.4); what a tool does is given to it, never known here.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

SERVER_NAME = "telegram"
PROTOCOL_VERSION = "2025-06-18"  # answered when the CLI names none; otherwise we echo the CLI's own version
METHOD_NOT_FOUND = -32601


@dataclass(frozen=True)
class ToolOutcome:
    """What a tool call returns to Claude: a text, flagged as an error when the call failed."""

    text: str
    is_error: bool = False


ToolFunction = Callable[[Mapping[str, Any]], Awaitable[ToolOutcome]]


@dataclass(frozen=True)
class Tool:
    """One tool the bot serves: its name, what it is for, the JSON schema of its arguments, and the function."""

    name: str
    description: str
    input_schema: Mapping[str, Any]
    run: ToolFunction = field(repr=False)

    @property
    def qualified_name(self) -> str:
        """The name the CLI gives it (and `--allowedTools` takes): mcp__<server>__<tool>."""
        return qualified_name(self.name)


def qualified_name(tool: str, server: str = SERVER_NAME) -> str:
    """mcp__<server>__<tool>, as the CLI names an MCP tool."""
    return f"mcp__{server}__{tool}"


def mcp_config(server_names: Sequence[str] = (SERVER_NAME,)) -> str:
    """The `--mcp-config` value declaring in-process (SDK-type) servers."""
    servers = {name: {"type": "sdk", "name": name} for name in server_names}
    return json.dumps({"mcpServers": servers}, separators=(",", ":"))


class McpServer:
    """Answers the CLI's JSON-RPC messages for one session's tools."""

    def __init__(self, tools: Sequence[Tool], *, name: str = SERVER_NAME, version: str = "1") -> None:
        self.name = name
        self.version = version
        self.tools = {tool.name: tool for tool in tools}

    async def handle(self, message: Mapping[str, Any]) -> dict[str, Any]:
        """The JSON-RPC answer to one message; never raises, so the CLI never waits for nothing."""
        method = message.get("method")
        request_id = message.get("id")
        raw_params = message.get("params")
        params: Mapping[str, Any] = raw_params if isinstance(raw_params, Mapping) else {}
        if method == "initialize":
            version = params.get("protocolVersion")
            return _result(
                request_id,
                {
                    "protocolVersion": version if isinstance(version, str) and version else PROTOCOL_VERSION,
                    "capabilities": {"tools": {}},
                    "serverInfo": {"name": self.name, "version": self.version},
                },
            )
        if isinstance(method, str) and method.startswith("notifications/"):
            return {"jsonrpc": "2.0", "result": {}}  # a notification has no id; the CLI still wants an answer
        if method == "tools/list":
            listed = [
                {"name": t.name, "description": t.description, "inputSchema": dict(t.input_schema)}
                for t in self.tools.values()
            ]
            return _result(request_id, {"tools": listed})
        if method == "tools/call":
            return _result(request_id, await self._call(params))
        logger.warning("MCP server %s: unknown method %r", self.name, method)
        return _error(request_id, METHOD_NOT_FOUND, f"Method not found: {method}")

    async def _call(self, params: Mapping[str, Any]) -> dict[str, Any]:
        name = params.get("name")
        arguments = params.get("arguments")
        tool = self.tools.get(name) if isinstance(name, str) else None
        if tool is None:
            outcome = ToolOutcome(f"Unknown tool {name!r}. Tools: {', '.join(sorted(self.tools))}.", is_error=True)
        elif arguments is not None and not isinstance(arguments, Mapping):
            outcome = ToolOutcome("The arguments must be a JSON object.", is_error=True)
        else:
            try:
                outcome = await tool.run(arguments or {})
            except Exception as exc:  # a tool's bug becomes Claude's tool error, never a hung turn
                logger.exception("MCP tool %s failed", tool.name)
                outcome = ToolOutcome(f"The tool failed: {exc}", is_error=True)
        return {"content": [{"type": "text", "text": outcome.text}], "isError": outcome.is_error}


def _result(request_id: Any, result: Mapping[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "result": dict(result)}


def _error(request_id: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}
