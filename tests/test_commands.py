"""The command layer both front ends use, driven directly against a SessionManager with a fake process and clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from claude_bridge.commands import catalog
from claude_bridge.commands.core import Commands, parse
from claude_bridge.commands.reply import Choice, Reply
from claude_bridge.commands.wording import ago
from claude_bridge.errors import SessionError
from claude_bridge.sessions.manager import SessionManager
from claude_bridge.sessions.store import Persona
from fake_process import FakeClock, FakeSpawner, base_options

pytestmark = pytest.mark.fast

CHAT = 7
PERSONAS = {
    "default": Persona("default", "plain", ""),
    "poet": Persona("poet", "rhymes", "Answer in rhyme."),
}


class World:
    """A manager over fake processes, the commands on top of it, and the fakes to steer them."""

    def __init__(self, tmp_path: Path) -> None:
        self.spawner, self.clock = FakeSpawner(), FakeClock()
        self.manager = SessionManager(
            tmp_path / "sessions",
            spawn=self.spawner,
            base_options=base_options(tmp_path),
            personas=dict(PERSONAS),
            clock=self.clock,
        )
        self.commands = Commands(self.manager, clock=self.clock)

    async def run(self, line: str, chat_id: int = CHAT) -> Reply:
        return await self.commands.run(chat_id, line)

    async def pick(self, reply: Reply, label: str) -> Reply:
        """What pressing the button (or typing the number) of the choice labelled `label` does."""
        choice = next(choice for choice in reply.choices if choice.label == label)
        return await self.run(choice.command)

    async def talk(self, text: str, chat_id: int = CHAT) -> None:
        delivery = await self.manager.send(chat_id, text)
        async for _ in delivery.events():
            pass


@pytest_asyncio.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    made = World(tmp_path)
    yield made
    await made.manager.close_all()


@pytest.mark.parametrize("command", ["/status", "/model", "/persona", "/stop", "/sessions", "/switch"])
async def test_a_session_command_on_a_fresh_chat_acts_on_a_new_default_session(world, command):
    reply = await world.run(command)

    assert reply.text.startswith("ℹ️ Created session “default” and made it active.")
    assert world.manager.active_session(CHAT) == "default"
    shown = reply.text.split("\n", 1)[1] + " ".join(choice.label for choice in reply.choices)
    assert "default" in shown


async def test_a_fresh_chat_gets_a_session_of_its_own_not_the_default_another_chat_made(world):
    await world.talk("hello", chat_id=1)

    reply = await world.run("/status")

    assert reply.text.startswith("ℹ️ Created session “chat-7” for this chat")
    assert "Turns: 0" in reply.text
    assert [line.split()[1] for line in (await world.run("/sessions")).text.splitlines()[1:]] == ["chat-7"]


async def test_model_offers_the_aliases_and_picking_one_sets_it_on_the_live_process(world):
    await world.talk("warm up")

    shown = await world.run("/model")
    assert [choice.label for choice in shown.choices] == ["sonnet", "opus", "haiku", "default"]
    assert "Model of “default”: CLI default (persona / CLI default)" in shown.text
    picked = await world.pick(shown, "haiku")

    assert picked.text == "🧠 Model of “default” is now haiku."
    assert world.spawner.started[0].models[-1] == "haiku"
    assert (await world.pick(await world.run("/model"), "default")).text.endswith("is now CLI default.")


async def test_persona_lists_descriptions_and_a_pick_restarts_the_session_with_it(world):
    await world.talk("hi")

    shown = await world.run("/persona")
    picked = await world.pick(shown, "poet")
    await world.talk("again")

    assert "• poet — rhymes" in shown.text
    assert picked.text == "🎭 Persona of “default” is now poet; it applies from the next message."
    assert world.spawner.started[-1].options.append_system_prompt.startswith("Answer in rhyme.\n\n")


async def test_new_names_sessions_in_order_and_switch_offers_them_with_the_active_one_marked(world):
    assert (await world.run("/new")).text == "✨ New session “s1” (persona default) is now active."
    await world.run("/new s2 Poet")
    world.clock.advance(5)
    await world.run("/new work")

    shown = await world.run("/switch")
    picked = await world.pick(shown, "s1")

    assert {choice.command for choice in shown.choices} == {"/switch s1", "/switch s2", "/switch work"}
    assert [c.label for c in shown.choices if c.label.startswith("•")] == ["• work"]
    assert picked.text == "➡️ Active session: “s1” (suspended, persona default)."
    assert world.manager.status("s2").persona == "poet"
    assert world.manager.active_session(CHAT) == "s1"


async def test_sessions_lists_each_with_state_cost_and_how_long_ago(world):
    await world.talk("hi")
    await world.run("/new other")
    world.clock.advance(600)

    text = (await world.run("/sessions")).text

    assert text.splitlines()[0] == "Sessions:"
    assert "▶️ other — suspended; default, CLI default; 0 turns, $0.0000; active 10 min ago" in text
    assert "• default — live; default, CLI default; 1 turns, $0.0100; active 10 min ago" in text


async def test_stop_interrupts_the_running_answer_and_says_when_nothing_runs(world):
    await world.run("/new work")
    world.spawner.enqueue(["hold"])
    stream = aiter((await world.manager.send(CHAT, "slow")).events())
    await anext(stream)  # the turn has started: the process is busy

    assert (await world.run("/stop")).text == "⏹ Stopping “work”…"
    assert [event async for event in stream][-1].stopped
    assert (await world.run("/stop work")).text == "Nothing is running in “work”."
    assert world.spawner.interrupts == 1


async def test_delete_asks_first_then_the_confirming_choice_deletes(world, tmp_path):
    await world.run("/new scratch")

    asked = await world.run("/delete scratch")
    assert "cannot be undone" in asked.text
    assert (await world.pick(asked, "Cancel")).text == "Cancelled."
    assert (tmp_path / "sessions/scratch").is_dir()
    deleted = await world.pick(asked, "🗑 Delete scratch")

    assert deleted.text == "🗑 Deleted session “scratch”."
    assert not (tmp_path / "sessions/scratch").exists()


async def test_an_old_delete_button_cannot_delete_a_newer_session_of_the_same_name(world, tmp_path):
    await world.run("/new scratch")
    old_prompt = await world.run("/delete scratch")
    await world.pick(old_prompt, "🗑 Delete scratch")
    await world.run("/new scratch")
    (tmp_path / "sessions/scratch/keep.txt").write_text("new work")

    with pytest.raises(SessionError, match="This button is for an earlier session named scratch; nothing was deleted"):
        await world.pick(old_prompt, "🗑 Delete scratch")
    assert (tmp_path / "sessions/scratch/keep.txt").read_text() == "new work"
    again = await world.run("/delete scratch confirm")  # typed without the id: it only asks again
    assert "cannot be undone" in again.text and world.manager.exists("scratch")


async def test_wrong_arguments_get_the_usage_line_from_the_catalog(world):
    wrong = [("/new a b c", "new"), ("/delete", "delete"), ("/delete x now", "delete"), ("/model a b", "model")]
    for line, name in wrong:
        assert (await world.run(line)).text == f"Usage: {catalog.BY_NAME[name].usage}"
    assert (await world.run("/frobnicate")).text == "Unknown command /frobnicate. /help lists them."


async def test_refusals_from_the_sessions_layer_stay_errors_for_the_front_end(world):
    with pytest.raises(SessionError, match="no session named “nowhere” here"):
        await world.run("/switch nowhere")
    with pytest.raises(SessionError, match="1–32 characters"):
        await world.run("/new Bad_Name")
    with pytest.raises(SessionError, match="no session named “ghost” here"):
        await world.run("/delete ghost")


async def test_every_choice_command_fits_telegrams_callback_data_with_the_longest_names(world):
    longest = "a" * 32
    await world.run(f"/new {longest}")

    replies = [await world.run(line) for line in ("/switch", "/model", "/persona", f"/delete {longest}")]

    commands = [choice.command for reply in replies for choice in reply.choices]
    instance = world.manager.status(longest).instance
    assert f"/delete {longest} confirm {instance}" in commands and len(instance) == 8
    assert all(len(command.encode()) <= 64 for command in commands)
    with pytest.raises(ValueError):
        Choice("too long", "/model " + "x" * 60)


def test_a_command_addressed_to_the_bot_in_a_group_is_parsed_like_a_plain_one():
    assert parse("/Model@claude_bot haiku") == ("model", ["haiku"])
    assert parse("  /status  ") == ("status", [])
    assert parse("") == ("", [])


async def test_help_start_and_the_menu_come_from_one_catalog(world):
    help_text = (await world.run("/help")).text
    start = (await world.run("/start")).text

    assert start == f"{catalog.GREETING}\n\n{help_text}"
    for spec in catalog.SPECS:
        assert world.commands.knows(spec.name)
        assert (spec.usage in help_text) == spec.in_help
    assert dict(catalog.menu())["model"] == "Show or change the model: " + catalog.BY_NAME["model"].usage
    assert "cancel" not in dict(catalog.menu())


def test_ago_reads_like_a_person_would_say_it():
    assert [ago(s) for s in (40, 300, 3 * 3600, 2 * 86400)] == ["40 s ago", "5 min ago", "3 h ago", "2 d ago"]
