"""The bot's state apart from Claude's workspaces: damage stays with one session, old installs move, caps hold."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_session_manager import drain, make_manager, result_of

from claude_bridge.commands.core import Commands
from claude_bridge.errors import SessionError
from claude_bridge.process import pidfile
from claude_bridge.process.argv import MARKER_ENV
from claude_bridge.process.subprocess import ClaudeSubprocess
from claude_bridge.protocol.events import START_FAILED
from claude_bridge.sessions.manager import SessionManager
from claude_bridge.sessions.session import SessionState
from claude_bridge.sessions.store import Persona
from claude_bridge.settings import load_settings
from fake_process import base_options

pytestmark = pytest.mark.fast

STATE = Path("sessions/.bot/sessions")
DAMAGE = [
    ("metadata.json", "garbage \x00\xff", "Expecting value"),
    ("metadata.json", '{"created": 1, "last_active', "Unterminated string"),
    ("metadata.json", "[1, 2]", "expected a JSON object, found list"),
    ("metadata.json", '{"created": "yesterday", "last_active": 1, "workspace": "/x"}', "'created' has the wrong type"),
    ("metadata.json", '{"created": 1, "last_active": 1, "turns": true, "workspace": "/x"}', "'turns' has the wrong"),
    ("metadata.json", None, "the file is missing"),
    ("inbox.jsonl", '{"op": "add", "id": "1", "content": "no chat"}\n', "line 1: 'chat_id' must be an integer"),
    ("inbox.jsonl", '{"op": "sent", "id": "1"}\n[3]\n', "line 2: expected a JSON object, found list"),
    ("inbox.jsonl", '{"op": "frobnicate", "id": "1"}\n', "line 1: unknown op 'frobnicate'"),
]


@pytest.mark.parametrize(("file", "text", "reason"), DAMAGE)
async def test_damaged_state_marks_only_that_session_and_the_bot_still_starts(tmp_path, file, text, reason):
    first, _, _ = make_manager(tmp_path)
    first.create("broken")
    first.create("fine")
    first.switch(1, "broken")
    first.switch(2, "fine")
    target = tmp_path / STATE / "broken" / file
    if text is None:
        target.unlink()
    else:
        target.write_text(text, encoding="utf-8", errors="surrogateescape")

    manager, _, _ = make_manager(tmp_path)
    assert await manager.recover() == []

    expected = f"damaged: {file}: "
    broken = next(info for info in manager.list_sessions() if info.name == "broken")
    assert broken.state is SessionState.DAMAGED and broken.damage.startswith(expected) and reason in broken.damage
    with pytest.raises(SessionError, match=f"Session “broken” is {expected}"):
        await manager.send(1, "hello?")
    assert not result_of(await drain(await manager.send(2, "hello"))).is_error
    if text is not None:
        assert target.read_text(encoding="utf-8", errors="surrogateescape") == text  # never overwritten
    await manager.close_all()


async def test_sessions_and_status_say_what_is_damaged(tmp_path):
    first, _, _ = make_manager(tmp_path)
    first.create("broken")
    first.create("fine")
    (tmp_path / STATE / "broken/metadata.json").write_text("42")
    commands = manager_commands(make_manager(tmp_path)[0])

    listing = (await commands.run(1, "/sessions")).text
    assert "• broken — damaged: metadata.json: expected a JSON object, found int" in listing
    fine = next(line for line in listing.splitlines() if " fine — " in line)
    assert "damaged" not in fine and "0 turns" in fine
    await commands.run(1, "/switch broken")
    status = (await commands.run(1, "/status")).text
    assert status.startswith("Session: broken (damaged: metadata.json: expected a JSON object, found int)")


async def test_damaged_session_can_be_deleted_but_its_workspace_is_left(tmp_path):
    first, _, _ = make_manager(tmp_path)
    first.create("broken")
    (tmp_path / STATE / "broken/metadata.json").write_text("{")
    manager, _, _ = make_manager(tmp_path)
    prompt = await manager_commands(manager).run(1, "/delete broken")
    await manager_commands(manager).run(1, prompt.choices[0].command)
    assert not manager.exists("broken") and (tmp_path / "sessions/broken").is_dir()


def manager_commands(manager: SessionManager) -> Commands:
    return Commands(manager)


async def test_a_torn_line_from_a_crash_is_skipped_not_damage(tmp_path):
    first, _, _ = make_manager(tmp_path)
    first.create("default")
    inbox = tmp_path / STATE / "default/inbox.jsonl"
    inbox.write_text('{"op": "add", "id": "1", "chat_id": 5, "content": "queued"}\n{"op": "add", "id": "2", "ch')
    manager, _, _ = make_manager(tmp_path)
    deliveries = await manager.recover()
    assert [d.content for d in deliveries] == ["queued"] and manager.status("default").damage is None
    await drain(deliveries[0])
    await manager.close_all()


@pytest.mark.parametrize(
    "text",
    ["nonsense", "[1]", '{"1": "work", "x": "work", "2": 5, "3": "Bad Name", "-100": "work"}'],
)
async def test_a_damaged_chats_file_keeps_the_routes_it_can_read(tmp_path, caplog, text):
    first, _, _ = make_manager(tmp_path)
    first.create("work")
    (tmp_path / "sessions/.bot/chats.json").write_text(text)

    manager, _, _ = make_manager(tmp_path)

    readable = text.startswith("{")
    assert manager.active_session(1) == ("work" if readable else None)
    assert manager.active_session(-100) is None  # a group never reaches a session that is not its own
    assert manager.active_session(2) is None and manager.active_session(3) is None
    assert "chats.json" in caplog.text
    assert not result_of(await drain(await manager.send(2, "hi"))).is_error
    await manager.close_all()


async def test_folders_of_real_projects_are_never_sessions(tmp_path):
    projects = tmp_path / "sessions"
    (projects / "website/src").mkdir(parents=True)
    (projects / "default").mkdir()
    (projects / "default/README").write_text("mine")

    manager, _, _ = make_manager(tmp_path)

    assert manager.list_sessions() == [] and not manager.exists("website")
    with pytest.raises(SessionError, match="already exists in the sessions directory and is not a session"):
        manager.create("website")
    with pytest.raises(SessionError, match="not a session"):
        await manager.send(1, "hello")  # the default session's folder is someone's project
    with pytest.raises(SessionError, match="No session named 'website'"):
        await manager.delete("website")
    assert (projects / "website/src").is_dir() and (projects / "default/README").read_text() == "mine"


async def test_delete_leaves_a_workspace_the_bot_did_not_create(tmp_path):
    manager, _, _ = make_manager(tmp_path)
    manager.create("work")
    metadata = tmp_path / STATE / "work/metadata.json"
    metadata.write_text(json.dumps(json.loads(metadata.read_text()) | {"created_workspace": False}))
    manager, _, _ = make_manager(tmp_path)

    await manager.delete("work")

    assert not manager.exists("work") and (tmp_path / "sessions/work/files").is_dir()
    assert not (tmp_path / STATE / "work").exists()


async def test_an_old_install_is_moved_to_the_state_folder_and_loses_nothing(tmp_path):
    old = tmp_path / "sessions/work"
    (old / "files").mkdir(parents=True)
    (old / "notes.md").write_text("Claude's own work")
    meta = {"name": "work", "created": 1.0, "last_active": 2.0, "turns": 3, "claude_session_id": "c1"}
    (old / "metadata.json").write_text(json.dumps(meta))
    (old / "inbox.jsonl").write_text(json.dumps({"op": "add", "id": "1", "chat_id": 5, "content": "waiting"}) + "\n")
    (old / "claude.pid").write_text("999999999\n")
    (tmp_path / "sessions/chats.json").write_text('{"5": "work"}')

    manager, spawner, _ = make_manager(tmp_path)

    assert sorted(p.name for p in old.iterdir()) == ["files", "notes.md"]
    state = tmp_path / STATE / "work"
    assert sorted(p.name for p in state.iterdir()) == ["claude.pid", "inbox.jsonl", "metadata.json"]
    moved = json.loads((state / "metadata.json").read_text())
    assert moved["workspace"] == str(old) and moved["created_workspace"] is False and len(moved["instance"]) == 8
    assert manager.active_session(5) == "work" and manager.status("work").turns == 3
    assert manager.reap_leftovers() == [] and not (state / "claude.pid").exists()
    [delivery] = await manager.recover()
    assert not result_of(await drain(delivery)).is_error
    assert spawner.started[0].options.cwd == old and spawner.started[0].received == ["waiting"]
    await manager.close_all()


# ---- start failures are told and the next message works ----------------------------------------------------


async def test_a_nul_byte_in_the_persona_is_a_clear_start_error_and_the_next_message_works(tmp_path):
    personas = {"default": Persona("default", "", ""), "bad": Persona("bad", "", "be\x00 nice")}
    manager = SessionManager(
        tmp_path / "sessions",
        spawn=lambda options, on_status: ClaudeSubprocess(options, on_status),  # the real one: exec refuses
        base_options=base_options(tmp_path),
        personas=personas,
    )
    manager.create("default", "bad")
    result = result_of(await drain(await manager.send(1, "hi")))
    assert result.subtype == START_FAILED and "contains a NUL byte" in result.text and "next message" in result.text
    assert manager.status("default").state is SessionState.FAILED

    await manager.set_persona("default", "default")  # the cause is gone: this start reaches exec (no CLI there)
    result = result_of(await drain(await manager.send(1, "again")))
    assert result.subtype == START_FAILED and "NUL" not in result.text
    await manager.close_all()


async def test_a_missing_workspace_is_a_clear_start_error_and_the_next_message_works(tmp_path):
    manager = SessionManager(
        tmp_path / "sessions",
        spawn=lambda options, on_status: ClaudeSubprocess(options, on_status),
        base_options=base_options(tmp_path),
        personas={"default": Persona("default", "", "")},
    )
    manager.create("default")
    workspace = tmp_path / "sessions/default"
    workspace.rename(tmp_path / "moved-away")
    result = result_of(await drain(await manager.send(1, "hi")))
    assert result.subtype == START_FAILED and f"The session directory {workspace} does not exist" in result.text

    (tmp_path / "moved-away").rename(workspace)  # back: this start gets past the folder (and finds no CLI here)
    result = result_of(await drain(await manager.send(1, "again")))
    assert "does not exist" not in result.text and "/nonexistent/claude" in result.text
    await manager.close_all()


RUNNING_AS_ROOT = os.geteuid() == 0


@pytest.mark.parametrize("cause", ["read-only", "disk full"])
async def test_an_unwritable_state_folder_is_a_clear_start_error_and_the_next_message_works(
    tmp_path, monkeypatch, cause
):
    """Not root: a real read-only folder (chmod). Root ignores file modes, so there a fake write raises instead."""
    manager, spawner, _ = make_manager(tmp_path)
    manager.create("default")
    state = tmp_path / STATE / "default"
    real_write = pidfile.write
    failing = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(state / "claude.pid"))
    if cause == "read-only" and not RUNNING_AS_ROOT:
        state.chmod(0o500)
    else:
        if cause == "read-only":
            failing = PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(state / "claude.pid"))

        def write(path: Path, pid: int, marker: str | None = None) -> pidfile.PidRecord:
            raise failing

        monkeypatch.setattr(pidfile, "write", write)
    try:
        result = result_of(await drain(await manager.send(1, "hi")))
    finally:
        state.chmod(0o700)
        monkeypatch.setattr(pidfile, "write", real_write)

    words = "cannot write its state" if cause == "read-only" else "the disk is full"
    assert result.subtype == START_FAILED and words in result.text and "claude.pid" in result.text
    assert spawner.started[0].stopped  # the process that started is not left running
    assert not result_of(await drain(await manager.send(1, "again"))).is_error
    await manager.close_all()


# ---- caps -------------------------------------------------------------------------------------------------


async def test_a_full_queue_refuses_the_next_message_and_stores_nothing(tmp_path):
    manager, spawner, _ = make_manager(tmp_path, max_queued=2)
    spawner.enqueue(["hold"])
    running = await manager.send(1, "running")
    first_events = running.events()
    await anext(first_events)  # the notice that made the default session
    await anext(first_events)  # the turn began: the worker holds it, the queue is empty
    waiting = [await manager.send(1, f"waiting {n}") for n in range(2)]
    inbox = tmp_path / STATE / "default/inbox.jsonl"
    before = inbox.read_bytes()

    with pytest.raises(SessionError, match=r"queue of session “default” is full \(2 messages waiting\)"):
        await manager.send(1, "one too many")

    assert inbox.read_bytes() == before
    spawner.release.set()
    for delivery in (running, *waiting):
        assert not result_of(await drain(delivery)).is_error
    await manager.close_all()


async def test_the_number_of_sessions_is_capped(tmp_path):
    manager, _, _ = make_manager(tmp_path, max_sessions=2)
    manager.create("a")
    manager.create("b")
    with pytest.raises(SessionError, match="already 2 sessions \\(MAX_SESSIONS\\); /delete one"):
        manager.create("c")
    with pytest.raises(SessionError, match="MAX_SESSIONS"):
        await manager.send(1, "the default session would be the third")
    await manager.delete("a")
    manager.create("c")


def test_the_caps_are_strictly_parsed_settings():
    base = {"TELEGRAM_BOT_TOKEN": "1:x", "ALLOWED_USER_IDS": "1"}
    settings = load_settings(base, dotenv_path=None)
    assert (settings.max_queued, settings.max_sessions) == (20, 50)
    settings = load_settings(base | {"MAX_QUEUED": "5", "MAX_SESSIONS": "7"}, dotenv_path=None)
    assert (settings.max_queued, settings.max_sessions) == (5, 7)
    for bad in ("0", "-1", "2.5", "lots", "５"):
        with pytest.raises(Exception, match="MAX_QUEUED"):
            load_settings(base | {"MAX_QUEUED": bad}, dotenv_path=None)


# ---- the pid file -----------------------------------------------------------------------------------------


def test_a_pid_file_names_one_process_by_start_time_and_marker(tmp_path):
    sleeper = subprocess.Popen(
        [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(30)"],
        env=os.environ | {MARKER_ENV: "m-123"},
        stdout=subprocess.PIPE,
    )
    try:
        # Popen returns once exec began; the new environment is readable in /proc only once exec has set it up.
        assert sleeper.stdout and sleeper.stdout.readline() == b"up\n"
        path = tmp_path / "claude.pid"
        written = pidfile.write(path, sleeper.pid)
        record = pidfile.read(path)
        assert record == written and record.marker == "m-123" and record.start_time is not None
        assert pidfile.still_ours(record)
        assert not pidfile.still_ours(pidfile.PidRecord(sleeper.pid, record.start_time + 1, "m-123"))  # pid reused
        assert not pidfile.still_ours(pidfile.PidRecord(sleeper.pid, record.start_time, "someone-else"))
        path.write_text(f"{sleeper.pid}\n")  # the older form: left to the caller's cmdline check
        assert pidfile.read(path) == pidfile.PidRecord(sleeper.pid)
        path.write_text("{garbage")
        assert pidfile.read(path) is None
    finally:
        sleeper.kill()
        sleeper.wait()
    assert not pidfile.still_ours(written)  # gone


def test_reaping_leaves_a_reused_pid_alone(tmp_path):
    manager, _, _ = make_manager(tmp_path)
    manager.create("default")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        started = pidfile.start_time(sleeper.pid)
        assert started is not None
        pid_path = tmp_path / STATE / "default/claude.pid"
        pid_path.write_text(json.dumps({"pid": sleeper.pid, "start_time": started - 1, "marker": "gone"}))
        assert manager.reap_leftovers() == []
        assert sleeper.poll() is None and not pid_path.exists()
    finally:
        sleeper.kill()
        sleeper.wait()
