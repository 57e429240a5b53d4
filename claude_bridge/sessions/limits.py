"""The hold plan for the account's usage limit: whether messages must wait, until when, which sessions to resume and
in what order. All sessions of the bot share one account, so there is one plan, saved in `.bot/limits.json`.

A Cancel belongs to the place that pressed it: it stops the automatic re-send of that place's held sessions only;
another place's sessions still go on at the reset. A cancelled session waits for its user's next message, then sends
at once, hold or not (the user chose to try), and stays cancelled across a later refusal of another session.

A pure state machine over a given clock and a file: it sends nothing and owns no timer. The limit keeper asks
`wake_at()`, arms its own timer, and at that time wakes every waiting send, each of which asks `must_wait()` again;
the messages themselves stay in each session's inbox. `due_sessions(now)` reads the plan as a whole (what is due).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from claude_bridge.protocol.limits import RateLimit
from claude_bridge.sessions.store import NAME_RE, write_json_atomic

logger = logging.getLogger(__name__)

LIMITS_FILE = Path(".bot") / "limits.json"
# The reset is the server's clock, ours may lag a little: resuming a few seconds early only earns another refusal.
RESUME_MARGIN = 30.0
# A still-refused resend may come without a fresh rejected event (the CLI reports changes only, §17), so the last
# reset we know can already be past: then wait this long before trying again.
RETRY_AFTER_STALE = 300.0


class HoldState(StrEnum):
    """The account's plan as the bot acts on it."""

    NONE = "none"  # messages go to Claude as usual
    HELD = "held"  # refused until `until`: new messages wait, the held sessions resume by themselves after it
    CANCELLED = "cancelled"  # every held session's place said no: nothing resumes by itself; each waits for its user


@dataclass(frozen=True)
class HeldSession:
    """One session waiting for the reset; `refused` is the inbox entry the limit refused, re-sent first."""

    name: str
    refused: str | None = None
    place: str = ""  # the key of the place its messages came from (Place.key): a Cancel there is this session's
    cancelled: bool = False  # its place pressed Cancel: not re-sent by itself; it goes on when its user writes


@dataclass(frozen=True)
class Hold:
    """What limits.json holds."""

    state: HoldState = HoldState.NONE
    until: float = 0.0  # epoch seconds: the reset time the CLI reported
    limit_type: str = ""  # "five_hour", "seven_day", … (RateLimit.limit_type)
    sessions: tuple[HeldSession, ...] = ()  # in the order they were held: the order they resume in
    notices: Mapping[str, int] = field(default_factory=dict)  # place key → the limit message shown there, to edit
    exempt: tuple[str, ...] = ()  # sessions whose user wrote after their Cancel: they send now, hold or not

    def places_cancelled(self, key: str) -> bool:
        """Whether the place `key` has held sessions and cancelled them all (its limit message says Cancelled)."""
        mine = [s for s in self.sessions if s.place in (key, "")]
        return bool(mine) and all(s.cancelled for s in mine)


class HoldPlan:
    """The one plan of the account, written atomically on every change so a restart picks it up."""

    def __init__(self, sessions_dir: Path, margin: float = RESUME_MARGIN) -> None:
        self.path = sessions_dir / LIMITS_FILE
        self.margin = margin
        self.hold = self._load()

    @property
    def holding(self) -> bool:
        """A hold is on: held sessions resume by themselves at `wake_at()`."""
        return self.hold.state is HoldState.HELD

    def holds(self, now: float) -> bool:
        """New messages must wait in their queues instead of being sent to be refused (until the wake time)."""
        wake = self.wake_at()
        return wake is not None and now < wake

    def wake_at(self) -> float | None:
        """When the owner's timer should fire next, or None when nothing resumes by itself."""
        return self.hold.until + self.margin if self.holding else None

    def must_wait(self, session: str, now: float) -> bool:
        """Whether `session`'s next message must wait: cancelled, it waits for its user; exempt, it goes; else it
        waits while the account is held."""
        held = self._held(session)
        if held is not None and held.cancelled:
            return True
        return session not in self.hold.exempt and self.holds(now)

    def refused(self, session: str, entry_id: str, limit: RateLimit | None, now: float, place: str = "") -> Hold:
        """A turn of `session` (its inbox entry `entry_id`, from place key `place`) was refused by the limit: hold
        until the reset. The sessions other places cancelled stay cancelled."""
        resets = limit.resets_at if limit is not None and limit.resets_at is not None else 0.0
        until = resets if resets > now else now + RETRY_AFTER_STALE
        limit_type = (limit.limit_type if limit is not None else "") or self.hold.limit_type
        kept = self.hold.sessions if self.holding else tuple(s for s in self.hold.sessions if s.cancelled)
        sessions = [s for s in kept if s.name != session]
        previous = next((s for s in kept if s.name == session), None)
        held = HeldSession(session, entry_id, place or (previous.place if previous is not None else ""))
        # A session keeps its place in line: resending its refused message does not move it to the back.
        at = kept.index(previous) if previous is not None else len(sessions)
        sessions.insert(at, held)
        notices = self.hold.notices if self.holding else {}
        until = max(until, self.hold.until) if self.holding else until
        exempt = tuple(name for name in self.hold.exempt if name != session) if self.holding else ()
        return self._save(Hold(HoldState.HELD, until, limit_type, tuple(sessions), notices, exempt))

    def queued(self, session: str, place: str = "") -> None:
        """A message to `session` waits for the reset (it was not refused itself): resume the session too."""
        if self.holding and session not in self.hold.exempt and self._held(session) is None:
            self._save(replace(self.hold, sessions=(*self.hold.sessions, HeldSession(session, None, place))))

    def shown(self, place_key: str, message_id: int) -> None:
        """The limit message for this hold was shown in a place; the front end edits it when the state changes."""
        self._save(replace(self.hold, notices={**self.hold.notices, place_key: message_id}))

    def due_sessions(self, now: float) -> tuple[HeldSession, ...]:
        """The sessions to resume now, in order (each: its refused message first, then its queue); () if not yet."""
        wake = self.wake_at()
        return tuple(s for s in self.hold.sessions if not s.cancelled) if wake is not None and now >= wake else ()

    def resumed(self, session: str) -> None:
        """`session`'s refused message was answered: it is held no more; the plan ends with the last one, and only
        cancelled ones left (waiting for their users) make it CANCELLED."""
        rest = tuple(s for s in self.hold.sessions if s.name != session)
        if len(rest) == len(self.hold.sessions):
            return
        self._save(self._settled(replace(self.hold, sessions=rest)))

    def cancel(self, place: str) -> bool:
        """The place `place` pressed Cancel: its held sessions are not re-sent by themselves; each waits for its
        user's next message. Other places' sessions still resume at the reset. False if it had none held."""
        if not self.holding or not any(s.place in (place, "") and not s.cancelled for s in self.hold.sessions):
            return False
        sessions = tuple(replace(s, cancelled=True) if s.place in (place, "") else s for s in self.hold.sessions)
        self._save(self._settled(replace(self.hold, sessions=sessions)))
        return True

    def released(self, session: str) -> bool:
        """The user wrote to `session` after its Cancel: True if its held messages should now go out (at once: it
        is exempt from the hold until it is refused again)."""
        held = self._held(session)
        if held is None or not held.cancelled:
            return False
        rest = tuple(s for s in self.hold.sessions if s.name != session)
        exempt = (*self.hold.exempt, session) if self.holding else self.hold.exempt
        self._save(self._settled(replace(self.hold, sessions=rest, exempt=exempt)))
        return True

    def _held(self, session: str) -> HeldSession | None:
        return next((s for s in self.hold.sessions if s.name == session), None)

    @staticmethod
    def _settled(hold: Hold) -> Hold:
        """No session left: no hold; only cancelled ones: nothing resumes by itself."""
        if not hold.sessions:
            return Hold()
        if all(s.cancelled for s in hold.sessions):
            return replace(hold, state=HoldState.CANCELLED, exempt=())
        return hold

    def forget(self, session: str) -> None:
        """`session` was deleted."""
        self.resumed(session)

    def _save(self, hold: Hold) -> Hold:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.path, _to_json(hold))
        self.hold = hold
        return hold

    def _load(self) -> Hold:
        """The saved plan; an unreadable file is logged and the bot starts without a hold (it would be refused
        again and hold anew, which loses nothing)."""
        try:
            return _from_json(json.loads(self.path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return Hold()
        except (ValueError, TypeError, KeyError, UnicodeDecodeError, OSError) as exc:
            logger.error("%s is unreadable (%s); starting without a usage-limit hold", self.path, exc)
            return Hold()


def _to_json(hold: Hold) -> dict[str, Any]:
    data = asdict(hold)
    data["state"], data["notices"], data["exempt"] = hold.state.value, dict(hold.notices), list(hold.exempt)
    return data


def _from_json(raw: Any) -> Hold:
    if not isinstance(raw, dict):
        raise TypeError("expected a JSON object")
    sessions = []
    for item in raw.get("sessions") or []:
        name, refused = item["name"], item.get("refused")
        place, cancelled = item.get("place", ""), item.get("cancelled", False)  # absent in a plan from before
        if not isinstance(name, str) or not NAME_RE.fullmatch(name) or not isinstance(refused, str | None):
            raise ValueError(f"bad held session {item!r}")
        if not isinstance(place, str) or not isinstance(cancelled, bool):
            raise ValueError(f"bad held session {item!r}")
        sessions.append(HeldSession(name, refused, place, cancelled))
    notices = raw.get("notices") or {}
    if not all(isinstance(k, str) and isinstance(v, int) for k, v in notices.items()):
        raise ValueError("bad notices")
    until = raw.get("until", 0.0)
    if isinstance(until, bool) or not isinstance(until, int | float):
        raise ValueError("bad until")
    exempt = raw.get("exempt") or []
    if not all(isinstance(name, str) for name in exempt):
        raise ValueError("bad exempt")
    state, limit_type = HoldState(raw["state"]), str(raw.get("limit_type", ""))
    return Hold(state, float(until), limit_type, tuple(sessions), dict(notices), tuple(exempt))
