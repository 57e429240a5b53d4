"""Claude asking the human, in words and choices for any front end: a Prompt as a Reply, /answer and /mode.

A prompt's choices run `/answer <id> <action>`; the front end shows them (Telegram: buttons on one message it edits
as the prompt changes). Which tool is asked and what the answer does to the CLI is the sessions layer's business.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from claude_bridge.commands import catalog
from claude_bridge.commands.reply import Choice, Reply
from claude_bridge.sessions.homes import in_private_chat
from claude_bridge.sessions.manager import USER_MODES, SessionManager
from claude_bridge.sessions.place import Place, Where
from claude_bridge.sessions.prompts import Prompt, PromptKind

PREVIEW_LINES = 12
PREVIEW_CHARS = 600
EXPIRED = "⌛ This question is no longer waiting (answered, stopped, or from before a restart)."
NOT_AN_ANSWER = "That is not an answer this prompt takes; use its buttons or type a reply."
ELSEWHERE = "⛔ This question was asked in another chat; it is answered only there."
BYPASS = "bypassPermissions"
CONFIRM = "confirm"
BYPASS_IN_GROUP = (
    "⛔ bypassPermissions is set only from a private chat: here anyone in the chat could make Claude run every "
    "tool unasked."
)
BYPASS_QUESTION = (
    "⚠️ Skip every permission prompt in “{name}”? Claude will then run every tool without asking: commands, "
    "edits, deletions, anything this machine's user may do, also after a restart. /mode default asks again."
)
MODE_WORDS = {
    "default": "ask before tools that change things (you approve each in the chat)",
    "acceptEdits": "file edits run unasked; commands still ask",
    "plan": "Claude only plans (reads, no changes) and asks you to approve the plan",
    "bypassPermissions": "every tool runs unasked — Claude can change or delete anything this user can",
}


def prompt_reply(prompt: Prompt) -> Reply:
    """What the prompt message says now, and its buttons while it waits."""
    if prompt.kind == PromptKind.QUESTION:
        text, choices = _question(prompt)
    elif prompt.kind == PromptKind.PLAN:
        text = f"📋 Claude's plan in “{prompt.session}” is above. Start on it?"
        choices = (_choice(prompt, "✅ Approve", "allow"), _choice(prompt, "📝 Keep planning", "deny"))
        text += "\nOr type a reply: it goes back to Claude as feedback on the plan."
    else:
        text = f"🔐 Claude wants to use {_tool_title(prompt)} in “{prompt.session}”:\n{tool_summary(prompt)}"
        # "Always" sends the CLI's own suggested rules; without any it would be a plain Allow.
        always = (_choice(prompt, "♾ Always allow (this session)", "always"),) if prompt.suggestions else ()
        choices = (_choice(prompt, "✅ Allow", "allow"), *always, _choice(prompt, "🚫 Deny", "deny"))
        text += "\nOr type a reply: the tool is denied and Claude reads your reply as the reason."
    if prompt.waiting:
        if prompt.reminded:
            text = "⏰ Still waiting for you.\n" + text
        return Reply(text, choices)
    return Reply(f"{text}\n\n{prompt.outcome}")


def _choice(prompt: Prompt, label: str, action: str) -> Choice:
    return Choice(label, f"/answer {prompt.id} {action}")


def _tool_title(prompt: Prompt) -> str:
    name = prompt.request.tool_name
    if name.startswith("mcp__"):
        _, server, tool = [*name.split("__", 2), "", ""][:3]
        return f"the tool {tool} of the MCP server {server}"
    return name


def tool_summary(prompt: Prompt) -> str:
    """A readable account of what the tool would do, plus Claude's reason when it gave one."""
    name, data = prompt.request.tool_name, prompt.request.input
    lines: list[str] = []
    if name == "Bash":
        lines.append(_preview(f"$ {data.get('command', '')}"))
    elif name == "Write":
        lines += [f"✏️ write {data.get('file_path', '')}", _preview(str(data.get("content", "")))]
    elif name in ("Edit", "MultiEdit"):
        lines.append(f"✏️ edit {data.get('file_path', '')}")
        edits = data.get("edits") if name == "MultiEdit" else [data]
        for edit in (e for e in edits or [] if isinstance(e, Mapping)):
            lines += [_diff("- ", edit.get("old_string")), _diff("+ ", edit.get("new_string"))]
    elif name == "NotebookEdit":
        lines += [f"✏️ edit {data.get('notebook_path', '')}", _preview(str(data.get("new_source", "")))]
    elif name == "WebFetch":
        lines.append(f"🌐 {data.get('url', '')}")
    elif name.startswith("mcp__"):
        lines.append("arguments: " + _preview(_json(data)))
    else:
        lines.append(_preview(_json(data)))
    stated = [str(data.get("description") or ""), prompt.request.reason]
    lines += [f"Why: {why}" for why in dict.fromkeys(w for w in stated if w)]
    return "\n".join(line for line in lines if line)


def _preview(text: str) -> str:
    lines = text.splitlines()
    short = "\n".join(lines[:PREVIEW_LINES])[:PREVIEW_CHARS]
    return short + ("\n…" if short != text else "")


def _diff(mark: str, text: Any) -> str:
    return "\n".join(mark + line for line in _preview(str(text or "")).splitlines())


def _json(data: Mapping[str, Any]) -> str:
    return json.dumps(dict(data), ensure_ascii=False, indent=1)


def _question(prompt: Prompt) -> tuple[str, tuple[Choice, ...]]:
    lines = [f"❓ Claude asks in “{prompt.session}”:"]
    current = prompt.current_question
    choices: tuple[Choice, ...] = ()
    for i, question in enumerate(prompt.questions):
        head = f"[{question.header}] " if question.header else ""
        lines.append(f"\n{head}{question.text}")
        if i in prompt.answers:
            lines.append(f"→ {prompt.answers[i]}")
            continue
        if i != current or not prompt.waiting:
            continue
        for label, description in zip(question.options, question.descriptions, strict=True):
            lines.append(f"• {label}" + (f" — {description}" if description else ""))
        picked = prompt.toggled.get(i, set())
        choices = tuple(
            _choice(prompt, ("☑ " if j in picked else "☐ ") * question.multi + label, f"pick {i} {j}")
            for j, label in enumerate(question.options)
        )
        if question.multi:
            choices += (_choice(prompt, "Done", f"done {i}"),)
            lines.append("(pick any, then Done)")
        lines.append("Or type your own answer.")
    return "\n".join(lines), choices


async def answer(manager: SessionManager, args: list[str], where: Where) -> Reply:
    """/answer <id> <action>: a prompt's button; a prompt that no longer waits says so and nothing happens.

    A prompt is answered only from the place it is shown in (a button press in a topic may come without its topic).
    """
    if len(args) < 2:
        return Reply(catalog.usage("answer"))
    prompt, place = manager.prompts.get(args[0]), Place.of(where)
    if prompt is not None and not (prompt.chat_id == place.chat_id and place.thread_id in (None, prompt.thread_id)):
        return Reply(ELSEWHERE)
    if manager.prompts.press(args[0], " ".join(args[1:])):
        return Reply("✓")
    return Reply(EXPIRED if manager.prompts.get(args[0]) is None else NOT_AN_ANSWER)


async def mode(manager: SessionManager, name: str, notice: str, args: list[str], where: Where) -> Reply:
    """/mode [mode]: show the session's permission mode with the modes to pick, or set it.

    bypassPermissions only in a private chat, and only after its confirming choice (`/mode bypassPermissions
    confirm`) says what it means."""
    confirmed = args[1:] == [CONFIRM]
    if len(args) > 2 or (len(args) == 2 and not confirmed):
        return Reply(catalog.usage("mode"))
    private = in_private_chat(Place.of(where))
    if args:
        wanted = next((m for m in USER_MODES if m.lower() == args[0].lower()), args[0])
        if wanted == BYPASS and not private:
            return Reply(notice + BYPASS_IN_GROUP)
        if wanted == BYPASS and not confirmed:
            choices = (Choice("⚠️ Yes, skip every prompt", f"/mode {BYPASS} {CONFIRM}"), Choice("Cancel", "/cancel"))
            return Reply(notice + BYPASS_QUESTION.format(name=name), choices)
        info = await manager.set_permission_mode(name, wanted)
        return Reply(f"{notice}🛡 Permission mode of “{name}” is now {info.permission_mode}: {MODE_WORDS[wanted]}.")
    current = manager.status(name).permission_mode
    lines = [f"{notice}Permission mode of “{name}”: {current}."]
    lines += [f"• {m} — {words}" for m, words in MODE_WORDS.items()]
    offered = [m for m in USER_MODES if private or m != BYPASS]
    return Reply("\n".join(lines), tuple(Choice(("• " if m == current else "") + m, f"/mode {m}") for m in offered))
