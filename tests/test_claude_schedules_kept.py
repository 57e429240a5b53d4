"""Claude's own crons and wakeups outlive the bot (fake process, fake clock): kept on disk per session, the session
started again after a restart so its crons keep firing, what could not come back told once in its home; a reload
keeps everything and tells nothing. From a private chat and a forum topic at once."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from claude_bridge.commands.core import Commands
from claude_bridge.commands.wording import claude_turn_header
from claude_bridge.process.handover import ProcessHandover, SubprocessHandover
from claude_bridge.process.turns import Turn
from claude_bridge.protocol.events import AssistantText, Event, ToolResult, ToolUse, TurnResult
from claude_bridge.sessions.manager import SessionManager
from claude_bridge.sessions.own_schedules import SCHEDULES_FILE, OwnSchedules
from claude_bridge.sessions.place import Place
from fake_process import FakeClock, FakeProcess, FakeSpawner, Shown, base_options, drain

pytestmark = pytest.mark.fast

PRIVATE = Place(7)
TOPIC = Place(-100, 42)


def made(tool_id: str, tool: str, given: dict[str, Any], answer: str) -> list[Event]:
    """Claude calls one of its schedule tools and the CLI answers (as measured on 2.1.332 and 2.1.197)."""
    return [ToolUse(tool_id, tool, given), ToolResult(tool_id, False, answer)]


def at(clock: FakeClock, seconds: float) -> str:
    """A one-shot cron line for `seconds` from the clock's now, in the machine's zone as the CLI reads it."""
    when = datetime.fromtimestamp(clock.now + seconds).astimezone()
    return f"{when.minute} {when.hour} {when.day} {when.month} *"


def claudes_schedules(clock: FakeClock) -> list[Event]:
    """A recurring cron, a one-shot in 10 minutes, one tomorrow, and a wakeup in 20 minutes."""
    return [
        *made("t1", "CronCreate", {"cron": "*/5 * * * *", "prompt": "check the build", "recurring": True},
              "Scheduled recurring job 9252735c (Every 5 minutes). Session-only …"),
        *made("t2", "CronCreate", {"cron": at(clock, 600), "prompt": "call the dentist", "recurring": False},
              "Scheduled one-shot task 0d67bd82 (…). Session-only …"),
        *made("t3", "CronCreate", {"cron": at(clock, 86400), "prompt": "tomorrow's review", "recurring": False},
              "Scheduled one-shot task 5e11aa01 (…). Session-only …"),
        *made("t4", "ScheduleWakeup", {"delaySeconds": 1200, "prompt": "look again", "reason": "poll"},
              "Next wakeup scheduled for 00:20:00 (in 1200s). …"),
    ]


class Bot:
    """One run of the bot minus Telegram: a manager over fake processes on the sessions folder, and its commands."""

    def __init__(self, tmp_path: Path, clock: FakeClock, spawner: FakeSpawner | None = None) -> None:
        self.spawner, self.shown = spawner or FakeSpawner(), Shown()
        self.manager = SessionManager(
            tmp_path / "sessions", spawn=self.spawner, base_options=base_options(tmp_path), clock=clock,
            idle_after=600, front_end=self.shown,
        )
        self.commands = Commands(self.manager, clock=clock)

    async def started(self) -> None:
        """What the bot does at start: re-deliver, and start again the sessions whose Claude crons keep firing."""
        await self.manager.recover()
        await self.manager.claude_schedules_kept()

    async def tasks(self, where: Place) -> str:
        return (await self.commands.run(where.where, "/tasks")).text


async def first_run(tmp_path: Path, clock: FakeClock) -> Bot:
    """The topic's session makes Claude's schedules; the private chat's session only talks."""
    bot = Bot(tmp_path, clock)
    bot.spawner.enqueue(claudes_schedules(clock), [AssistantText("hi")])
    await drain(await bot.manager.send(TOPIC, "remind me of things"))
    await drain(await bot.manager.send(PRIVATE.where, "hello"))
    return bot


def test_the_book_round_trips_to_disk_and_is_written_only_when_it_changes(tmp_path):
    clock = FakeClock()
    kept = OwnSchedules(tmp_path, clock)
    for event in claudes_schedules(clock):
        kept.saw(event)
    kept.saw(ToolUse("t5", "CronCreate", {"cron": "0 9 * * 1-5", "prompt": "stand-up", "recurring": True}))
    written = (tmp_path / SCHEDULES_FILE).stat()

    again = OwnSchedules(tmp_path, clock)  # a reload or a restart reads it back
    again.saw(AssistantText("nothing of Claude's schedules"))
    assert again.pending() == kept.pending()
    assert (tmp_path / SCHEDULES_FILE).stat().st_ino == written.st_ino  # nothing changed: not written again
    again.saw(ToolResult("t5", False, "Scheduled recurring job 77aa00bb (…). Session-only …"))  # the call's answer
    assert [s.id for s in again.pending()] == ["9252735c", "0d67bd82", "5e11aa01", "wakeup-t4", "77aa00bb"]
    assert [s.prompt for s in OwnSchedules(tmp_path, clock).pending()][-1] == "stand-up"


async def test_after_a_restart_the_session_starts_again_for_its_crons_and_home_hears_once_what_was_lost(tmp_path):
    clock = FakeClock()
    first = await first_run(tmp_path, clock)
    await first.manager.close_all()
    clock.advance(900)  # the bot is down while the dentist's one-shot comes due

    second = Bot(tmp_path, clock)
    assert "call the dentist" in await second.tasks(TOPIC)  # no process holds it yet: not taken for fired
    await second.started()

    [process] = second.spawner.started  # only the topic's session, with its conversation: no message written
    assert process.started and process.continued and process.received == []
    lost = "⏰ topic-42: Claude's reminders “call the dentist”, “look again” were lost in the restart."
    assert second.shown.told == [(TOPIC, lost)]
    listed = await second.tasks(TOPIC)
    assert "check the build" in listed and "tomorrow's review" in listed and "dentist" not in listed
    assert "Claude's own schedules" not in await second.tasks(PRIVATE)
    clock.advance(3600)
    assert await second.manager.suspend_idle() == []  # the resumed session is kept alive for its crons
    await second.manager.close_all()

    third = Bot(tmp_path, clock)  # another restart: nothing more was lost, nothing more is told
    await third.started()
    assert third.shown.told == [] and len(third.spawner.started) == 1
    await third.manager.close_all()


async def test_a_session_with_only_lost_schedules_is_not_started_but_its_home_is_told(tmp_path):
    clock = FakeClock()
    bot = Bot(tmp_path, clock)
    bot.spawner.enqueue(made("t1", "ScheduleWakeup", {"delaySeconds": 600, "prompt": "poll the CI"},
                             "Next wakeup scheduled for 00:10:00 (in 600s). …"))
    await drain(await bot.manager.send(PRIVATE.where, "keep an eye on CI"))
    await bot.manager.close_all()

    again = Bot(tmp_path, clock)
    await again.started()

    assert again.spawner.started == []
    assert again.shown.told == [(PRIVATE, "⏰ default: Claude's reminder “poll the CI” was lost in the restart.")]
    assert "No background tasks" in await again.tasks(PRIVATE)
    await again.manager.close_all()


class ReloadableProcess(FakeProcess):
    """A fake process that can cross a reload (the real one detaches its pipes; this one just goes on)."""

    adopted = False

    async def hand_over(self) -> SubprocessHandover:
        record = ProcessHandover(self.pid or 0, None, "marker", self.options.label, 0, 1, 2)
        return SubprocessHandover(record, self.session_id, None)

    async def adopt(self, record: SubprocessHandover) -> Turn | None:
        self.adopted = True
        self.session_id = record.session_id
        await self.start()
        return None

    def restart_key(self) -> str:
        return ""


class ReloadableSpawner(FakeSpawner):
    def __call__(self, options: Any, hooks: Any) -> FakeProcess:
        process = ReloadableProcess(options, self)
        process.hooks = hooks
        self.started.append(process)
        return process


async def test_a_reload_keeps_every_schedule_and_tells_nothing(tmp_path):
    clock = FakeClock()
    old = Bot(tmp_path, clock, ReloadableSpawner())
    old.spawner.enqueue(claudes_schedules(clock), [AssistantText("hi")])
    await drain(await old.manager.send(TOPIC, "remind me of things"))
    await drain(await old.manager.send(PRIVATE.where, "hello"))
    records = await old.manager.hand_over()

    new = Bot(tmp_path, clock, ReloadableSpawner())
    await new.manager.adopt(records)
    await new.manager.recover(announce=False)
    await new.manager.claude_schedules_kept()

    assert all(getattr(process, "adopted", False) for process in new.spawner.started)  # none started anew
    assert len(new.spawner.started) == 2 and new.shown.told == []
    listed = await new.tasks(TOPIC)
    for prompt in ("check the build", "call the dentist", "tomorrow's review", "look again"):
        assert prompt in listed
    clock.advance(900)  # the same process fires the dentist's one-shot: gone, the rest still to come
    assert "call the dentist" not in await new.tasks(TOPIC) and "look again" in await new.tasks(TOPIC)
    await new.manager.close_all()
    await old.manager.close_all()


async def test_a_turn_claude_starts_when_one_of_its_schedules_comes_due_is_headed_by_it_in_its_place(tmp_path):
    clock = FakeClock()  # 13:46:40 (UTC): the dentist's one-shot is due 13:56, the build check every 5 minutes
    bot = await first_run(tmp_path, clock)
    process = bot.spawner.started[0]  # the topic's session

    headers = []
    for seconds in (580, 235, 135):  # 13:56:20, 14:00:15, 14:02:30 (nothing due)
        clock.advance(seconds)
        turn = process.begin_claude_turn("")  # the CLI does not say what started it
        turn.push(TurnResult("success", False, "done", "conv-topic"))
        delivery = bot.shown.claude_turns[-1]
        await drain(delivery)
        assert Place(delivery.chat_id, delivery.thread_id) == TOPIC
        headers.append(claude_turn_header(delivery.header))

    assert headers == [
        f"⏰ Claude's cron `{at(FakeClock(), 600)}`: call the dentist",
        "⏰ Claude's cron `*/5 * * * *`: check the build",
        "🔔 Claude continued on its own",
    ]
    assert len(bot.shown.claude_turns) == 3  # the private chat's session started none
    await bot.manager.close_all()
