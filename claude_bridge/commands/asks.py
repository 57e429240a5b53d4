"""Claude asking the human, in words and choices for any front end: a Prompt as a Reply, /answer and /mode.

A prompt's choices run `/answer <id> <action>`; the front end shows them (Telegram: buttons on one message it edits
as the prompt changes). Which tool is asked and what the answer does to the CLI is the sessions layer's business.
"""

from __future__ import annotations

from claude_bridge.commands import catalog
from claude_bridge.commands.preview import ToolPreview, tool_preview
from claude_bridge.commands.reply import Choice, Reply
from claude_bridge.sessions.approvals import Action, Offer
from claude_bridge.sessions.homes import in_private_chat
from claude_bridge.sessions.manager import USER_MODES, SessionManager
from claude_bridge.sessions.place import Place, Where
from claude_bridge.sessions.prompts import Prompt, PromptKind

RULE_LABEL = 48  # a button's text is cut past this; the prompt's own text says the whole command
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


def prompt_reply(prompt: Prompt, preview: ToolPreview | None = None) -> Reply:
    """What the prompt message says now, and its buttons while it waits (`preview`: a tool's, computed once)."""
    if prompt.kind == PromptKind.TOOL:
        intro, preview, footer = tool_prompt(prompt, preview)
        return Reply("\n".join((intro, preview.plain(), footer)), tool_choices(prompt))
    if prompt.kind == PromptKind.QUESTION:
        text, choices = _question(prompt)
    else:
        text = f"📋 Claude's plan in “{prompt.session}” is above. Start on it?"
        choices = (_choice(prompt, "✅ Approve", "allow"), _choice(prompt, "📝 Keep planning", "deny"))
        text += "\nOr type a reply: it goes back to Claude as feedback on the plan."
    if prompt.waiting:
        if prompt.reminded:
            text = "⏰ Still waiting for you.\n" + text
        return Reply(text, choices)
    return Reply(f"{text}\n\n{prompt.outcome}")


def tool_prompt(prompt: Prompt, preview: ToolPreview | None = None) -> tuple[str, ToolPreview, str]:
    """A tool approval in three parts: the line above the preview, the preview, and the lines below it.

    Compute the preview once, while the prompt waits: once allowed, the file it diffs against has changed."""
    if preview is None:
        preview = tool_preview(prompt.request.tool_name, prompt.request.input, reason=prompt.request.reason)
    intro = f"🔐 Claude wants to use {_tool_title(prompt)} in “{prompt.session}”:"
    if prompt.waiting and prompt.reminded:
        intro = "⏰ Still waiting for you.\n" + intro
    if prompt.waiting:
        footer = "Or type a reply: the tool is denied and Claude reads your reply as the reason."
    else:
        footer = prompt.outcome
    return intro, preview, footer


def tool_choices(prompt: Prompt) -> tuple[Choice, ...]:
    """A waiting tool approval's buttons."""
    if not prompt.waiting:
        return ()
    return tuple(_choice(prompt, offer_label(offer), offer.action) for offer in prompt.offers)


def offer_label(offer: Offer) -> str:
    """A button says what it does: "Always allow Bash(npm test *)" names the rule it keeps."""
    match offer.action:
        case Action.ALLOW:
            return "✅ Allow"
        case Action.ALWAYS:
            return "♾ Always allow " + _cut(", ".join(rule.text for rule in offer.rules))
        case Action.EDITS:
            return "✏️ Allow all edits for this session"
        case Action.DIRECTORIES:
            return "📁 Allow, and " + _cut(", ".join(offer.directories)) + " for this session"
        case _:
            return "🚫 Deny"


def _cut(text: str, limit: int = RULE_LABEL) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _choice(prompt: Prompt, label: str, action: str) -> Choice:
    return Choice(label, f"/answer {prompt.id} {action}")


def _tool_title(prompt: Prompt) -> str:
    name = prompt.request.tool_name
    if name.startswith("mcp__"):
        _, server, tool = [*name.split("__", 2), "", ""][:3]
        return f"the tool {tool} of the MCP server {server}"
    return name


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
