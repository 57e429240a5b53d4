"""A project's kept permission rules and the workspace trust flag, on disk (sessions/rules.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from claude_bridge.sessions.rules import (
    RulesFileError,
    add_rule,
    config_file,
    project_rules,
    remove_rule,
    settings_path,
    trust_workspace,
)

pytestmark = pytest.mark.fast

# What 2.1.197 and 2.1.332 wrote after an allow with updatedPermissions [addRules Bash "npm test *", localSettings].
CLI_WROTE = '{\n  "permissions": {\n    "allow": [\n      "Bash(npm test *)"\n    ]\n  }\n}\n'


def project_with(tmp_path: Path, data: object) -> Path:
    path = settings_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return tmp_path


def test_the_rules_the_cli_wrote_are_listed(tmp_path):
    assert project_rules(project_with(tmp_path, CLI_WROTE)) == ("Bash(npm test *)",)


def test_a_project_without_settings_has_no_rules(tmp_path):
    assert project_rules(tmp_path) == ()


def test_removing_a_rule_keeps_the_other_rules_and_keys_and_replaces_the_file_whole(tmp_path):
    data = {
        "permissions": {"allow": ["Bash(npm test *)", "WebFetch(domain:example.com)"], "deny": ["Read(.env)"]},
        "env": {"A": "1"},
    }
    project = project_with(tmp_path, data)
    before = settings_path(project).stat().st_ino

    assert remove_rule(project, "Bash(npm test *)")

    after = json.loads(settings_path(project).read_text())
    assert after == {
        "permissions": {"allow": ["WebFetch(domain:example.com)"], "deny": ["Read(.env)"]},
        "env": {"A": "1"},
    }
    assert settings_path(project).stat().st_ino != before  # a new file renamed over the old one
    assert [p.name for p in settings_path(project).parent.iterdir()] == ["settings.local.json"]


def test_removing_a_rule_the_project_does_not_have_leaves_the_file_alone(tmp_path):
    project = project_with(tmp_path, CLI_WROTE)
    assert not remove_rule(project, "Bash(rm -rf *)")
    assert settings_path(project).read_text() == CLI_WROTE


@pytest.mark.parametrize(
    "content", ["{not json", "[1, 2]", '{"permissions": []}', '{"permissions": {"allow": "Bash(ls)"}}']
)
def test_a_malformed_settings_file_is_a_clear_error_and_is_not_touched(tmp_path, content):
    project = project_with(tmp_path, content)
    with pytest.raises(RulesFileError, match=r"settings\.local\.json"):
        remove_rule(project, "Bash(ls)")
    with pytest.raises(RulesFileError):
        project_rules(project)
    assert settings_path(project).read_text() == content


def test_adding_a_rule_creates_the_file_once(tmp_path):
    assert add_rule(tmp_path, "Bash(npm test *)")
    assert not add_rule(tmp_path, "Bash(npm test *)")
    assert project_rules(tmp_path) == ("Bash(npm test *)",)


def test_trusting_a_workspace_keeps_the_clis_other_keys_and_its_file_mode(tmp_path):
    config = config_file(tmp_path)
    config.write_text(json.dumps({"userID": "u1", "projects": {"/elsewhere": {"allowedTools": []}}}))
    os.chmod(config, 0o600)
    workspace = tmp_path / "work"

    assert trust_workspace(config, workspace)
    assert not trust_workspace(config, workspace)

    data = json.loads(config.read_text())
    assert data["userID"] == "u1" and data["projects"]["/elsewhere"] == {"allowedTools": []}
    assert data["projects"][str(workspace)] == {"hasTrustDialogAccepted": True}
    assert config.stat().st_mode & 0o777 == 0o600


def test_trusting_without_a_config_file_creates_a_private_one(tmp_path):
    config = config_file(tmp_path / "cfg")
    assert trust_workspace(config, tmp_path)
    assert json.loads(config.read_text()) == {"projects": {str(tmp_path): {"hasTrustDialogAccepted": True}}}
    assert config.stat().st_mode & 0o777 == 0o600
