"""What the CLI asks of one session while it works: calls of the bot's own tools (send_file, served in-process over
MCP) and a human's answer (a permission, a question, a plan), asked in the place of the turn that needs it.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from claude_bridge.protocol.events import PermissionRequest
from claude_bridge.protocol.mcp import McpServer
from claude_bridge.protocol.messages import deny
from claude_bridge.sessions.file_policy import Protected
from claude_bridge.sessions.place import Place
from claude_bridge.sessions.prompts import PromptBoard, PromptKind
from claude_bridge.sessions.tools import OutgoingFile, ToolContext, session_tools


class ClaudeRequests:
    """The tools one session serves and its answers to the CLI's permission requests."""

    def __init__(
        self,
        name: str,
        directory: Path,
        place: Callable[[], Place | None],
        prompts: PromptBoard,
        send_file: Callable[[OutgoingFile], Awaitable[None]],
        upload_limit: int,
        plan_approved: Callable[[], None],
        keep_mode: Callable[[str], Awaitable[None]],
        *,
        own: Sequence[Path] = (),
        protected: Protected | None = None,
        mode: Callable[[], str] = lambda: "default",
    ) -> None:
        self.name = name
        self._place = place
        self._prompts = prompts
        self._plan_approved = plan_approved
        self._keep_mode = keep_mode  # "Allow all edits for this session": the session keeps that mode
        # send_file's policy (file_policy): the session's `own` folders unasked, elsewhere asked, secrets never.
        context = ToolContext(
            directory,
            place,
            send_file,
            upload_limit,
            own=own,
            protected=protected or Protected(),
            ask=self._ask_for_tool,
            mode=mode,
        )
        self.tools = McpServer(session_tools(context))

    @property
    def allowed_tools(self) -> tuple[str, ...]:
        """The bot's own tools never need a permission prompt."""
        return tuple(tool.qualified_name for tool in self.tools.tools.values())

    async def on_permission(self, permission: PermissionRequest) -> Mapping[str, Any]:
        """A tool approval, a question or a plan: shown in the chat of the message being answered (else the last)."""
        place = self._place()
        if place is None:
            return deny("Nobody is in a chat with this session to approve it.")
        prompt = await self._prompts.prompt_for(permission, self.name, place)
        answer = await self._prompts.ask(prompt)
        if prompt.kind == PromptKind.PLAN and answer.get("behavior") == "allow":
            self._plan_approved()
        if prompt.chosen is not None and prompt.chosen.mode is not None:
            await self._keep_mode(prompt.chosen.mode)
        return answer

    async def _ask_for_tool(self, tool: str, tool_input: Mapping[str, Any], reason: str) -> bool:
        """One of the bot's own tools asks the human, with the same prompt as a CLI tool call: True if allowed."""
        request = PermissionRequest(f"bot-{secrets.token_hex(4)}", tool, tool_input, reason=reason)
        answer = await self.on_permission(request)
        return answer.get("behavior") == "allow"
