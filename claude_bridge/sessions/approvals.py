"""Which answers a tool approval offers, from the CLI's suggestions: each answer does only what it says.

Allow (this call) and Deny always; "Always allow" only with an `addRules` suggestion for the tool asked, kept in
the project (`localSettings`); a `setMode acceptEdits` suggestion only as its own "all edits" answer, never
folded into "Always" (2.1.197 and 2.1.332 suggest it next to the rule for `touch`); `addDirectories` likewise.
Pure: no process, no wording.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from claude_bridge.protocol.permissions import (
    LOCAL_SETTINGS,
    SESSION,
    AddDirectories,
    AddRules,
    PermissionUpdate,
    Rule,
    SetMode,
)

EDITS_MODE = "acceptEdits"


class Action(StrEnum):
    """What a button does; the value is the `/answer <id> <action>` word."""

    ALLOW = "allow"
    ALWAYS = "always"
    EDITS = "edits"
    DIRECTORIES = "dirs"
    DENY = "deny"


@dataclass(frozen=True)
class Offer:
    """One answer the human can give: what it sends in `updatedPermissions`, and what it names."""

    action: Action
    updates: tuple[PermissionUpdate, ...] = ()
    rules: tuple[Rule, ...] = ()  # ALWAYS: the rules kept for the project
    mode: str | None = None  # EDITS: the session's permission mode from now on
    directories: tuple[str, ...] = ()  # DIRECTORIES: folders allowed for this session


def offers(tool_name: str, suggestions: Iterable[PermissionUpdate]) -> tuple[Offer, ...]:
    """The answers for a `can_use_tool` request of `tool_name`, in button order: Allow, Always…, edits, dirs, Deny."""
    suggestions = tuple(suggestions)
    found: list[Offer] = [Offer(Action.ALLOW)]
    rules = tuple(
        dict.fromkeys(
            rule
            for s in suggestions
            if isinstance(s, AddRules) and s.behavior == "allow"
            for rule in s.rules
            if rule.tool == tool_name
        )
    )
    if rules:
        found.append(Offer(Action.ALWAYS, (AddRules(rules, "allow", LOCAL_SETTINGS),), rules=rules))
    if any(isinstance(s, SetMode) and s.mode == EDITS_MODE for s in suggestions):
        found.append(Offer(Action.EDITS, (SetMode(EDITS_MODE, SESSION),), mode=EDITS_MODE))
    directories = tuple(dict.fromkeys(d for s in suggestions if isinstance(s, AddDirectories) for d in s.directories))
    if directories:
        found.append(Offer(Action.DIRECTORIES, (AddDirectories(directories, SESSION),), directories=directories))
    found.append(Offer(Action.DENY))
    return tuple(found)


def offer_for(action: str, choices: Iterable[Offer]) -> Offer | None:
    """The offer a pressed `/answer … <action>` means; None if this prompt never offered it."""
    return next((offer for offer in choices if offer.action == action), None)
