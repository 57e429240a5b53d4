"""/permissions: the rules kept for the session's project, each with a Remove choice (fake process, real files)."""

from __future__ import annotations

import json

import pytest

from claude_bridge.commands.core import Commands
from claude_bridge.sessions.manager import SessionManager
from claude_bridge.sessions.place import Place
from claude_bridge.sessions.rules import add_rule, project_rules
from fake_process import FakeSpawner, base_options, drain

pytestmark = pytest.mark.fast
PRIVATE, GROUP = 5, Place(-100, 7)  # a private chat and a forum topic


def commands(tmp_path) -> tuple[Commands, SessionManager, FakeSpawner]:
    spawner = FakeSpawner()
    manager = SessionManager(tmp_path / "sessions", spawn=spawner, base_options=base_options(tmp_path))
    return Commands(manager), manager, spawner


async def test_permissions_lists_the_projects_rules_with_a_remove_button_each(tmp_path):
    run, manager, _ = commands(tmp_path)
    await drain(await manager.send(PRIVATE, "hello"))
    folder = manager.sessions_dir / "default"
    add_rule(folder, "Bash(npm test *)")
    add_rule(folder, "WebFetch(domain:example.com)")

    reply = await run.run(PRIVATE, "/permissions")

    assert "• Bash(npm test *)\n• WebFetch(domain:example.com)" in reply.text and str(folder) in reply.text
    assert [c.label for c in reply.choices] == ["🗑 Remove Bash(npm test *)", "🗑 Remove WebFetch(domain:example.com)"]
    assert all(len(c.command.encode()) <= 64 for c in reply.choices)
    await manager.close_all()


async def test_remove_forgets_that_rule_only_and_the_idle_process_restarts_with_its_history(tmp_path):
    run, manager, spawner = commands(tmp_path)
    await drain(await manager.send(GROUP, "hello"))
    folder = manager.sessions_dir / manager.active_session(GROUP)  # type: ignore[operator]
    add_rule(folder, "Bash(npm test *)")
    add_rule(folder, "Bash(make)")
    remove = (await run.run(GROUP, "/permissions")).choices[0].command

    assert "Removed Bash(npm test *)" in (await run.run(GROUP, remove)).text
    assert project_rules(folder) == ("Bash(make)",)
    # 2.1.197 never re-reads the file (measured): the idle process stops, the next message resumes the conversation.
    assert spawner.started[0].stopped
    await drain(await manager.send(GROUP, "again"))
    assert len(spawner.started) == 2 and spawner.started[1].continued
    await manager.close_all()


async def test_a_stale_remove_button_never_removes_the_rule_now_in_its_place(tmp_path):
    run, manager, _ = commands(tmp_path)
    folder = manager.sessions_dir / manager.ensure_active(PRIVATE)[0]
    add_rule(folder, "Bash(rm -rf build)")
    add_rule(folder, "Bash(make)")
    first = (await run.run(PRIVATE, "/permissions")).choices[0].command
    assert "Removed" in (await run.run(PRIVATE, first)).text

    reply = await run.run(PRIVATE, first)  # index 0 is now "Bash(make)"

    assert "no longer kept" in reply.text and project_rules(folder) == ("Bash(make)",)
    await manager.close_all()


async def test_every_start_marks_the_folder_trusted_so_older_clis_honour_its_rules(tmp_path):
    _, manager, _ = commands(tmp_path)
    await drain(await manager.send(PRIVATE, "hello"))
    config = json.loads((tmp_path / "claude-config" / ".claude.json").read_text())
    assert config["projects"][str(manager.sessions_dir / "default")] == {"hasTrustDialogAccepted": True}
    await manager.close_all()
