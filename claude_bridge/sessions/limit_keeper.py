"""The usage limit at run time: holds every session's messages while the account is refused, resends the refused
ones after the reset, and keeps the one limit message per place up to date (through the FrontEnd port).

The plan itself (what is held, until when, in what order) is limits.py's, on disk; the accounts of /usage are
usage.py's. This module owns the one timer task and the waiting; it never words anything (the front end does).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from claude_bridge.protocol.events import TurnResult
from claude_bridge.protocol.limits import RateLimit, refused_by_limit
from claude_bridge.sessions.frontend import FrontEnd
from claude_bridge.sessions.limits import RESUME_MARGIN, Hold, HoldPlan, HoldState
from claude_bridge.sessions.place import Place
from claude_bridge.sessions.usage import UsageBook

logger = logging.getLogger(__name__)


def place_of_key(key: str) -> Place:
    """The Place a limits.json notice key names ("<chat>" or "<chat>:<thread>", Place.key)."""
    chat, _, thread = key.partition(":")
    return Place(int(chat), int(thread) if thread else None)


class LimitKeeper:
    """One per manager (one account): the sessions ask it before each send and tell it each turn's end."""

    def __init__(
        self,
        sessions_dir: Path,
        front_end: FrontEnd,
        book: UsageBook,
        clock: Callable[[], float],
        margin: float = RESUME_MARGIN,
    ) -> None:
        self.plan = HoldPlan(sessions_dir, margin=margin)
        self.book = book
        self._front_end = front_end
        self._clock = clock
        self._changed = asyncio.Event()  # set and replaced on every change of the plan: the waiting sends re-check
        self._timer: asyncio.Task[None] | None = None
        self._warned: set[tuple[str, float | None]] = set()  # (limit, window) already warned about
        self._resumed_for: float | None = None  # the wake time whose resumption was already announced
        # One limit message per place: a message held at once by accepted() and clear_to_send() must not show two.
        self._showing: dict[str, asyncio.Lock] = {}

    @property
    def hold(self) -> Hold:
        return self.plan.hold

    def held(self, session: str) -> Hold | None:
        """The hold a new message to `session` waits for now (the front end says "Queued — after the limit
        resets"), or None: no hold, or the session's user wrote after its Cancel (it sends at once)."""
        hold = self.plan.hold
        if session in hold.exempt or not self.plan.holds(self._clock()):
            return None
        return hold

    def start(self) -> None:
        """Arm the timer for a plan saved by an earlier run (the held messages come back from the inboxes)."""
        self._arm()

    async def close(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await timer

    async def clear_to_send(self, session: str, place: Place) -> None:
        """Return once `session` may send: at once without a hold, else after the reset (or the user's next
        message after its place's Cancel). Its place gets the limit message if it has none yet."""
        while self.plan.must_wait(session, self._clock()):
            if self.plan.holding:
                self.plan.queued(session, place.key)
                await self._show(place)
            changed = self._changed
            await changed.wait()

    @staticmethod
    def refused(result: TurnResult, last: RateLimit | None) -> bool:
        """Whether the usage limit refused this turn (`last`: the process's latest limit state)."""
        return refused_by_limit(result.is_error, result.api_error_status, last)

    async def after_turn(
        self, session: str, entry_id: str, place: Place, result: TurnResult, last: RateLimit | None
    ) -> bool:
        """Book a finished turn; True if the usage limit refused it (the caller sends it again after the reset)."""
        now = self._clock()
        if last is not None:
            self.book.saw(last)
            await self._maybe_warn(place, last)
        if not self.refused(result, last):
            self.book.record(session, result, now)
            if self.plan.holding:
                self.plan.resumed(session)  # answered: this session is held no more
            return False
        was = self.plan.hold
        hold = self.plan.refused(session, entry_id, last, now, place.key)
        logger.info("session %s refused by the %s until %s", session, hold.limit_type, hold.until)
        if was.state is HoldState.HELD and was.until != hold.until:
            await self._edit_all()
        await self._show(place)
        self._arm()
        return True

    async def resume_held(self, now: float) -> None:
        """The timer fired (tests call it with their clock): past the reset, every held send goes on in order."""
        wake = self.plan.wake_at()
        if wake is None:
            return
        if now < wake:  # woken early (a clock step): wait the rest
            self._arm()
            return
        if self._resumed_for != wake:  # the timer and a test (or a restart) may both get here: say it once
            self._resumed_for = wake
            logger.info("usage limit reset: resuming %d held session(s)", len(self.plan.hold.sessions))
            # The limit messages say so now; a resend refused again edits them once more with the new time.
            await self._edit_all(replace(self.plan.hold, state=HoldState.NONE))
        self._wake_all()

    async def cancel(self, place: Place) -> bool:
        """The Cancel button in `place`: its held sessions are not resent by themselves; each goes on when its user
        writes to it. Other places' held sessions still go on at the reset. False if the place had none held."""
        if not self.plan.cancel(place.key):
            return False
        await self._edit_all(only=place.key)  # the other places' messages have not changed
        self._arm()
        self._wake_all()  # the waiting sends re-check: cancelled ones now wait for their user instead of the clock
        return True

    async def accepted(self, session: str, place: Place) -> None:
        """A message was queued for `session` from `place`: during a hold its place gets the limit message too (it
        may wait behind the refused message of the same session, never reaching its own clear_to_send yet)."""
        if self.plan.must_wait(session, self._clock()):
            self.plan.queued(session, place.key)
            await self._show(place)

    def user_wrote(self, session: str) -> None:
        """A new message to `session`: after a Cancel, its held messages are now answered as normal ones."""
        if self.plan.released(session):
            self._wake_all()

    def count_own_turn(self, session: str, result: TurnResult, last: RateLimit | None) -> None:
        """Claude's own turn (a cron, a background task's report) ended: /usage counts it like a message's. One the
        limit refused cost nothing and is not resent (the CLI starts its own turns)."""
        if last is not None:
            self.book.saw(last)
        if not self.refused(result, last):
            self.book.record(session, result, self._clock())

    def forget(self, session: str) -> None:
        self.plan.forget(session)
        self.book.forget(session)
        self._wake_all()

    async def _maybe_warn(self, place: Place, limit: RateLimit) -> None:
        window = (limit.limit_type, limit.resets_at)
        if not limit.warns or window in self._warned:
            return
        self._warned.add(window)
        try:
            await self._front_end.warn_limit(place, limit)
        except Exception:
            logger.exception("could not show the usage warning in %s", place.key)

    async def _show(self, place: Place) -> None:
        """The place's one limit message, if it has none for this hold yet."""
        async with self._showing.setdefault(place.key, asyncio.Lock()):
            if place.key in self.plan.hold.notices:
                return
            try:
                message_id = await self._front_end.show_limit(place, self.plan.hold, None)
            except Exception:
                logger.exception("could not show the usage limit in %s", place.key)
                return
            if message_id is not None and self.plan.hold.state is not HoldState.NONE:
                self.plan.shown(place.key, message_id)

    async def _edit_all(self, hold: Hold | None = None, only: str | None = None) -> None:
        """Every place's limit message (or `only` that place's) now says `hold` (the plan's current state by
        default), or Cancelled where the place cancelled all its held sessions."""
        hold = hold or self.plan.hold
        for key, message_id in hold.notices.items():
            if only is not None and key != only:
                continue
            shown = replace(hold, state=HoldState.CANCELLED) if self.plan.hold.places_cancelled(key) else hold
            try:
                await self._front_end.show_limit(place_of_key(key), shown, message_id)
            except Exception:
                logger.exception("could not update the usage-limit message in %s", key)

    def _wake_all(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def _arm(self) -> None:
        """The one timer: fires resume_held at the plan's wake time (re-armed on every change of it)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        wake = self.plan.wake_at()
        if wake is None:
            return
        self._timer = asyncio.get_running_loop().create_task(self._sleep_until(wake), name="usage-limit-timer")

    async def _sleep_until(self, wake: float) -> None:
        await asyncio.sleep(max(0.0, wake - self._clock()))
        self._timer = None
        await self.resume_held(self._clock())
