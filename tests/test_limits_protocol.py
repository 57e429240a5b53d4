"""The usage limit in the CLI's stream: rate_limit_event typed, and a refused turn told from other failures."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from test_fake_anthropic import SUBSCRIPTION, claude

from claude_bridge.protocol.events import LimitText, TurnResult, parse_event
from claude_bridge.protocol.limits import RateLimit, parse_rate_limit, refused_by_limit
from fake_anthropic import FakeAnthropic, UsageLimit
from fake_process import FakeClock

# Recorded from 2.1.332 (protocol notes §17); 2.1.197 sends the same minus `unifiedWindows`.
REJECTED = {"type": "rate_limit_event", "rate_limit_info": {
    "status": "rejected", "resetsAt": 1796513802, "rateLimitType": "five_hour", "isUsingOverage": False}}
WARNING = {"type": "rate_limit_event", "rate_limit_info": {
    "status": "allowed_warning", "resetsAt": 1796517462, "rateLimitType": "five_hour", "utilization": 0.9,
    "isUsingOverage": False, "surpassedThreshold": 0.75,
    "unifiedWindows": {"five_hour": {"utilization": 0.9, "resetsAt": 1796517462, "status": "allowed_warning"}}}}
REFUSED_RESULT = {"type": "result", "subtype": "success", "is_error": True, "api_error_status": 429,
                  "result": "You've hit your 5-hour limit · resets 11:36pm (UTC)", "terminal_reason": "api_error"}
API_KEY_429 = {**REFUSED_RESULT, "result": "API Error: Request rejected (429) · Rate limited"}


@pytest.mark.fast
def test_rejected_event_reads_as_a_typed_rate_limit() -> None:
    assert parse_event(REJECTED) == (
        RateLimit(status="rejected", resets_at=1796513802.0, limit_type="five_hour", using_overage=False),
    )
    (limit,) = parse_event(REJECTED)
    assert isinstance(limit, RateLimit)
    assert (limit.rejected, limit.warns, limit.limit_name) == (True, False, "5-hour limit")


@pytest.mark.fast
def test_warning_keeps_utilization_and_threshold() -> None:
    limit = parse_rate_limit(WARNING)

    assert (limit.status, limit.warns, limit.rejected) == ("allowed_warning", True, False)
    assert (limit.utilization, limit.surpassed_threshold, limit.resets_at) == (0.9, 0.75, 1796517462.0)


@pytest.mark.fast
def test_a_status_we_never_saw_still_reads_as_a_warning_and_odd_fields_stay_empty() -> None:
    limit = parse_rate_limit({"type": "rate_limit_event", "rate_limit_info": {
        "status": "allowed_soon_blocked", "resetsAt": "tomorrow", "rateLimitType": None, "utilization": True}})

    assert limit == RateLimit(status="allowed_soon_blocked")
    assert limit.warns and limit.limit_name == "usage limit"
    assert parse_rate_limit({"type": "rate_limit_event"}) == RateLimit(status="allowed")


@pytest.mark.fast
def test_result_keeps_its_api_error_status() -> None:
    (result,) = parse_event(REFUSED_RESULT)

    assert isinstance(result, TurnResult)
    assert (result.is_error, result.api_error_status) == (True, 429)
    (ok,) = parse_event({"type": "result", "subtype": "success", "is_error": False, "api_error_status": None})
    assert isinstance(ok, TurnResult) and ok.api_error_status is None


@pytest.mark.fast
def test_refused_only_after_a_rejected_event() -> None:
    rejected, allowed = parse_rate_limit(REJECTED), RateLimit(status="allowed")

    assert refused_by_limit(True, 429, rejected)
    assert not refused_by_limit(True, 429, None)  # an API-key 429: no rate_limit_event ever came
    assert not refused_by_limit(True, 429, allowed)
    assert not refused_by_limit(True, 500, rejected)
    assert not refused_by_limit(False, None, rejected)


@pytest.mark.real_cli
async def test_real_cli_turns_refused_by_the_limit_are_recognised(
    claude_bin: Path, tmp_path: Path, api: FakeAnthropic
) -> None:
    clock = FakeClock(time.time())
    api.clock, api.usage = clock, UsageLimit(resets_at=int(clock.now) + 3600)
    async with claude(claude_bin, tmp_path, api.url, **SUBSCRIPTION) as cli:
        await cli.ask("first")
        await cli.ask("second")
        clock.advance(3600)
        await cli.ask("third")

    last: RateLimit | None = None
    verdicts, texts = [], []
    for event in (e for raw in cli.events for e in parse_event(raw)):
        if isinstance(event, RateLimit):
            last = event
        elif isinstance(event, LimitText):
            texts.append(event.text)
        elif isinstance(event, TurnResult):
            verdicts.append(refused_by_limit(event.is_error, event.api_error_status, last))
    assert verdicts == [True, True, False]
    assert last is not None and (last.status, last.resets_at) == ("allowed", float(int(clock.now)))
    assert len(texts) == 2 and texts[0].startswith("You've hit your ")  # the CLI's words, never Claude's answer
