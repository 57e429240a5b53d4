"""Claude's commands and schedules wired through the sessions and command layers (fake process, fake clock): the menu a
place is shown, typed Claude commands, prompts on a schedule from two places, and Claude's own crons."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio

from claude_bridge.commands.core import Commands
from claude_bridge.commands.schedules import Runner
from claude_bridge.errors import SessionError
from claude_bridge.protocol.claude_schedules import ClaudeScheduleBook
from claude_bridge.protocol.events import SessionStarted, ToolResult, ToolUse
from claude_bridge.sessions.frontend import ClaudeCommands
from claude_bridge.sessions.manager import SessionManager
from claude_bridge.sessions.place import Author, Place
from claude_bridge.sessions.schedules import Schedules
from claude_bridge.sessions.worker import Delivery
from fake_process import FakeClock, FakeSpawner, Shown, base_options, drain, result_of

pytestmark = pytest.mark.fast

PRIVATE = Place(7)
TOPIC = Place(-100, 42)
BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 12, 7, 10, 0, tzinfo=BERLIN)
INIT = SessionStarted(
    "conv-1", "m", "/w", "default", "2.1.332",
    slash_commands=("hello-world", "compact", "clear"), skills=("code-review",), terminal_slash_commands=(),
)


class World:
    """A manager over fake processes, its schedules (not started: tests fire them), and the commands."""

    def __init__(self, tmp_path: Path) -> None:
        self.spawner, self.clock, self.shown = FakeSpawner(), FakeClock(), Shown()
        self.manager = SessionManager(
            tmp_path / "sessions",
            spawn=self.spawner,
            base_options=base_options(tmp_path),
            clock=self.clock,
            idle_after=600,
            front_end=self.shown,
        )
        self.ran: list[tuple[Delivery, str]] = []
        self.runner = Runner(self.manager, lambda delivery, heading: self.ran.append((delivery, heading)))
        self.schedules = Schedules(tmp_path / "schedules.sqlite", self.runner, BERLIN, clock=lambda: NOW)
        self.commands = Commands(self.manager, clock=self.clock, schedules=self.schedules)

    async def run(self, line: str, where: Place = PRIVATE) -> str:
        return (await self.commands.run(where.where, line)).text


@pytest_asyncio.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    made = World(tmp_path)
    await made.schedules.start(run=False)
    yield made
    await made.schedules.shutdown()
    await made.manager.close_all()


# -- the menu --


async def test_init_shows_its_commands_to_the_place_and_switch_shows_the_other_sessions(world):
    world.spawner.enqueue([INIT])
    await drain(await world.manager.send(PRIVATE.where, "hello"))

    assert world.shown.menus[-1] == (PRIVATE, "default", ClaudeCommands(("hello-world", "compact", "clear"),
                                                                         ("code-review",), ()))
    await world.run("/new other")
    assert world.shown.menus[-1] == (PRIVATE, "other", ClaudeCommands())  # not started yet: the bot's own only
    await world.run("/switch default")
    assert world.shown.menus[-1][1:] == ("default", world.manager.claude_commands("default"))


async def test_a_typed_claude_command_is_mapped_back_and_ours_or_unknown_ones_are_not(world):
    # A session that never started has no known commands: a typo there is the bot's "unknown command".
    assert world.commands.claude_line(PRIVATE.where, "/hello-world x") is None
    world.spawner.enqueue([INIT])
    await drain(await world.manager.send(PRIVATE.where, "hello"))

    assert world.commands.claude_line(PRIVATE.where, "/hello_world alpha beta") == "/hello-world alpha beta"
    assert world.commands.claude_line(PRIVATE.where, "/code_review") == "/code-review"
    assert world.commands.claude_line(PRIVATE.where, "/clear") is None  # left out: it cannot work from a chat
    assert world.commands.claude_line(PRIVATE.where, "/nonsense") is None


async def test_claudes_commands_are_known_after_a_restart_before_the_next_init(world, tmp_path):
    world.spawner.enqueue([INIT])
    await drain(await world.manager.send(PRIVATE.where, "hello"))
    await world.manager.close_all()

    again = World(tmp_path)
    assert again.commands.claude_line(PRIVATE.where, "/hello_world x") == "/hello-world x"
    await again.manager.close_all()


# -- prompts on a schedule --


async def test_schedules_belong_to_the_place_that_made_them(world):
    here = await world.run("/at +10m check the build")
    there = await world.run("/every 2h run the tests", TOPIC)
    assert "\n⏰ Scheduled in session default, at 2026-12-07 10:10:00: check the build\nnext: Mon 2026-12-07" in here
    assert "Created session “topic-42” for this topic" in there
    assert "⏰ Scheduled in session topic-42, every 2h" in there

    listing = await world.commands.run(PRIVATE.where, "/schedules")
    assert "check the build" in listing.text and "run the tests" not in listing.text
    [mine] = world.schedules.of(PRIVATE)
    [theirs] = world.schedules.of(TOPIC)

    refused = await world.run(f"/schedules delete {theirs.id}")
    assert refused == "That schedule is not here any more." and world.schedules.of(TOPIC) == [theirs]
    assert (await world.commands.run(PRIVATE.where, listing.choices[0].command)).text.startswith("🗑 Deleted")
    assert world.schedules.of(PRIVATE) == [] and mine.id not in {s.id for s in world.schedules.of(TOPIC)}


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("/every 5x check", "Unknown interval"),
        ("/every 30s check", "at least every minute"),
        ("/at 2020-01-01 09:00 check", "past"),
        ('/cron "0 9 * *" check', "5 fields"),
        ("/at +10m", "prompt is empty"),
        ("/every", "Usage"),
    ],
)
async def test_bad_input_gets_one_line_and_stores_nothing(world, line, says):
    answer = await world.run(line)

    assert answer.startswith("⚠️") and says in answer and "\n" not in answer
    assert world.schedules.of(PRIVATE) == []


async def test_more_than_the_limit_in_a_place_is_refused(tmp_path):
    world = World(tmp_path)
    world.schedules = Schedules(tmp_path / "s.sqlite", world.runner, BERLIN, clock=lambda: NOW, max_per_place=2)
    world.commands = Commands(world.manager, schedules=world.schedules)
    await world.schedules.start(run=False)
    await world.run("/at +10m one")
    await world.run("/at +10m two")

    assert "already has 2 schedules" in await world.run("/at +10m three")
    assert len(world.schedules.of(PRIVATE)) == 2 and "three" in await world.run("/at +10m three", TOPIC)
    await world.schedules.shutdown()
    await world.manager.close_all()


async def test_a_fired_prompt_enters_its_session_from_its_place_even_when_another_is_active(world):
    await world.run("/at +10m summarise the log", TOPIC)
    [schedule] = world.schedules.of(TOPIC)
    await world.run("/new other", TOPIC)  # the topic now talks to another session

    await world.schedules.fire(schedule, timedelta(minutes=2))

    [(delivery, heading)] = world.ran
    assert delivery.place == TOPIC and delivery.session == schedule.session != "other"
    assert heading == "⏰ summarise the log (runs 2 min late: the bot was down)"
    assert result_of(await drain(delivery)).text == "ok"
    assert world.spawner.started[0].received == ["summarise the log"]


async def test_a_groups_schedules_say_who_made_each(world):
    await world.commands.run(TOPIC.where, "/every 1h check the build", by=Author(5, "Ann Lee"))
    await world.commands.run(TOPIC.where, "/at +10m ship it", by=Author(6, "Bob"))
    await world.commands.run(PRIVATE.where, "/every 2h my own", by=Author(5, "Ann Lee"))

    there = await world.run("/schedules", TOPIC)
    here = await world.run("/schedules")

    assert "1. [topic-42] at 2026-12-07 10:10:00: ship it\n   next: Mon 2026-12-07 10:10 · by Bob\n" in there
    assert there.endswith("2. [topic-42] every 1h: check the build\n   next: Mon 2026-12-07 11:00 · by Ann Lee")
    assert "my own" not in there and here.endswith("my own\n   next: Mon 2026-12-07 12:00 · by Ann Lee")


async def test_a_deleted_sessions_schedules_go_and_their_place_is_told(world):
    await world.run("/every 1h ping", TOPIC)
    await world.run("/every 1h pong", TOPIC)
    with pytest.raises(SessionError, match="no session named “topic-42” here"):
        await world.run("/switch topic-42")  # another place never reaches the topic's session (or its schedules)

    reply = await world.run("/delete topic-42 confirm " + world.manager.status("topic-42").instance, TOPIC)

    assert "ping" in reply and "pong" in reply and world.schedules.of(TOPIC) == [] and world.shown.told == []


async def test_a_schedule_whose_session_is_gone_is_removed_when_it_fires(world):
    await world.run("/every 1h ping", TOPIC)
    [schedule] = world.schedules.of(TOPIC)
    await world.manager.delete(schedule.session)  # not through /delete: its schedule is still kept

    await world.schedules.fire(schedule, None)

    assert world.ran == [] and world.schedules.of(TOPIC) == []
    gone = "🗑 ⏰ ping: session topic-42 no longer exists, so this schedule was removed."
    assert world.shown.told[-1] == (TOPIC, gone)


# -- Claude's own schedules --


def test_claudes_crons_and_wakeups_are_read_from_its_tool_calls_as_measured():
    now = [NOW.timestamp()]
    book = ClaudeScheduleBook(lambda: now[0])
    book.restarted()  # its process runs (the first start)
    calls = [
        (ToolUse("t1", "CronCreate", {"cron": "*/5 * * * *", "prompt": "check the build", "recurring": True}),
         "Scheduled recurring job 9252735c (Every 5 minutes). Next run: Dec 6 12:05am. Session-only (not written "
         "to disk, dies when Claude exits). Auto-expires after 30 days. Use CronDelete to cancel sooner."),
        (ToolUse("t2", "CronCreate", {"cron": "30 14 24 12 *", "prompt": "once only", "recurring": False}),
         "Scheduled one-shot task 0d67bd82 (30 14 24 12 *). Session-only …"),
        (ToolUse("t3", "ScheduleWakeup", {"delaySeconds": 600, "prompt": "wake up"}),
         "Next wakeup scheduled for 00:10:00 (in 609s). If you owe the user …"),
        (ToolUse("t4", "ScheduleWakeup", {"delaySeconds": 600, "prompt": "not on 2.1.197"}),
         "Wakeup not scheduled. Either the /loop dynamic runtime gate is off …"),
    ]
    for use, text in calls:
        book.saw(use)
        book.saw(ToolResult(use.id, False, text))

    assert [(s.id, s.recurring) for s in book.pending()] == [
        ("9252735c", True), ("0d67bd82", False), ("wakeup-t3", False)
    ]
    assert book.pending()[2].due == now[0] + 609  # the time the CLI said, not the delay asked for
    book.saw(ToolUse("t5", "CronDelete", {"id": "nope1234"}))
    book.saw(ToolResult("t5", True, "<tool_use_error>No scheduled job with id 'nope1234'</tool_use_error>"))
    now[0] += 3600  # the wakeup's time has passed: the CLI fired and forgot it
    assert [s.id for s in book.pending()] == ["9252735c", "0d67bd82"]
    now[0] += 30 * 86400  # the CLI deletes a recurring cron by itself after 30 days (2.1.197: 7)
    assert [s.id for s in book.pending()] == []
    assert not book.restorable()


async def test_claudes_pending_schedule_keeps_its_session_from_idle_suspension_and_shows_in_tasks(world):
    cron = ToolUse("t1", "CronCreate", {"cron": "*/5 * * * *", "prompt": "check the build", "recurring": True})
    world.spawner.enqueue([cron, ToolResult("t1", False, "Scheduled recurring job 9252735c (Every 5 minutes).")])
    await drain(await world.manager.send(PRIVATE.where, "check the build every 5 minutes"))

    world.clock.advance(3600)
    assert await world.manager.suspend_idle() == []
    tasks = await world.run("/tasks")
    assert "Claude's own schedules in “default”:\n• ⏰ cron */5 * * * * (recurring, 9252735c): check the build" in tasks

    deleted = ToolUse("t2", "CronDelete", {"id": "9252735c"})
    world.spawner.enqueue([deleted, ToolResult("t2", False, "Cancelled job 9252735c.")])
    await drain(await world.manager.send(PRIVATE.where, "stop checking"))
    world.clock.advance(3600)
    assert await world.manager.suspend_idle() == ["default"]
