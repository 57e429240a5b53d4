"""Faults of Claude Code and its API: a killed CLI, a CLI that will not start, a silent hang, API errors, garbage."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from bot_harness import OWNER, running_bot
from fake_anthropic import FakeAnthropic, Hang, HttpError
from fake_claude_helper import FakeCliScript, Step, make_fake_cli
from fake_telegram import FakeBotAPI
from faults.conftest import FAULTS, Case
from faults.helpers import say, unanswered
from processes import eventually, transcript_text

pytestmark = FAULTS


async def test_cli_sigkill_mid_turn(tmp_path: Path, fakes: tuple[FakeBotAPI, FakeAnthropic], case: Case) -> None:
    """The CLI is SIGKILLed while it answers."""
    tg, api = fakes
    async with running_bot(tmp_path, tg, api) as bot:
        await say(bot, "remember kiwi", "echo: remember kiwi")
        await eventually(lambda: "kiwi" in transcript_text(tmp_path))  # the CLI writes it a moment after the result
        api.enqueue(Hang())
        tg.push_text(OWNER, "this turn is killed")
        await api.wait_for_requests(2)
        os.kill(bot.manager.status("default").pid or 0, signal.SIGKILL)
        cut_off = await say(bot, "after the kill", "echo: after the kill")
        notices = [t for t in bot.texts() if "cut off" in t]
        case.seen(bot.texts())
    lost = unanswered(bot.texts(), ["remember kiwi", "after the kill"])
    if not notices:
        lost.append("'this turn is killed': neither answered nor reported cut off")
    # One "restarted" notice, after the "Restarting in 1 s" it follows (not one per listener, not before it).
    status = [t for t in bot.texts() if "Restarting Claude in" in t or "Claude restarted" in t]
    if [("restarted" in t) for t in status] != [False, True]:
        lost.append(f"the restart notices: {status}")
    assert "remember kiwi" in api.requests[-1].user_texts, cut_off  # the conversation survived
    case.measured(lost, "real CLI; Messages API hangs; os.kill(cli pid, SIGKILL)")


async def test_cli_exits_at_spawn_three_times(
    tmp_path: Path, fakes: tuple[FakeBotAPI, FakeAnthropic], case: Case
) -> None:
    """The CLI exits at start three times in a row, then starts."""
    tg, api = fakes
    script = FakeCliScript(tmp_path / "script.json").on_start(exit=1, stderr="fake: cannot start\n", times=3)
    async with running_bot(tmp_path, tg, api, claude_bin=make_fake_cli(tmp_path, script)) as bot:
        sent: list[str] = []
        for n in range(5):  # each message waits for the bot's next message (answer, error or silence) first
            sent.append(f"try {n}")
            since = len(tg.calls)
            tg.push_text(OWNER, sent[-1])
            try:
                await tg.wait_for("sendMessage", lambda p: p["chat_id"] == OWNER and (
                    "echo:" in str(p.get("text")) or "at start" in str(p.get("text"))), since=since, timeout=30)
            except TimeoutError:
                break
            if any(f"echo: {sent[-1]}" in t for t in bot.texts()):
                break
        case.seen(bot.texts())
    told = sum("at start" in t for t in bot.texts())
    answered = [p for p in sent if any(f"echo: {p}" in t for t in bot.texts())]
    # Every message sent is answered or has its own start error (the errors name no message: count them).
    lost = [f"{len(sent) - len(answered) - told} of {len(sent)} messages ({', '.join(sent)}): no answer, no error"]
    lost = lost if len(answered) + told < len(sent) else []
    lost += [] if answered else ["Claude never started"]
    case.measured(lost, "stand-in CLI: on_start exit=1 three times (fake_claude on_start times=3)")


async def test_a_silent_hang_is_ended_by_the_watchdog(
    tmp_path: Path, fakes: tuple[FakeBotAPI, FakeAnthropic], case: Case
) -> None:
    """The Messages API accepts the request and never answers (a silent hang)."""
    tg, api = fakes
    async with running_bot(tmp_path, tg, api, WATCHDOG_SECONDS="4") as bot:
        api.enqueue(Hang())
        await say(bot, "hang here", "watchdog", timeout=60)
        await say(bot, "after the hang", "echo: after the hang")
        case.seen(bot.texts())
    told = [t for t in bot.texts() if "watchdog" in t]
    lost = unanswered(bot.texts(), ["after the hang"]) + ([] if told else ["'hang here': no message at all"])
    case.measured(lost, "fake API Hang(); WATCHDOG_SECONDS=4")


@pytest.mark.parametrize("status", [500, 529, 401])
async def test_api_errors(tmp_path: Path, fakes: tuple[FakeBotAPI, FakeAnthropic], case: Case, status: int) -> None:
    """The Messages API answers an HTTP error on every attempt."""
    tg, api = fakes
    case.title = f"The Messages API answers HTTP {status} on every attempt"
    async with running_bot(tmp_path, tg, api, CLAUDE_CODE_MAX_RETRIES="1") as bot:
        api.enqueue(*[HttpError(status, f"fake {status} for this test")] * 2)
        since = len(tg.calls)
        tg.push_text(OWNER, "meet an error")
        await tg.wait_for("sendMessage", lambda p: "fake" in str(p.get("text")) and "retry" not in str(p.get("text")),
                          since=since, timeout=60)
        await say(bot, "after the error", "echo: after the error")
        case.seen(bot.texts())
    lost = unanswered(bot.texts(), ["after the error"])
    errors = [t for t in bot.texts() if f"fake {status}" in t]
    assert len(errors) == 1, errors  # the final error is told once
    case.measured(lost, f"fake API HttpError({status}) ×2; CLAUDE_CODE_MAX_RETRIES=1")


async def test_garbage_and_huge_cli_output(tmp_path: Path, fakes: tuple[FakeBotAPI, FakeAnthropic], case: Case) -> None:
    """The CLI prints lines that are not JSON, then one 3 MB line."""
    tg, api = fakes
    script = (FakeCliScript(tmp_path / "script.json")
              .turn(Step.garbage("{not json"), Step.garbage("\x1b[31m binary \x7f"), Step.text("after garbage"))
              .turn(Step.huge_line(3_000_000, "y")))
    async with running_bot(tmp_path, tg, api, claude_bin=make_fake_cli(tmp_path, script)) as bot:
        await say(bot, "say something", "after garbage")
        since = len(tg.calls)
        tg.push_text(OWNER, "say a lot")
        document = await tg.wait_for("sendDocument", timeout=90, since=since)
        await say(bot, "and now?", "echo: and now?")
        case.seen(bot.texts())
    content = tg.file_content(tg.messages(OWNER)[-2].document.file_id) if document.ok else b""  # type: ignore[union-attr]
    lost = [] if content.count(b"y") >= 3_000_000 else [f"the 3 MB answer arrived as {content.count(b'y')} bytes"]
    case.measured(lost + unanswered(bot.texts(), ["and now?"]), "stand-in CLI: Step.garbage ×2, Step.huge_line(3 MB)")
