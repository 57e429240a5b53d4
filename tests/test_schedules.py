"""Prompts on a schedule: typed specs, the SQLite store that outlives a restart, runs missed while the bot was down."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from claude_bridge.commands import schedules as schedule_commands
from claude_bridge.commands.reply import Choice
from claude_bridge.sessions import when
from claude_bridge.sessions.place import Author, Place
from claude_bridge.sessions.schedules import Schedule, Schedules, run_schedule
from claude_bridge.sessions.when import ScheduleError

pytestmark = pytest.mark.fast

BERLIN = ZoneInfo("Europe/Berlin")
MONDAY_10 = datetime(2026, 12, 7, 10, 0, tzinfo=BERLIN)  # a Monday
PRIVATE, TOPIC = Place(7), Place(-100123, 42)
ANN = Author(99, "Ann Lee")


@dataclass
class FakeTarget:
    """Records what the scheduler fired and what it reported missed; `wait_fired` awaits the next one."""

    fired: list[tuple[Schedule, timedelta | None]] = field(default_factory=list)
    missed_runs: list[tuple[Schedule, datetime]] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def fire(self, schedule: Schedule, late_by: timedelta | None) -> None:
        self.fired.append((schedule, late_by))
        self._changed.set()

    async def missed(self, schedule: Schedule, due: datetime) -> None:
        self.missed_runs.append((schedule, due))

    async def wait_fired(self, n: int) -> None:
        async with asyncio.timeout(20):
            while len(self.fired) < n:
                self._changed.clear()
                await self._changed.wait()


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_every_takes_minutes_hours_and_days_but_not_less_than_a_minute() -> None:
    spec = when.every("2h run the tests", BERLIN, MONDAY_10)

    assert spec.prompt == "run the tests" and spec.label == "every 2h"
    assert spec.trigger.get_next_fire_time(None, MONDAY_10) == MONDAY_10 + timedelta(hours=2)
    assert when.every("1d x", BERLIN, MONDAY_10).trigger.interval == timedelta(days=1)
    with pytest.raises(ScheduleError, match="at least every minute"):
        when.every("30s x", BERLIN, MONDAY_10)
    with pytest.raises(ScheduleError, match="Unknown interval '10x'"):
        when.every("10x x", BERLIN, MONDAY_10)
    with pytest.raises(ScheduleError, match="prompt is empty"):
        when.every("10m   ", BERLIN, MONDAY_10)


def test_at_takes_a_delay_a_clock_time_or_a_date_in_the_bots_zone() -> None:
    def run_date(args: str) -> datetime:
        return when.at(args, BERLIN, MONDAY_10).trigger.run_date  # type: ignore[no-any-return]

    assert run_date("+3s ping") == MONDAY_10 + timedelta(seconds=3)
    assert run_date("14:30 summarize") == MONDAY_10.replace(hour=14, minute=30)
    assert run_date("09:00 summarize") == MONDAY_10.replace(day=8, hour=9)  # already past today: tomorrow
    assert run_date("2026-12-24 09:00 presents") == datetime(2026, 12, 24, 9, 0, tzinfo=BERLIN)
    assert when.at("2026-12-24 09:00 presents", BERLIN, MONDAY_10).prompt == "presents"


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ("2026-01-01 09:00 too late", "is in the past"),
        ("25:00 x", "Unknown time '25:00'"),
        ("tomorrow x", "Unknown time 'tomorrow'"),
        ("2026-12-24 9am x", "Unknown time '2026-12-24 9am'"),
        ("+10m", "prompt is empty"),
        ("2026-12-24 09:00", "prompt is empty"),
    ],
)
def test_at_refuses_what_it_cannot_keep(args: str, error: str) -> None:
    with pytest.raises(ScheduleError, match=error):
        when.at(args, BERLIN, MONDAY_10)


def test_cron_reads_crontabs_weekdays_where_sunday_is_0_and_7() -> None:
    def next_run(args: str) -> datetime:
        return when.cron(args, BERLIN).trigger.get_next_fire_time(None, MONDAY_10)  # type: ignore[no-any-return]

    assert next_run('"0 9 * * 0" weekly') == datetime(2026, 12, 13, 9, 0, tzinfo=BERLIN)  # Sunday
    assert next_run('"0 9 * * 7" weekly') == datetime(2026, 12, 13, 9, 0, tzinfo=BERLIN)
    assert next_run('"0 9 * * 1-5" tests') == datetime(2026, 12, 8, 9, 0, tzinfo=BERLIN)  # Tuesday
    assert next_run("“30 11 * * *” smart quotes from a phone") == MONDAY_10.replace(hour=11, minute=30)
    assert next_run('"0 9 * * 5-7" weekend') == datetime(2026, 12, 11, 9, 0, tzinfo=BERLIN)  # Friday


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ('"0 9 * *" x', "5 fields"),
        ('"0 9 * * 1"', "prompt is empty"),
        ("0 9 * * 1 x", "Usage: /cron"),
        ('"0 25 * * *" x', "Bad cron line"),
        ('"0 9 * * funday" x', "Bad cron line"),
    ],
)
def test_cron_refuses_what_it_cannot_keep(args: str, error: str) -> None:
    with pytest.raises(ScheduleError, match=error):
        when.cron(args, BERLIN)


async def test_schedules_belong_to_their_place(tmp_path: Path) -> None:
    schedules = Schedules(tmp_path / ".bot" / "schedules.sqlite", FakeTarget(), BERLIN, clock=Clock(MONDAY_10))
    await schedules.start(run=False)

    made = schedules.add(PRIVATE, "api", "every", "2h run the tests", creator=ANN)
    schedules.add(TOPIC, "docs", "cron", '"0 9 * * 1-5" check the docs')

    assert schedules.of(PRIVATE) == [made]
    assert made.session == "api" and (made.creator, made.creator_name) == (99, "Ann Lee")
    assert made.next_run == MONDAY_10 + timedelta(hours=2)
    assert [s.prompt for s in schedules.of(TOPIC)] == ["check the docs"]
    assert schedules.delete(TOPIC, made.id) is None  # another place cannot delete it
    assert schedules.delete(PRIVATE, made.id) == made
    assert schedules.of(PRIVATE) == []
    await schedules.shutdown()


async def test_bad_input_and_a_full_place_store_nothing(tmp_path: Path) -> None:
    schedules = Schedules(tmp_path / "s.sqlite", FakeTarget(), BERLIN, clock=Clock(MONDAY_10), max_per_place=3)
    await schedules.start(run=False)
    for n in range(3):
        schedules.add(TOPIC, "api", "every", f"1h job {n}")

    with pytest.raises(ScheduleError, match="already has 3 schedules"):
        schedules.add(TOPIC, "api", "at", "+10m one more")
    with pytest.raises(ScheduleError, match="5 fields"):
        schedules.add(PRIVATE, "api", "cron", '"0 9 * *" x')

    assert len(schedules.of(TOPIC)) == 3 and schedules.of(PRIVATE) == []
    schedules.add(PRIVATE, "api", "at", "+10m the private chat has room")
    await schedules.shutdown()


async def test_a_schedule_outlives_a_restart_and_fires(tmp_path: Path) -> None:
    store = tmp_path / ".bot" / "schedules.sqlite"
    first = Schedules(store, FakeTarget(), BERLIN)
    await first.start()
    made = first.add(TOPIC, "api", "at", "+2s answer in the topic", creator=ANN)
    await first.shutdown()

    target = FakeTarget()
    second = Schedules(store, target, BERLIN)
    await second.start()
    assert second.of(TOPIC) == [made]
    await target.wait_fired(1)

    assert [(s.id, s.place, s.prompt, late) for s, late in target.fired] == [(made.id, TOPIC, made.prompt, None)]
    assert second.of(TOPIC) == []  # a one-off is gone once it ran
    await second.shutdown()


async def test_a_run_missed_by_two_minutes_runs_once_at_start_and_says_how_late(tmp_path: Path) -> None:
    store, clock = tmp_path / "s.sqlite", Clock(MONDAY_10)
    first = Schedules(store, FakeTarget(), BERLIN, clock=clock)
    await first.start(run=False)
    made = first.add(PRIVATE, "api", "at", "+10m while the bot is down")
    await first.shutdown()

    clock.now = MONDAY_10 + timedelta(minutes=12)
    target = FakeTarget()
    second = Schedules(store, target, BERLIN, clock=clock)
    await second.start(run=False)

    assert [(s.id, late) for s, late in target.fired] == [(made.id, timedelta(minutes=2))]
    assert target.missed_runs == [] and second.of(PRIVATE) == []
    await second.shutdown()


async def test_a_run_missed_by_more_than_an_hour_is_skipped_and_reported(tmp_path: Path) -> None:
    store, clock = tmp_path / "s.sqlite", Clock(MONDAY_10)
    first = Schedules(store, FakeTarget(), BERLIN, clock=clock)
    await first.start(run=False)
    made = first.add(TOPIC, "api", "at", "+10m while the bot is down")
    await first.shutdown()

    clock.now = MONDAY_10 + timedelta(hours=2)
    target = FakeTarget()
    second = Schedules(store, target, BERLIN, clock=clock)
    await second.start(run=False)

    assert target.fired == []
    assert [(s.id, due) for s, due in target.missed_runs] == [(made.id, MONDAY_10 + timedelta(minutes=10))]
    await second.shutdown()


async def test_a_long_outage_of_a_repeating_job_runs_its_latest_run_once_and_goes_on(tmp_path: Path) -> None:
    store, clock = tmp_path / "s.sqlite", Clock(MONDAY_10)
    first = Schedules(store, FakeTarget(), BERLIN, clock=clock)
    await first.start(run=False)
    first.add(PRIVATE, "api", "every", "1m poll")
    await first.shutdown()

    clock.now = MONDAY_10 + timedelta(hours=3, seconds=30)
    target = FakeTarget()
    second = Schedules(store, target, BERLIN, clock=clock)
    await second.start(run=False)

    assert [late for _, late in target.fired] == [timedelta(seconds=30)]
    assert second.of(PRIVATE)[0].next_run == MONDAY_10 + timedelta(hours=3, minutes=1)
    await second.shutdown()


async def test_the_schedule_commands_answer_in_one_line_and_offer_a_delete_button(tmp_path: Path) -> None:
    schedules = Schedules(tmp_path / "s.sqlite", FakeTarget(), BERLIN, clock=Clock(MONDAY_10))
    await schedules.start(run=False)

    made = schedule_commands.add(schedules, TOPIC, "api", "every", "2h run the tests and tell me what broke", ANN)
    refused = schedule_commands.add(schedules, TOPIC, "api", "cron", '"0 9 * *" x', ANN)
    listed = schedule_commands.listing(schedules, TOPIC)

    assert made.text == (
        "⏰ Scheduled in session api, every 2h: run the tests and tell me what broke\nnext: Mon 2026-12-07 12:00"
    )
    assert refused.text == "⚠️ A cron line has 5 fields (minute hour day month weekday), not 4."
    (only,) = schedules.of(TOPIC)
    assert listed.choices == (Choice("🗑 Delete 1", f"/schedules delete {only.id}"),)
    assert schedule_commands.listing(schedules, PRIVATE).choices == ()
    assert schedule_commands.delete(schedules, PRIVATE, only.id).text == "That schedule is not here any more."
    assert schedule_commands.delete(schedules, TOPIC, only.id).text.startswith("🗑 Deleted: every 2h")
    await schedules.shutdown()


async def test_a_place_lists_who_made_each_schedule_and_a_job_kept_before_that_still_loads(tmp_path: Path) -> None:
    store = tmp_path / "s.sqlite"
    # A job as the bot kept it before it recorded who made one: no "creator_name", "creator" None.
    before = AsyncIOScheduler(jobstores={"default": SQLAlchemyJobStore(url=f"sqlite:///{store}")}, timezone=BERLIN)
    before.start(paused=True)
    record = {"id": "0ld0b001", "chat_id": TOPIC.chat_id, "thread_id": TOPIC.thread_id, "session": "api",
              "prompt": "kept from before", "label": "every 3h", "creator": None}
    before.add_job(run_schedule, IntervalTrigger(hours=3, timezone=BERLIN), args=[str(store), record], id="0ld0b001",
                   next_run_time=MONDAY_10 + timedelta(hours=3))
    before.shutdown(wait=False)
    schedules = Schedules(store, FakeTarget(), BERLIN, clock=Clock(MONDAY_10))
    await schedules.start(run=False)

    schedule_commands.add(schedules, TOPIC, "api", "every", "1h ask Ann's question", ANN)
    schedule_commands.add(schedules, TOPIC, "api", "every", "2h ask Bob's question", Author(98, "Bob"))
    listed = schedule_commands.listing(schedules, TOPIC).text

    assert "1. [api] every 1h: ask Ann's question\n   next: Mon 2026-12-07 11:00 · by Ann Lee\n" in listed
    assert "2. [api] every 2h: ask Bob's question\n   next: Mon 2026-12-07 12:00 · by Bob\n" in listed
    assert listed.endswith("3. [api] every 3h: kept from before\n   next: Mon 2026-12-07 13:00")
    assert schedule_commands.listing(schedules, PRIVATE).text.startswith("No scheduled prompts here.")
    await schedules.shutdown()
