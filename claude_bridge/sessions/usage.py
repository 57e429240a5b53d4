"""What /usage reports: per session the last turn's cost and tokens and today's total, and the last known limit state.

An accumulator fed with each turn's result and each RateLimit; "today" is a calendar day in the bot's zone. With a
`path` (SESSIONS_DIR/.bot/usage.json) the per-session lines are kept there after each turn, so a restart or a reload
goes on with today's totals; the account's limit state is not kept (the CLI says it again at its next change).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, tzinfo
from pathlib import Path
from typing import Any

from claude_bridge.protocol.events import TurnResult
from claude_bridge.protocol.limits import RateLimit
from claude_bridge.sessions.store import write_json_atomic

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

    def __init__(self, zone: tzinfo, path: Path | None = None) -> None:
        self.zone = zone
        self.limit: RateLimit | None = None  # the account's last known state (any session's process)
        self._path = path
        self._sessions: dict[str, SessionUsage] = self._load()

    def _load(self) -> dict[str, SessionUsage]:
        if self._path is None or not self._path.exists():
            return {}
        try:
            data = json.loads(self._path.read_text(encoding="utf-8"))
            return {str(name): SessionUsage.from_json(line) for name, line in data["sessions"].items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            logger.error("%s is unreadable (%s); /usage starts again from zero", self._path, exc)
            return {}

    def _save(self) -> None:
        """Kept atomically, without an fsync: a crash keeps the old or the new file, a power cut may lose a turn."""
        if self._path is None:
            return
        lines = {name: usage.to_json() for name, usage in self._sessions.items()}
        try:
            write_json_atomic(self._path, {"version": 1, "sessions": lines}, durable=False)
        except OSError as exc:
            logger.error("could not keep /usage's totals in %s: %s", self._path, exc)

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
        self._save()

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
        if self._sessions.pop(session, None) is not None:
            self._save()
