"""What the bridge writes to the CLI's stdin: the only builders of user messages and control messages.

Each builder returns a plain dict for one `json.dumps` line (§3 of the protocol notes); nothing else in the package
builds these shapes by hand. It knows the CLI's input schema, not pipes or processes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Content = str | list[dict[str, Any]]


def user_message(content: Content, session_id: str = "") -> dict[str, Any]:
    """A user turn: text or a list of content blocks (only `type` and `message` are required by the CLI)."""
    return {
        "type": "user",
        "message": {"role": "user", "content": content},
        "parent_tool_use_id": None,
        "session_id": session_id or "default",
    }


def control_request(request_id: str, request: Mapping[str, Any]) -> dict[str, Any]:
    """One of our control requests; the CLI answers with a control_response carrying the same request_id."""
    return {"type": "control_request", "request_id": request_id, "request": dict(request)}


def initialize() -> dict[str, Any]:
    """`initialize`: proves the CLI started and warms it up (§7).

    `systemPromptSnapshot: false`: since 2.1.3xx the CLI records the system prompt of a conversation and reuses it on
    `--continue`/`--resume`, so a persona switched in between would be ignored (measured on 2.1.332; 2.1.197
    ignores the field). The command-line flag would make older CLIs refuse to start.
    """
    return {"subtype": "initialize", "hooks": None, "systemPromptSnapshot": False}


def interrupt() -> dict[str, Any]:
    """`interrupt`: stop the running turn; the process lives on (§5)."""
    return {"subtype": "interrupt"}


def set_model(model: str | None) -> dict[str, Any]:
    """`set_model`: switch model mid-session; None means the CLI's default."""
    return {"subtype": "set_model", "model": model or "default"}


def set_permission_mode(mode: str) -> dict[str, Any]:
    """`set_permission_mode`: default, acceptEdits, plan; bypassPermissions only if launched allowing it (§6)."""
    return {"subtype": "set_permission_mode", "mode": mode}


def stop_task(task_id: str) -> dict[str, Any]:
    """`stop_task`: end one background task (a `run_in_background` Bash, a background agent…)."""
    return {"subtype": "stop_task", "task_id": task_id}


def control_success(request_id: str, response: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Our answer to a control request the CLI sent us."""
    body: dict[str, Any] = {"subtype": "success", "request_id": request_id}
    if response is not None:
        body["response"] = dict(response)
    return {"type": "control_response", "response": body}


def control_error(request_id: str, error: str) -> dict[str, Any]:
    """Our refusal of a control request the CLI sent us (unknown subtype, no handler, handler failed)."""
    return {"type": "control_response", "response": {"subtype": "error", "request_id": request_id, "error": error}}


def allow(tool_input: Mapping[str, Any], permissions: list[Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """A `can_use_tool` answer that lets the tool run; `updatedInput` must be present (§6), `permissions` = always."""
    decision: dict[str, Any] = {"behavior": "allow", "updatedInput": dict(tool_input)}
    if permissions:
        decision["updatedPermissions"] = [dict(p) for p in permissions]
    return decision


def deny(message: str, *, interrupt: bool = False) -> dict[str, Any]:
    """A `can_use_tool` answer that refuses the tool; Claude reads `message` as the tool's error (§6)."""
    decision: dict[str, Any] = {"behavior": "deny", "message": message}
    if interrupt:
        decision["interrupt"] = True
    return decision


def mcp_response(answer: Mapping[str, Any]) -> dict[str, Any]:
    """The answer to an `mcp_message` control request: the JSON-RPC reply, wrapped (§16.4)."""
    return {"mcp_response": dict(answer)}
