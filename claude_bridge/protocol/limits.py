"""The subscription usage limit as the CLI reports it (protocol notes §17): the `rate_limit_event` line, typed, and
how to tell a turn the limit refused from any other failed turn.

It knows the JSON of those lines only; what the bot does about a limit (hold, resume, say it) is the sessions layer's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

ALLOWED = "allowed"
REJECTED = "rejected"
WARNING = "allowed_warning"  # the only warning status measured (2.1.197, 2.1.332); others are treated alike

# `rateLimitType` values the CLI's schema lists (2.1.332), with how a person names them.
LIMIT_NAMES = {
    "five_hour": "5-hour limit",
    "seven_day": "weekly limit",
    "seven_day_opus": "weekly Opus limit",
    "seven_day_sonnet": "weekly Sonnet limit",
    "seven_day_overage_included": "weekly limit",
    "overage": "extra-usage limit",
}


@dataclass(frozen=True)
class RateLimit:
    """`rate_limit_event`: the account's plan state changed (sent once per change, not once per turn).

    Only subscription logins send it; an API-key session never does (measured), its 429s are retried (`api_retry`).
    """

    status: str  # "allowed", "allowed_warning" or "rejected"; kept as sent so a newer status still reads as a warning
    resets_at: float | None = None  # epoch seconds
    limit_type: str = ""  # "five_hour", "seven_day", …; "" when the CLI did not say
    using_overage: bool = False  # paid extra usage covers the overflow
    utilization: float | None = None  # fraction of the window used, when the server said
    surpassed_threshold: float | None = None  # the highest warning threshold passed

    @property
    def rejected(self) -> bool:
        """Requests are refused until `resets_at`."""
        return self.status == REJECTED

    @property
    def warns(self) -> bool:
        """Neither plainly allowed nor refused: a warning to show once per window."""
        return self.status not in (ALLOWED, REJECTED)

    @property
    def limit_name(self) -> str:
        """How a person names the limit: "5-hour limit", "weekly limit", …"""
        return LIMIT_NAMES.get(self.limit_type, "usage limit")


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def parse_rate_limit(raw: Mapping[str, Any]) -> RateLimit:
    """Read one `{"type": "rate_limit_event", "rate_limit_info": {...}}` line; missing fields stay empty."""
    info = raw.get("rate_limit_info")
    if not isinstance(info, Mapping):
        info = {}
    return RateLimit(
        status=str(info.get("status") or ALLOWED),
        resets_at=_float(info.get("resetsAt")),
        limit_type=str(info.get("rateLimitType") or ""),
        using_overage=info.get("isUsingOverage") is True,
        utilization=_float(info.get("utilization")),
        surpassed_threshold=_float(info.get("surpassedThreshold")),
    )


def refused_by_limit(is_error: bool, api_error_status: int | None, last: RateLimit | None) -> bool:
    """Whether a turn's `result` is the usage limit refusing it, given the process's latest RateLimit.

    Measured on both CLIs: every refused turn ends `is_error` with `api_error_status` 429, but only the first one is
    preceded by a `rejected` event (the event marks a change), so the latest event is what tells. An API-key 429
    (after its retries) looks the same in `result` but no rate_limit_event ever precedes it.
    """
    return is_error and api_error_status == 429 and last is not None and last.rejected
