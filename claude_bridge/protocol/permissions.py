"""The permission updates of a `can_use_tool` request (`permission_suggestions`) and of our answer
(`updatedPermissions`): typed on the way in, plain dicts on the way out.

Measured on 2.1.197 and 2.1.332 (same shapes): `addRules` {rules:[{toolName, ruleContent}], behavior, destination},
`setMode` {mode, destination}, `addDirectories` {directories, destination}. Unknown types are skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

LOCAL_SETTINGS = "localSettings"  # <cwd>/.claude/settings.local.json, where "don't ask again" rules live
SESSION = "session"  # the running process only


@dataclass(frozen=True)
class Rule:
    """One permission rule: a tool and, optionally, what of it (`npm test *`, `domain:example.com`)."""

    tool: str
    content: str | None = None

    @property
    def text(self) -> str:
        """As a person reads it: `Bash(npm test *)` (the settings file escapes parentheses; this does not)."""
        return f"{self.tool}({self.content})" if self.content is not None else self.tool


@dataclass(frozen=True)
class AddRules:
    rules: tuple[Rule, ...]
    behavior: str
    destination: str


@dataclass(frozen=True)
class SetMode:
    mode: str
    destination: str


@dataclass(frozen=True)
class AddDirectories:
    directories: tuple[str, ...]
    destination: str


PermissionUpdate = AddRules | SetMode | AddDirectories


def parse_suggestions(raw: object) -> tuple[PermissionUpdate, ...]:
    """A request's `permission_suggestions`, typed; anything malformed or unknown is left out."""
    if not isinstance(raw, (list, tuple)):
        return ()
    return tuple(update for item in raw if isinstance(item, Mapping) and (update := _one(item)) is not None)


def _one(item: Mapping[str, Any]) -> PermissionUpdate | None:
    destination = str(item.get("destination", SESSION))
    match item.get("type"):
        case "addRules":
            rules = tuple(_rules(item.get("rules")))
            return AddRules(rules, str(item.get("behavior", "allow")), destination) if rules else None
        case "setMode" if isinstance(item.get("mode"), str):
            return SetMode(item["mode"], destination)
        case "addDirectories" if isinstance(item.get("directories"), list):
            return AddDirectories(tuple(str(d) for d in item["directories"]), destination)
    logger.debug("skipping a permission suggestion: %s", item)
    return None


def _rules(raw: object) -> Iterable[Rule]:
    for rule in raw if isinstance(raw, list) else []:
        if isinstance(rule, Mapping) and isinstance(rule.get("toolName"), str):
            content = rule.get("ruleContent")
            yield Rule(rule["toolName"], content if isinstance(content, str) else None)


def update_json(update: PermissionUpdate) -> dict[str, Any]:
    """One entry of `updatedPermissions` in an allow answer."""
    match update:
        case AddRules(rules, behavior, destination):
            wire = [{"toolName": r.tool} | ({"ruleContent": r.content} if r.content is not None else {}) for r in rules]
            return {"type": "addRules", "rules": wire, "behavior": behavior, "destination": destination}
        case SetMode(mode, destination):
            return {"type": "setMode", "mode": mode, "destination": destination}
        case AddDirectories(directories, destination):
            return {"type": "addDirectories", "directories": list(directories), "destination": destination}
