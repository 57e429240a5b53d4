"""A chat's command menu: the bot's own commands plus the active session's Claude commands, in Telegram's rules.

Pure: names in, (command, description) pairs and the way back out. Calling setMyCommands is the front end's job.
Which of Claude's commands are left out comes from measurements on CLI 2.1.197 and 2.1.332 (see the protocol notes).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from claude_bridge.commands import catalog
from claude_bridge.sessions.frontend import ClaudeCommands

# Telegram's BotCommand rules (Bot API setMyCommands): 1–32 characters of a-z, 0-9, _; at most 100 commands.
MAX_NAME = 32
MAX_COMMANDS = 100
_DROPPED = re.compile(r"[^a-z0-9_]")
# Listed in `init` but useless or harmful from a chat, as measured (written as a user message, stream-json mode):
# clear — 2.1.332 starts a new conversation under the bot (`conversation_reset`, new session id); /new does it well;
# heapdump — writes a heap snapshot into the CLI's config folder; auto-mode-setup, workflow-launch-exec — machine
# interfaces that answer with usage JSON or "no pending launch handoff"; fast — "not available in the Agent SDK";
# agents — "The /agents wizard has been removed". Names starting with "_" are the CLI's internals (__remote-workflow).
EXCLUDED = frozenset({"clear", "heapdump", "auto-mode-setup", "workflow-launch-exec", "fast", "agents"})


@dataclass(frozen=True)
class Menu:
    """The (command, description) pairs for setMyCommands, and Claude's name behind each of Claude's entries."""

    commands: tuple[tuple[str, str], ...]
    claude_names: Mapping[str, str] = field(default_factory=dict)  # Telegram name → Claude's name

    def claude_line(self, line: str) -> str | None:
        """A typed `/name args` as Claude's command (`/hello_world x` → `/hello-world x`); None if not Claude's."""
        word, _, rest = line.strip().partition(" ")
        if not word.startswith("/"):
            return None
        typed = word[1:].partition("@")[0]  # `/cmd@bot` is how a group addresses one bot
        name = typed if typed in self.claude_names.values() else self.claude_names.get(typed.lower())
        if name is None:
            return None
        args = rest.strip()
        return f"/{name} {args}" if args else f"/{name}"


def telegram_name(name: str) -> str | None:
    """Claude's command name in Telegram's alphabet (`Hello-World` → `hello_world`); None if nothing usable is left."""
    mapped = _DROPPED.sub("", name.lower().replace("-", "_"))
    return mapped if 0 < len(mapped) <= MAX_NAME else None


def build(claude: ClaudeCommands, own: Iterable[tuple[str, str]] | None = None) -> Menu:
    """The menu: the bot's own commands first (they win a clash), then Claude's, in `init`'s order, up to 100."""
    entries = list(catalog.menu() if own is None else own)
    taken = {name for name, _ in entries}
    claude_names: dict[str, str] = {}
    skills = set(claude.skills)
    terminal = set(claude.terminal)
    for name in dict.fromkeys((*claude.slash_commands, *claude.skills)):
        mapped = telegram_name(name)
        if len(entries) >= MAX_COMMANDS:
            break
        if mapped is None or mapped in taken or name in EXCLUDED or name in terminal or name.startswith("_"):
            continue
        taken.add(mapped)
        claude_names[mapped] = name
        entries.append((mapped, _describe(name, is_skill=name in skills)))
    return Menu(tuple(entries), claude_names)


def _describe(name: str, *, is_skill: bool) -> str:
    kind = "skill" if is_skill else "command"
    return f"Claude Code {kind} /{name}"
