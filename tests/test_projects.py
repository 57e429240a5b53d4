"""Project folders and earlier conversations, without a CLI: the path rules, PROJECT_ROOTS, the transcript reader,
the --resume argv, and the manager and commands over a fake process."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
import pytest_asyncio

from claude_bridge.commands.core import Commands
from claude_bridge.errors import BridgeError, ConfigError, SessionError
from claude_bridge.process.argv import build_argv
from claude_bridge.sessions.manager import SessionManager
from claude_bridge.sessions.projects import looks_like_folder, project_folder
from claude_bridge.sessions.store import Persona
from claude_bridge.sessions.transcripts import MAX_LINE, MAX_SCAN, escape, list_conversations, read_conversation
from claude_bridge.settings import load_settings
from conftest import ROOT
from fake_process import FakeClock, FakeSpawner, base_options

pytestmark = pytest.mark.fast

CHAT = 7


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "code/app/sub").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    return tmp_path / "code"


# ---- the path rules ----


def test_absolute_tilde_and_relative_folders_resolve_inside_the_root(root, tmp_path):
    assert project_folder(str(root / "app"), [root], home=tmp_path) == (root / "app").resolve()
    assert project_folder("~/code/app", [root], home=tmp_path) == (root / "app").resolve()
    assert project_folder("app/sub", [root], home=tmp_path) == (root / "app/sub").resolve()
    assert project_folder("./app", [root], home=tmp_path) == (root / "app").resolve()


def test_a_symlink_inside_the_root_that_leads_outside_is_refused(root, tmp_path):
    (root / "escape").symlink_to(tmp_path / "outside")

    with pytest.raises(SessionError, match="outside the project folders"):
        project_folder("escape", [root], home=tmp_path)


def test_dot_dot_out_of_the_root_is_refused(root, tmp_path):
    with pytest.raises(SessionError, match="outside the project folders"):
        project_folder("app/../../outside", [root], home=tmp_path)
    assert project_folder("app/../app/sub", [root], home=tmp_path) == (root / "app/sub").resolve()


def test_a_missing_folder_a_file_and_another_users_home_are_refused_with_the_reason(root, tmp_path):
    (root / "notes.txt").write_text("x")
    with pytest.raises(SessionError, match="There is no folder"):
        project_folder("nowhere", [root], home=tmp_path)
    with pytest.raises(SessionError, match="is a file, not a folder"):
        project_folder("notes.txt", [root], home=tmp_path)
    with pytest.raises(SessionError, match="only ~/"):
        project_folder("~root/x", [root], home=tmp_path)
    with pytest.raises(SessionError, match="PROJECT_ROOTS"):
        project_folder("app", [], home=tmp_path)


def test_a_folder_that_is_lies_in_or_holds_the_bots_own_is_never_a_project(root, tmp_path):
    (root / "sessions/.bot/sessions").mkdir(parents=True)
    forbidden = {root / "sessions": "the sessions folder (SESSIONS_DIR)"}

    with pytest.raises(SessionError, match=r"sessions/.bot is inside the sessions folder \(SESSIONS_DIR\)"):
        project_folder("sessions/.bot", [root], home=tmp_path, forbidden=forbidden)
    with pytest.raises(SessionError, match=r"code contains the sessions folder .*holds the bot's .env"):
        project_folder(str(root), [root], home=tmp_path, forbidden=forbidden)
    assert project_folder("app", [root], home=tmp_path, forbidden=forbidden) == (root / "app").resolve()


def test_a_folder_argument_is_told_from_a_persona_name():
    assert all(looks_like_folder(arg) for arg in ("/srv/x", "~/x", "~", "./x", "../x", "app/sub"))
    assert not any(looks_like_folder(arg) for arg in ("poet", "brainstorm", "default"))


# ---- PROJECT_ROOTS ----


def test_project_roots_default_to_home_and_are_parsed_strictly(root, tmp_path):
    base = {"HOME": str(tmp_path)}
    assert load_settings(base, None, require_telegram=False).project_roots == (tmp_path.resolve(),)
    homeless = {"HOME": str(tmp_path / "no-such-home")}
    assert load_settings(homeless, None, require_telegram=False).project_roots == ()

    both = load_settings(base | {"PROJECT_ROOTS": f"{root}{os.pathsep}~/outside"}, None, require_telegram=False)
    assert both.project_roots == (root.resolve(), (tmp_path / "outside").resolve())

    with pytest.raises(ConfigError) as caught:
        load_settings(base | {"PROJECT_ROOTS": f"relative{os.pathsep}{tmp_path}/missing"}, None, require_telegram=False)
    assert "'relative' is not an absolute folder" in str(caught.value) and "not an existing folder" in str(caught.value)


# ---- the transcript reader ----


def line(kind: str, **fields: object) -> str:
    return json.dumps({"type": kind, **fields}) + "\n"


def prompt(text: str) -> str:
    return line("user", message={"role": "user", "content": text}, uuid=str(uuid.uuid4()))


def reply(text: str) -> str:
    message = {"id": f"msg_{uuid.uuid4().hex}", "role": "assistant", "content": [{"type": "text", "text": text}]}
    return line("assistant", message=message)


def write_transcript(config: Path, cwd: Path, lines: list[str], mtime: float) -> str:
    session_id = str(uuid.uuid4())
    path = config / "projects" / escape(cwd) / f"{session_id}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(lines))
    os.utime(path, (mtime, mtime))
    return session_id


def test_escaping_replaces_every_non_alphanumeric_character():
    assert escape(Path("/scratch/my.proj_v2/with space")) == "-scratch-my-proj-v2-with-space"


def test_conversations_are_listed_newest_first_with_title_and_message_count(tmp_path):
    cwd = tmp_path / "app"
    cwd.mkdir()
    old = write_transcript(tmp_path, cwd, [prompt("fix the parser"), reply("done"), prompt("thanks"), reply("ok")], 100)
    tool_result = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "x"}]}
    new = write_transcript(
        tmp_path,
        cwd,
        [prompt("<system-reminder>noise</system-reminder>write docs"), line("user", message=tool_result),
         reply("a"), line("ai-title", aiTitle="Writing the docs")],
        200,
    )

    first, second = list_conversations(tmp_path, cwd)

    assert (first.session_id, first.title, first.messages) == (new, "Writing the docs", 2)
    assert (second.session_id, second.title, second.messages) == (old, "fix the parser", 4)
    assert list_conversations(tmp_path, tmp_path / "elsewhere") == []


def test_a_title_the_user_set_wins_and_long_titles_are_cut(tmp_path):
    lines = [prompt("p " * 100), line("ai-title", aiTitle="generated"), line("custom-title", customTitle="Mine")]
    write_transcript(tmp_path, tmp_path, lines, 1)
    write_transcript(tmp_path, tmp_path, [prompt("word " * 100)], 2)

    long, mine = list_conversations(tmp_path, tmp_path)

    assert mine.title == "Mine"
    assert len(long.title) == 80 and long.title.endswith("…")


def test_garbage_and_huge_lines_are_skipped_and_a_file_without_prompts_is_left_out(tmp_path):
    huge = line("user", message={"role": "user", "content": "x" * (MAX_LINE * 2)})
    lines = ["not json\n", "[1, 2]\n", huge, '{"type": "user", "message": 5}\n', prompt("real one"), '{"trunc']
    write_transcript(tmp_path, tmp_path, lines, 2)
    write_transcript(tmp_path, tmp_path, [line("queue-operation", operation="enqueue"), "garbage\n"], 3)
    (tmp_path / "projects" / escape(tmp_path) / "not-a-session.jsonl").write_text(prompt("ignored"))

    [conversation] = list_conversations(tmp_path, tmp_path)

    assert (conversation.title, conversation.messages) == ("real one", 1)


def test_past_the_scan_limit_the_count_is_a_lower_bound_and_the_title_still_comes_from_the_end(tmp_path):
    filler = line("user", message={"role": "user", "content": [{"type": "tool_result", "content": "x" * 500_000}]})
    lines = [prompt("start"), *[filler] * (MAX_SCAN // len(filler) + 2), prompt("late"), line("ai-title", aiTitle="T")]
    write_transcript(tmp_path, tmp_path, lines, 1)

    [conversation] = list_conversations(tmp_path, tmp_path)

    assert (conversation.title, conversation.messages, conversation.complete) == ("T", 1, False)


def test_an_unreadable_transcript_is_none_not_an_error(tmp_path):
    assert read_conversation(tmp_path / "gone.jsonl", 0.0) is None


# ---- argv ----


def test_resume_uses_the_equals_form_and_wins_over_continue(tmp_path):
    options = base_options(tmp_path)
    conversation = str(uuid.uuid4())

    argv = build_argv(options, model=None, continue_conversation=True, resume_id=conversation)

    assert argv[-1] == f"--resume={conversation}" and "--continue" not in argv
    assert build_argv(options, model=None, continue_conversation=True)[-1] == "--continue"
    with pytest.raises(BridgeError):
        build_argv(replace(options), model=None, continue_conversation=True, resume_id="--dangerous")


# ---- the manager and the commands over a fake process ----


class World:
    def __init__(self, tmp_path: Path, root: Path) -> None:
        self.config = tmp_path / "claude-config"
        self.spawner = FakeSpawner()
        self.clock = FakeClock(start=1000.0)
        options = replace(base_options(tmp_path), env={"CLAUDE_CONFIG_DIR": str(self.config), "HOME": str(tmp_path)})
        self.manager = SessionManager(
            tmp_path / "sessions",
            spawn=self.spawner,
            base_options=options,
            personas={"default": Persona("default", "", ""), "poet": Persona("poet", "", "Rhyme.")},
            clock=self.clock,
            project_roots=(root,),
        )
        self.commands = Commands(self.manager, clock=self.clock)

    async def talk(self, text: str) -> None:
        async for _ in (await self.manager.send(CHAT, text)).events():
            pass


@pytest_asyncio.fixture
async def world(tmp_path: Path, root: Path) -> AsyncIterator[World]:
    made = World(tmp_path, root)
    yield made
    await made.manager.close_all()


async def test_new_with_a_folder_and_a_persona_works_there_and_puts_uploads_in_the_state_folder(world, root):
    reply_ = await world.commands.run(CHAT, "/new app ./app poet")
    await world.talk("hello")

    assert "Claude works in" in reply_.text and str(root.resolve() / "app") in reply_.text
    [process] = world.spawner.started
    assert process.options.cwd == root.resolve() / "app" and "Rhyme." in (process.options.append_system_prompt or "")
    assert world.manager.files_dir("app") == world.manager.sessions_dir / ".bot/sessions/app/files"
    assert sorted(p.name for p in (root / "app").iterdir()) == ["sub"]
    assert str(root.resolve() / "app") in (await world.commands.run(CHAT, "/sessions")).text
    assert f"Folder: {root.resolve() / 'app'}" in (await world.commands.run(CHAT, "/status")).text
    question = await world.commands.run(CHAT, "/delete app")
    assert "is left as it is" in question.text
    await world.commands.run(CHAT, question.choices[0].command)
    assert not world.manager.exists("app") and (root / "app/sub").is_dir()


async def test_new_refuses_a_folder_outside_the_roots_and_makes_no_session(world, tmp_path):
    with pytest.raises(SessionError, match="outside the project folders"):
        await world.commands.run(CHAT, f"/new bad {tmp_path / 'outside'}")
    assert not world.manager.exists("bad")


@pytest.mark.parametrize(
    ("folder", "why"),
    [
        (lambda tmp: ROOT, "is inside the bot's own folder"),
        (lambda tmp: ROOT / "personas", "is inside the bot's own folder"),
        (lambda tmp: tmp / "sessions", "is inside the sessions folder"),
        (lambda tmp: tmp, "contains the sessions folder"),
        (lambda tmp: Path("/"), "contains the bot's own folder"),
        (lambda tmp: Path("~"), "contains"),
    ],
)
async def test_new_refuses_the_bots_folder_sessions_dir_and_any_folder_holding_them(tmp_path, root, folder, why):
    world = World(tmp_path, Path("/"))
    try:
        with pytest.raises(SessionError, match=why):
            await world.commands.run(CHAT, f"/new bad {folder(tmp_path)}")
        assert not world.manager.exists("bad")
        await world.commands.run(CHAT, f"/new good {root / 'app'}")
        assert world.manager.exists("good")
    finally:
        await world.manager.close_all()


async def test_new_with_a_persona_only_keeps_todays_fresh_folder(world):
    await world.commands.run(CHAT, "/new plain poet")
    hint = await world.commands.run(CHAT, "/new other app")

    assert world.manager.status("plain").persona == "poet"
    assert (world.manager.sessions_dir / "plain/files").is_dir()
    assert "Unknown persona 'app'" in hint.text and "./path" in hint.text and not world.manager.exists("other")


async def test_resume_lists_the_folders_conversations_and_picking_one_restarts_with_its_id(world, root):
    await world.commands.run(CHAT, "/new app ./app")
    folder = root.resolve() / "app"
    older = write_transcript(world.config, folder, [prompt("the old plan"), reply("ok")], 100)
    write_transcript(world.config, folder, [prompt("the new idea")], 900)
    await world.talk("hello")

    listing = await world.commands.run(CHAT, "/resume")
    assert listing.text.index("the new idea") < listing.text.index("the old plan")
    pick = next(choice for choice in listing.choices if "the old plan" in choice.label)
    assert pick.command == f"/resume {older}"
    answer = await world.commands.run(CHAT, pick.command)
    await world.talk("go on")

    assert "continues conversation" in answer.text
    first, second = world.spawner.started
    assert first.stopped and second.options.resume_id == older and not second.options.continue_conversation
    assert world.manager.status("app").claude_session_id == older


async def test_resume_refuses_an_id_that_is_not_a_conversation_of_this_folder(world):
    await world.commands.run(CHAT, "/new app ./app")

    with pytest.raises(SessionError, match="no conversation"):
        await world.commands.run(CHAT, f"/resume {uuid.uuid4()}")
    with pytest.raises(SessionError, match="no conversation"):
        await world.commands.run(CHAT, "/resume ../../etc/passwd")
    assert "No earlier conversations" in (await world.commands.run(CHAT, "/resume")).text
