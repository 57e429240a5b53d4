"""/permissions: the rules kept for the active session's project ("Always allow"), with a Remove choice each.

A Remove choice names its rule by position and a short hash of its text, so a button from an older list never
removes another rule that moved into that place. Words only; the file is sessions/rules.py's business.
"""

from __future__ import annotations

import hashlib

from claude_bridge.commands import catalog
from claude_bridge.commands.reply import Choice, Reply
from claude_bridge.sessions.manager import SessionManager
from claude_bridge.sessions.rules import SETTINGS_FILE

REMOVE = "remove"
LABEL = 40


def rule_check(rule: str) -> str:
    """8 hex digits of the rule's text: `/permissions remove <index> <check>` stays far below 64 bytes."""
    return hashlib.sha256(rule.encode()).hexdigest()[:8]


async def permissions(manager: SessionManager, name: str, notice: str, args: list[str]) -> Reply:
    """/permissions [remove <index> <check>]: list the project's kept rules, or remove one."""
    if args and (len(args) != 3 or args[0] != REMOVE or not args[1].isdigit()):
        return Reply(catalog.usage("permissions"))
    folder = manager.status(name).workspace
    if args:
        return await _remove(manager, name, notice, int(args[1]), args[2])
    rules = manager.rules(name)
    if not rules:
        return Reply(f"{notice}No rules are kept for {folder}. “Always allow” on a prompt keeps one.")
    lines = [f"{notice}Allowed without asking in {folder} (kept in {SETTINGS_FILE}):"]
    lines += [f"• {rule}" for rule in rules]
    remove = (f"/permissions {REMOVE} {i} {rule_check(rule)}" for i, rule in enumerate(rules))
    return Reply("\n".join(lines), tuple(Choice(f"🗑 Remove {_cut(r)}", c) for r, c in zip(rules, remove, strict=True)))


async def _remove(manager: SessionManager, name: str, notice: str, index: int, check: str) -> Reply:
    rules = manager.rules(name)
    if index >= len(rules) or rule_check(rules[index]) != check or not await manager.remove_rule(name, rules[index]):
        return Reply(f"{notice}That rule is no longer kept; /permissions lists the rules now.")
    return Reply(f"{notice}🗑 Removed {rules[index]}: Claude asks again before it in “{name}”.")


def _cut(rule: str) -> str:
    return rule if len(rule) <= LABEL else rule[: LABEL - 1] + "…"
