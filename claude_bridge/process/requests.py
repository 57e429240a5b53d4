"""The CLI's own control requests, answered as the Agent SDK's Query does: a call of a tool the bot serves goes to
the session's in-process MCP server, a permission request (a tool approval, a question, a plan) to a typed callback;
anything else is refused. Above this module nobody reads a raw control request."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from claude_bridge.errors import BridgeError
from claude_bridge.process.live import ControlHandler
from claude_bridge.protocol.events import ControlRequest, PermissionRequest
from claude_bridge.protocol.mcp import McpServer
from claude_bridge.protocol.messages import allow, mcp_response

# Decides one permission request; returns the CLI's answer (protocol.messages allow/deny).
OnPermission = Callable[[PermissionRequest], Awaitable[Mapping[str, Any]]]


def control_handler(tools: McpServer, on_permission: OnPermission) -> ControlHandler:
    """The process's answer to each control request the CLI sends us."""
    own = {tool.qualified_name for tool in tools.tools.values()}

    async def answer(request: ControlRequest) -> Mapping[str, Any]:
        match request.subtype:
            case "mcp_message":
                server, message = request.request.get("server_name"), request.request.get("message")
                if server != tools.name or not isinstance(message, Mapping):
                    raise BridgeError(f"no MCP server named {server!r} here")
                return mcp_response(await tools.handle(message))
            case "can_use_tool":
                permission = PermissionRequest.of(request)
                if permission.tool_name in own:
                    # The bot's own tools never need the human (and --allowedTools normally keeps them from asking).
                    return allow(permission.input)
                return await on_permission(permission)
            case _:
                raise BridgeError(f"the bot does not answer {request.subtype!r} requests")

    return answer
