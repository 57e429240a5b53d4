"""Which answers a tool approval offers (sessions/approvals.py), from suggestions 2.1.197 and 2.1.332 really sent."""

from __future__ import annotations

import pytest

from claude_bridge.protocol.permissions import AddRules, Rule, SetMode, parse_suggestions, update_json
from claude_bridge.sessions.approvals import Action, offer_for, offers

pytestmark = pytest.mark.fast

WS = "/work/ws"
# Measured, identical on 2.1.197 and 2.1.332 (Bash `touch notes.txt`, `npm test`, Write, Edit, WebFetch).
TOUCH = [
    {
        "type": "addRules",
        "rules": [{"toolName": "Bash", "ruleContent": "touch notes.txt"}],
        "behavior": "allow",
        "destination": "localSettings",
    },
    {"type": "addDirectories", "directories": [WS], "destination": "session"},
    {"type": "setMode", "mode": "acceptEdits", "destination": "session"},
]
NPM_TEST = [
    {
        "type": "addRules",
        "rules": [{"toolName": "Bash", "ruleContent": "npm test *"}],
        "behavior": "allow",
        "destination": "localSettings",
    }
]
WRITE = [{"type": "setMode", "mode": "acceptEdits", "destination": "session"}]
WEBFETCH = [
    {
        "type": "addRules",
        "destination": "localSettings",
        "rules": [{"toolName": "WebFetch", "ruleContent": "domain:example.com"}],
        "behavior": "allow",
    }
]


def actions(tool: str, raw: object) -> list[Action]:
    return [offer.action for offer in offers(tool, parse_suggestions(raw))]


def test_always_on_touch_keeps_only_the_rule_in_the_project_and_never_the_mode():
    choices = offers("Bash", parse_suggestions(TOUCH))
    always = offer_for("always", choices)

    assert [o.action for o in choices] == [Action.ALLOW, Action.ALWAYS, Action.EDITS, Action.DIRECTORIES, Action.DENY]
    assert always is not None and always.rules == (Rule("Bash", "touch notes.txt"),)
    assert [update_json(u) for u in always.updates] == [
        {
            "type": "addRules",
            "rules": [{"toolName": "Bash", "ruleContent": "touch notes.txt"}],
            "behavior": "allow",
            "destination": "localSettings",
        }
    ]


def test_allow_all_edits_is_its_own_answer_that_sets_the_mode():
    edits = offer_for("edits", offers("Bash", parse_suggestions(TOUCH)))
    assert edits is not None and edits.mode == "acceptEdits"
    assert edits.updates == (SetMode("acceptEdits", "session"),)


def test_a_write_has_no_rule_so_no_always_only_the_edits_answer():
    assert actions("Write", WRITE) == [Action.ALLOW, Action.EDITS, Action.DENY]
    assert offer_for("always", offers("Write", parse_suggestions(WRITE))) is None


def test_rules_for_another_tool_or_no_suggestions_give_no_always():
    assert actions("Bash", WEBFETCH) == [Action.ALLOW, Action.DENY]
    assert actions("Bash", []) == [Action.ALLOW, Action.DENY]
    assert actions("Bash", None) == [Action.ALLOW, Action.DENY]


def test_a_session_rule_suggestion_is_kept_in_the_project_instead():
    session_rule = [{**NPM_TEST[0], "destination": "session"}]
    [update] = offer_for("always", offers("Bash", parse_suggestions(session_rule))).updates
    assert isinstance(update, AddRules) and update.destination == "localSettings"


def test_rules_read_as_a_person_writes_them():
    assert offer_for("always", offers("WebFetch", parse_suggestions(WEBFETCH))).rules[0].text == (
        "WebFetch(domain:example.com)"
    )
    assert Rule("Bash").text == "Bash"


def test_unknown_or_malformed_suggestions_are_skipped():
    raw = [{"type": "removeRules", "rules": []}, {"type": "addRules", "rules": "x"}, "junk", *NPM_TEST]
    assert parse_suggestions(raw) == (AddRules((Rule("Bash", "npm test *"),), "allow", "localSettings"),)
