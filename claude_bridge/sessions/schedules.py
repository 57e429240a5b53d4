"""Prompts on a schedule: kept by APScheduler in an SQLite file, so they outlive the bot; fired into a target.

It knows places, sessions by name and time; not how a prompt reaches Claude (the FireTarget does that) nor Telegram.
Jobs are pickled into SQLite by reference, so the job function is this module's `run_schedule`, which finds the
running Schedules through a small registry; a job's own data is a plain dict, so it survives changes to our classes.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any, Protocol

from apscheduler.events import EVENT_JOB_MISSED
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import Engine, create_engine
from sqlalchemy.pool import NullPool

from claude_bridge.sessions import when
from claude_bridge.sessions.place import Author, Place
from claude_bridge.sessions.when import ScheduleError

logger = logging.getLogger(__name__)

STORE_NAME = "schedules.sqlite"  # under SESSIONS_DIR/.bot/
MAX_PER_PLACE = 50
# A run missed while the bot was down still runs once at start if it is at most this late; else the place is told.
GRACE = timedelta(hours=1)
_CATCH_UP_STEPS = 100_000  # walking an every-minute job through a long outage stays bounded
_RUNNING: dict[str, Schedules] = {}  # store path → the Schedules that fires its jobs in this process


@dataclass(frozen=True)
class Schedule:
    """One scheduled prompt: where it was made, for which session, by whom, and when it runs next."""

    id: str
    place: Place
    session: str
    prompt: str
    label: str  # "every 2h", "at 2026-12-24 09:00:00", "cron 0 9 * * 1-5"
    creator: int | None = None  # the user id of who made it (None: made before the bot recorded it)
    next_run: datetime | None = None
    creator_name: str = ""  # their name as it was then ("" for a job from before names were kept)


class ScheduleGone(ScheduleError):
    """Raised by a FireTarget when the schedule's session no longer exists: the schedule is removed."""


class FireTarget(Protocol):
    """Who runs a schedule's prompt: the bot, which sends it into the session as a message from its place."""

    async def fire(self, schedule: Schedule, late_by: timedelta | None) -> None:
        """Queue the prompt; `late_by` is set when it runs late (missed while the bot was down). Return promptly;
        raise ScheduleGone if its session no longer exists (after telling the place)."""

    async def missed(self, schedule: Schedule, due: datetime) -> None:
        """Tell the schedule's place that a run due at `due` was too late to run and was skipped."""


def _engine(path: Path) -> Engine:
    """The job store's database, opened only while it is read or written (NullPool): the bot holds no file of
    its state folder open between uses, so that folder can be remounted, backed up or moved at any time."""
    return create_engine(f"sqlite:///{path}", poolclass=NullPool)


async def run_schedule(store: str, record: Mapping[str, Any]) -> None:
    """The job function APScheduler stores by reference: hand the job to the Schedules running its store."""
    running = _RUNNING.get(store) or (next(iter(_RUNNING.values())) if len(_RUNNING) == 1 else None)
    if running is None:
        logger.warning("schedule %s fired but no scheduler runs its store %s", record.get("id"), store)
        return
    await running.fire(_schedule_of(record), None)


class Schedules:
    """The place's schedules: add from a typed spec, list, delete; fire on time, and catch up after a restart."""

    def __init__(
        self,
        path: Path,
        target: FireTarget,
        tz: tzinfo,
        *,
        clock: Callable[[], datetime] | None = None,
        max_per_place: int = MAX_PER_PLACE,
    ) -> None:
        self.path = path.absolute()
        self.target = target
        self.tz = tz
        self._clock = clock or (lambda: datetime.now(tz))
        self._max = max_per_place
        self._known: dict[str, Schedule] = {}  # for EVENT_JOB_MISSED, whose job may already be gone
        self._tasks: set[asyncio.Task[None]] = set()
        self._scheduler = AsyncIOScheduler(
            jobstores={"default": SQLAlchemyJobStore(engine=_engine(self.path))},
            job_defaults={"misfire_grace_time": int(GRACE.total_seconds()), "coalesce": True},
            timezone=tz,
        )
        self._scheduler.add_listener(self._on_missed, EVENT_JOB_MISSED)

    async def start(self, *, run: bool = True) -> None:
        """Open the store, deal with runs missed while the bot was down, then fire on time (unless `run` is False)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._scheduler.start(paused=True)
        _RUNNING[str(self.path)] = self
        await self._catch_up()
        if run:
            self._scheduler.resume()
        logger.info("schedules: %d in %s", len(self._scheduler.get_jobs()), self.path)

    async def shutdown(self) -> None:
        """Stop firing; the jobs stay in the store for the next start."""
        if _RUNNING.get(str(self.path)) is self:
            del _RUNNING[str(self.path)]
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def add(self, place: Place, session: str, kind: str, args: str, creator: Author | None = None) -> Schedule:
        """Keep a prompt typed as `/every`, `/at` or `/cron` (kind) with its args; ScheduleError stores nothing."""
        now = self._clock()
        spec = self.parse(kind, args)
        if len(self.of(place)) >= self._max:
            raise ScheduleError(f"This chat already has {self._max} schedules: delete one in /schedules first.")
        record = {
            "id": uuid.uuid4().hex[:8], "chat_id": place.chat_id, "thread_id": place.thread_id, "session": session,
            "prompt": spec.prompt, "label": spec.label,
            "creator": creator.user_id if creator else None, "creator_name": creator.name if creator else "",
        }
        first = spec.trigger.get_next_fire_time(None, now)
        job = self._scheduler.add_job(
            run_schedule, spec.trigger, args=[str(self.path), record], id=record["id"], next_run_time=first,
            name=f"{session}: {spec.prompt[:40]}",
        )
        schedule = _schedule_of(record, job.next_run_time)
        self._known[schedule.id] = schedule
        logger.info("schedule %s added in %s for session %s: %s", schedule.id, place.key, session, spec.label)
        return schedule

    def parse(self, kind: str, args: str) -> when.When:
        """What `/every`, `/at` or `/cron` (kind) with its args means now; ScheduleError says what is wrong."""
        now = self._clock()
        if kind == "every":
            return when.every(args, self.tz, now)
        if kind == "at":
            return when.at(args, self.tz, now)
        if kind == "cron":
            return when.cron(args, self.tz)
        raise ScheduleError(f"Unknown kind of schedule {kind!r}.")

    def of(self, place: Place) -> list[Schedule]:
        """The place's schedules, soonest first."""
        found = [s for s in self._all() if s.place == place]
        return sorted(found, key=lambda s: (s.next_run is None, s.next_run or self._clock()))

    def delete(self, place: Place, schedule_id: str) -> Schedule | None:
        """Delete one of the place's schedules (another place's stays); None when the place has no such one."""
        schedule = next((s for s in self.of(place) if s.id == schedule_id), None)
        if schedule is not None:
            self._scheduler.remove_job(schedule_id)
            self._known.pop(schedule_id, None)
            logger.info("schedule %s deleted in %s", schedule_id, place.key)
        return schedule

    async def fire(self, schedule: Schedule, late_by: timedelta | None) -> None:
        """Hand a due schedule to the target; one whose session is gone is removed."""
        try:
            await self.target.fire(schedule, late_by)
        except ScheduleGone:
            logger.info("schedule %s removed: session %s is gone", schedule.id, schedule.session)
            self.remove(schedule.id)

    def drop_session(self, session: str) -> list[Schedule]:
        """Delete every schedule of a session (it was deleted); the ones dropped, for telling their places."""
        dropped = [s for s in self._all() if s.session == session]
        for schedule in dropped:
            self._scheduler.remove_job(schedule.id)
            self._known.pop(schedule.id, None)
        return dropped

    def remove(self, schedule_id: str) -> None:
        """Delete one schedule whoever made it (its session is gone)."""
        self._known.pop(schedule_id, None)
        if self._scheduler.get_job(schedule_id) is not None:
            self._scheduler.remove_job(schedule_id)

    def _all(self) -> list[Schedule]:
        schedules = [_schedule_of(job.args[1], job.next_run_time) for job in self._scheduler.get_jobs()]
        self._known.update({s.id: s for s in schedules})
        return schedules

    async def _catch_up(self) -> None:
        """Runs missed while the bot was down: the latest one runs once if at most GRACE late, else is reported."""
        now = self._clock()
        for job in self._scheduler.get_jobs():
            due = job.next_run_time
            if due is None or due > now:
                continue
            last_due = _last_due(job.trigger, due, now)
            following = job.trigger.get_next_fire_time(last_due, now)
            if following is None:
                job.remove()
            else:
                job.modify(next_run_time=following)
            schedule = _schedule_of(job.args[1], following)
            if now - last_due <= GRACE:
                logger.info("schedule %s runs %s late", schedule.id, now - last_due)
                await self.fire(schedule, now - last_due)
            else:
                logger.info("schedule %s missed its run at %s", schedule.id, last_due)
                await self.target.missed(schedule, last_due)

    def _on_missed(self, event: Any) -> None:
        """APScheduler skipped a run more than GRACE late while running (the machine slept): tell the place."""
        schedule = self._known.get(event.job_id)
        if schedule is None:
            logger.warning("schedule %s missed a run at %s", event.job_id, event.scheduled_run_time)
            return
        task = asyncio.get_running_loop().create_task(self.target.missed(schedule, event.scheduled_run_time))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _last_due(trigger: Any, due: datetime, now: datetime) -> datetime:
    """The latest run time at or before `now`, walking on from `due` (coalescing a long outage into one run)."""
    last = due
    for _ in range(_CATCH_UP_STEPS):
        following = trigger.get_next_fire_time(last, now)
        if following is None or following > now:
            break
        last = following
    return last


def _schedule_of(record: Mapping[str, Any], next_run: datetime | None = None) -> Schedule:
    return Schedule(
        id=str(record["id"]),
        place=Place(int(record["chat_id"]), record.get("thread_id")),
        session=str(record["session"]),
        prompt=str(record["prompt"]),
        label=str(record["label"]),
        creator=record.get("creator"),
        next_run=next_run,
        creator_name=str(record.get("creator_name") or ""),  # jobs stored before names were kept have none
    )
