"""The usage-limit hold plan: held until the reset, resumed in order, cancelled, and surviving a restart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from claude_bridge.protocol.limits import RateLimit
from claude_bridge.sessions.limits import LIMITS_FILE, RETRY_AFTER_STALE, HeldSession, HoldPlan, HoldState
from fake_process import FakeClock

pytestmark = pytest.mark.fast

RESET = 1_000_000.0 + 3600


def rejected(resets_at: float | None = RESET, limit_type: str = "five_hour") -> RateLimit:
    return RateLimit(status="rejected", resets_at=resets_at, limit_type=limit_type)


def test_a_refused_turn_holds_new_messages_until_the_reset_and_a_margin(tmp_path: Path) -> None:
    clock, plan = FakeClock(), HoldPlan(tmp_path, margin=30)

    plan.refused("work", "e1", rejected(), clock.now)

    assert plan.holds(clock.now) and plan.wake_at() == RESET + 30
    assert plan.due_sessions(clock.now) == ()
    clock.advance(3600 + 29)
    assert plan.holds(clock.now) and plan.due_sessions(clock.now) == ()
    clock.advance(1)
    assert not plan.holds(clock.now)
    assert plan.due_sessions(clock.now) == (HeldSession("work", "e1"),)


def test_sessions_resume_in_the_order_they_were_held_refused_message_first(tmp_path: Path) -> None:
    clock, plan = FakeClock(), HoldPlan(tmp_path, margin=0)
    plan.refused("work", "w1", rejected(), clock.now)
    plan.queued("notes")  # a message to another session waited without being sent
    plan.queued("work")  # already held: keeps its place
    plan.refused("docs", "d1", rejected(), clock.now)

    clock.advance(3600)

    assert plan.due_sessions(clock.now) == (
        HeldSession("work", "w1"), HeldSession("notes", None), HeldSession("docs", "d1")
    )


def test_the_plan_ends_once_every_held_session_was_answered(tmp_path: Path) -> None:
    clock, plan = FakeClock(), HoldPlan(tmp_path, margin=0)
    plan.refused("work", "w1", rejected(), clock.now)
    plan.queued("notes")
    clock.advance(3600)

    plan.resumed("work")
    assert plan.hold.state is HoldState.HELD
    plan.resumed("notes")

    assert plan.hold.state is HoldState.NONE and plan.wake_at() is None
    assert json.loads((tmp_path / LIMITS_FILE).read_text())["state"] == "none"


def test_a_resend_still_refused_waits_for_the_new_reset_keeping_its_place(tmp_path: Path) -> None:
    clock, plan = FakeClock(), HoldPlan(tmp_path, margin=0)
    plan.refused("work", "w1", rejected(), clock.now)
    plan.queued("notes")
    clock.advance(3600)

    plan.refused("work", "w1", rejected(RESET + 7200, "seven_day"), clock.now)

    assert plan.holds(clock.now) and plan.wake_at() == RESET + 7200
    assert plan.hold.limit_type == "seven_day"
    assert [s.name for s in plan.hold.sessions] == ["work", "notes"]


def test_a_resend_refused_without_a_fresh_reset_time_retries_later(tmp_path: Path) -> None:
    clock, plan = FakeClock(), HoldPlan(tmp_path, margin=0)
    plan.refused("work", "w1", rejected(), clock.now)
    clock.advance(3600)

    plan.refused("work", "w1", rejected(), clock.now)  # the CLI sent no new event: the reset we know is past

    assert plan.wake_at() == clock.now + RETRY_AFTER_STALE


def test_cancel_resumes_nothing_and_releases_each_session_when_the_user_writes(tmp_path: Path) -> None:
    clock, plan = FakeClock(), HoldPlan(tmp_path, margin=0)
    plan.refused("work", "w1", rejected(), clock.now, "1")
    plan.queued("notes", "1")

    assert plan.cancel("1") and not plan.cancel("1")
    clock.advance(3600)

    assert (plan.hold.state, plan.wake_at(), plan.due_sessions(clock.now)) == (HoldState.CANCELLED, None, ())
    assert not plan.holds(clock.now) and plan.must_wait("work", clock.now) and not plan.must_wait("x", clock.now)
    assert plan.released("work") and not plan.released("work") and not plan.released("other")
    assert plan.released("notes") and plan.hold.state is HoldState.NONE


def test_a_cancel_holds_back_only_its_places_sessions_and_outlives_a_new_refusal(tmp_path: Path) -> None:
    clock, plan = FakeClock(), HoldPlan(tmp_path, margin=0)
    plan.refused("work", "w1", rejected(), clock.now, "1")
    plan.queued("group-chat", "-100:7")

    assert plan.cancel("-100:7") and plan.hold.state is HoldState.HELD
    assert plan.hold.places_cancelled("-100:7") and not plan.hold.places_cancelled("1")
    assert plan.released("group-chat") and not plan.must_wait("group-chat", clock.now)  # its user wrote: it goes
    assert plan.must_wait("work", clock.now)
    plan.refused("group-chat", "g1", rejected(), clock.now, "-100:7")  # tried, and refused again: held anew
    assert plan.hold.exempt == () and plan.must_wait("group-chat", clock.now)

    plan.cancel("1")
    plan.refused("group-chat", "g2", rejected(RESET + 60), clock.now, "-100:7")
    assert [(s.name, s.cancelled) for s in plan.hold.sessions] == [("work", True), ("group-chat", False)]
    clock.advance(RESET + 60 - clock.now)
    assert [s.name for s in plan.due_sessions(clock.now)] == ["group-chat"]  # the cancelled one waits for its user
    assert HoldPlan(tmp_path).hold == plan.hold
    plan.resumed("group-chat")
    assert plan.hold.state is HoldState.CANCELLED and plan.wake_at() is None


def test_the_plan_and_its_limit_messages_survive_a_restart(tmp_path: Path) -> None:
    clock, plan = FakeClock(), HoldPlan(tmp_path, margin=30)
    plan.refused("work", "w1", rejected(limit_type="seven_day"), clock.now)
    plan.queued("notes")
    plan.shown("-100123:7", 4242)

    again = HoldPlan(tmp_path, margin=30)

    assert again.hold == plan.hold
    assert again.wake_at() == RESET + 30 and dict(again.hold.notices) == {"-100123:7": 4242}


def test_an_unreadable_plan_starts_without_a_hold(tmp_path: Path) -> None:
    (tmp_path / LIMITS_FILE).parent.mkdir()
    (tmp_path / LIMITS_FILE).write_text('{"state": "held", "until": "soon", "sessions": []}')

    assert HoldPlan(tmp_path).hold.state is HoldState.NONE
    (tmp_path / LIMITS_FILE).write_text('{"state": "held", "sessions": [{"name": "../etc"}]}')
    assert HoldPlan(tmp_path).hold.state is HoldState.NONE
