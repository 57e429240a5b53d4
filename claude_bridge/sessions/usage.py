"""What /usage reports: per session the last turn's cost and tokens and today's total, and the last known limit state.

An accumulator fed with each turn's result (the user's turns and Claude's own) and each RateLimit; "today" is a
calendar day in the bot's zone. A session's line travels in its metadata.json (`usage`), written with the turn's other
statistics, so a restart or a reload goes on with today's totals; the account's limit state is not kept (the CLI says
it again at its next change).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, tzinfo
from typing import Any

from claude_bridge.protocol.events import TurnResult
from claude_bridge.protocol.limits import RateLimit

logger = logging.getLogger(__name__)


def _count(usage: Mapping[str, Any], key: str) -> int:
    value = usage.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


@dataclass(frozen=True)
class Tokens:
    """Token counts of one turn or a sum of turns, as the `result`'s `usage` names them (per turn, §2)."""

    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0

    @classmethod
    def of(cls, usage: Mapping[str, Any]) -> Tokens:
        return cls(
            _count(usage, "input_tokens"),
            _count(usage, "output_tokens"),
            _count(usage, "cache_read_input_tokens"),
            _count(usage, "cache_creation_input_tokens"),
        )

    @property
    def total(self) -> int:
        return self.input + self.output + self.cache_read + self.cache_write

    def __add__(self, other: Tokens) -> Tokens:
        return Tokens(
            self.input + other.input,
            self.output + other.output,
            self.cache_read + other.cache_read,
            self.cache_write + other.cache_write,
        )


@dataclass(frozen=True)
class SessionUsage:
    """One session's line of /usage."""

    last_cost_usd: float = 0.0
    last_tokens: Tokens = field(default_factory=Tokens)
    day: date | None = None  # the day the totals below belong to
    today_cost_usd: float = 0.0
    today_tokens: Tokens = field(default_factory=Tokens)
    today_turns: int = 0

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "day": self.day.isoformat() if self.day is not None else None}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SessionUsage:
        """A line as to_json wrote it; ValueError, KeyError or TypeError if it is not one."""
        day = data.get("day")
        return cls(
            last_cost_usd=float(data["last_cost_usd"]),
            last_tokens=Tokens(**data["last_tokens"]),
            day=date.fromisoformat(day) if isinstance(day, str) else None,
            today_cost_usd=float(data["today_cost_usd"]),
            today_tokens=Tokens(**data["today_tokens"]),
            today_turns=int(data["today_turns"]),
        )


class UsageBook:
    """Accumulates turns per session; `today(name, now)` reads a session's usage with stale day totals dropped."""

    def __init__(self, zone: tzinfo) -> None:
        self.zone = zone
        self.limit: RateLimit | None = None  # the account's last known state (any session's process)
        self._sessions: dict[str, SessionUsage] = {}

    def restore(self, session: str, kept: Mapping[str, Any]) -> None:
        """Take a session's line back as `kept()` gave it (from its metadata); an unreadable one starts at zero."""
        if not kept:
            return
        try:
            self._sessions[session] = SessionUsage.from_json(kept)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            logger.error("session %s: its /usage line is unreadable (%s); it starts again from zero", session, exc)

    def kept(self, session: str) -> dict[str, Any]:
        """The session's line as its metadata keeps it ({} before its first turn)."""
        usage = self._sessions.get(session)
        return usage.to_json() if usage is not None else {}

    def _day(self, now: float) -> date:
        return datetime.fromtimestamp(now, self.zone).date()

    def record(self, session: str, result: TurnResult, now: float) -> None:
        """Count a turn's result; `cost_usd` is per turn (the process turns the CLI's running total into it)."""
        tokens = Tokens.of(result.usage)
        before = self.today(session, now)
        self._sessions[session] = SessionUsage(
            last_cost_usd=result.cost_usd,
            last_tokens=tokens,
            day=self._day(now),
            today_cost_usd=before.today_cost_usd + result.cost_usd,
            today_tokens=before.today_tokens + tokens,
            today_turns=before.today_turns + 1,
        )

    def saw(self, limit: RateLimit) -> None:
        """Remember the account's latest limit state."""
        self.limit = limit

    def today(self, session: str, now: float) -> SessionUsage:
        """The session's usage as of `now`: yesterday's totals read as zero, the last turn stays."""
        usage = self._sessions.get(session, SessionUsage())
        if usage.day == self._day(now):
            return usage
        return SessionUsage(usage.last_cost_usd, usage.last_tokens, self._day(now))

    def sessions(self) -> list[str]:
        """The sessions with a recorded turn, by name."""
        return sorted(self._sessions)

    def forget(self, session: str) -> None:
        self._sessions.pop(session, None)
