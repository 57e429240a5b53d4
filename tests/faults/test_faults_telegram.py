"""Faults on the Telegram side: 429s, the Bot API down, a killed bot with a queue, a flood, more sessions than slots."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path

from bot_harness import OWNER, bot_env, running_bot
from claude_bridge.sessions.inbox import Inbox
from conftest import ROOT
from fake_anthropic import FakeAnthropic, Text
from fake_telegram import FakeBotAPI
from faults.conftest import FAULTS, Case
from faults.helpers import say, unanswered
from processes import claude_processes, eventually

pytestmark = FAULTS


async def test_telegram_429_on_the_final_answer(
    tmp_path: Path, fakes: tuple[FakeBotAPI, FakeAnthropic], case: Case
) -> None:
    """Telegram answers 429 (retry after 2 s) to the final answer."""
    tg, api = fakes
    async with running_bot(tmp_path, tg, api) as bot:
        await say(bot, "warm up", "echo: warm up")
        tg.fail_next("sendMessage", 429, retry_after=2)
        await say(bot, "answer despite 429", "echo: answer despite 429")
        case.seen(bot.texts())
    rejected = [c for c in tg.calls_to("sendMessage") if c.status == 429]
    assert len(rejected) == 1 and "echo: answer despite 429" in str(rejected[0].params.get("text"))  # the final one
    copies = sum("answer despite 429" in t for t in bot.texts())
    lost = unanswered(bot.texts(), ["warm up", "answer despite 429"])
    lost += [f"the answer arrived {copies} times"] if copies > 1 else []
    case.measured(lost, "fake Bot API fail_next('sendMessage', 429, retry_after=2)")


async def test_bot_api_down_for_10_s_mid_answer(
    tmp_path: Path, fakes: tuple[FakeBotAPI, FakeAnthropic], case: Case
) -> None:
    """The Bot API answers 502 to everything for 10 s while an answer streams; a message is sent meanwhile."""
    tg, api = fakes
    full = "streamed " + " ".join(f"w{n}" for n in range(120))
    async with running_bot(tmp_path, tg, api) as bot:
        await say(bot, "warm up", "echo: warm up")
        api.enqueue(Text(full, chunk_size=40, delay=0.1))
        tg.push_text(OWNER, "a long answer please")
        await tg.wait_for("sendMessageDraft", lambda p: "streamed" in str(p.get("text")), timeout=60)
        tg.down(10)
        tg.push_text(OWNER, "sent during the outage")  # Telegram holds it until the bot polls again
        await tg.wait_for("sendMessage", lambda p: "w119" in str(p.get("text")), timeout=90)
        await tg.wait_for("sendMessage", lambda p: "echo:" in str(p.get("text"))
                          and "sent during the outage" in str(p.get("text")), timeout=90)
        case.seen(bot.texts())
    refused = sum(c.status == 502 for c in tg.calls)
    assert refused > 0  # the outage really happened
    finals = [t for t in bot.texts() if "w119" in t]
    lost = [] if finals and all(f"w{n} " in finals[-1] + " " for n in range(120)) else ["the streamed answer"]
    lost += unanswered(bot.texts(), ["sent during the outage"])
    case.measured(lost, f"fake Bot API down(10): 502 to every call ({refused} refused)")


async def test_bot_kill_9_with_5_messages_queued(
    tmp_path: Path, fakes: tuple[FakeBotAPI, FakeAnthropic], case: Case
) -> None:
    """The bot is `kill -9`ed while one message is answered and 5 wait in its queue; then it is started again."""
    tg, api = fakes
    env = bot_env(tmp_path, tg, api)
    prompts = [f"queued {chr(ord('a') + n)}" for n in range(6)]

    async def start() -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable, str(ROOT / "bot.py"), cwd=tmp_path, env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)

    first = await start()
    try:
        await tg.wait_polling(timeout=60)
        api.enqueue(Text("slow " * 400, chunk_size=5, delay=0.05))  # ~20 s: still in flight when we kill
        for prompt in prompts:
            tg.push_text(OWNER, prompt)
        await api.wait_for_requests(1)  # the first message is at the API: the slow answer is its own
        inbox = Inbox(tmp_path / "sessions/.bot/sessions/default/inbox.jsonl")
        await eventually(lambda: [e.state.value for e in inbox.read()] == ["sent"] + ["queued"] * 5)
        await tg.wait_polling(timeout=30)  # the updates are confirmed: Telegram will not send them again
    finally:
        first.kill()
        await first.wait()
    second = await start()
    try:
        await tg.wait_for("sendMessage", lambda p: "echo:" in str(p.get("text")) and prompts[-1] in str(p.get("text")),
                          timeout=90)
        await eventually(lambda: any("cut off" in t for t in [m.text or "" for m in tg.messages(OWNER)]))
    finally:
        second.send_signal(signal.SIGTERM)
        await asyncio.wait_for(second.wait(), 60)
        for leftover in claude_processes(tmp_path / "sessions"):
            with contextlib.suppress(OSError):
                os.killpg(leftover.pid, signal.SIGKILL)
    texts = [m.text or "" for m in tg.messages(OWNER) if not m.deleted]
    case.seen(texts)
    cut_off = [t for t in texts if "cut off" in t]
    echoes = [t for t in texts if t.startswith("echo:")]
    answered = {p for p in prompts if any(p in t for t in echoes)}
    lost = [f"'{p}': neither answered nor reported cut off" for p in prompts
            if p not in answered and not any(p in t for t in cut_off)]
    twice = [p for p in prompts[1:] if sum(p in t for t in texts if t.startswith("echo:")) > 1]
    lost += [f"{p} answered twice" for p in twice]
    assert second.returncode == 0
    case.measured(lost, "bot.py as a process; SIGKILL with 1 sent + 5 queued in the inbox; started again")


async def test_30_messages_in_3_s_under_flood_limits(
    tmp_path: Path, fakes: tuple[FakeBotAPI, FakeAnthropic], case: Case
) -> None:
    """30 messages in 3 s while the fake Bot API enforces Telegram's flood limits (TelegramLimits)."""
    tg, api = fakes
    prompts = [f"flood {n:02d}" for n in range(30)]
    tg.enforce_telegram_limits()
    async with running_bot(tmp_path, tg, api) as bot:
        for prompt in prompts:
            tg.push_text(OWNER, prompt)
            await asyncio.sleep(0.1)  # the pace of the scenario, not a wait for the bot
        with contextlib.suppress(AssertionError):  # what is still unanswered then is what was lost
            await eventually(lambda: not unanswered(bot.texts(), prompts), timeout=120)
        case.seen(bot.texts())
    lost = unanswered(bot.texts(), prompts)
    twice = [p for p in prompts if sum(p in t for t in bot.texts() if t.startswith("echo:")) > 1]
    lost += [f"'{p}' answered twice" for p in twice]
    case.measured(lost, f"enforce_telegram_limits(); 30 texts 0.1 s apart; {tg.flood_rejections} 429s drawn "
                  f"({dict(tg.flood_by_rule) or 'none'})")


async def test_5_busy_sessions_with_2_live_slots(
    tmp_path: Path, fakes: tuple[FakeBotAPI, FakeAnthropic], case: Case
) -> None:
    """Five sessions each get a slow answer at once while MAX_LIVE_SESSIONS=2."""
    tg, api = fakes
    names = [f"s{n}" for n in range(5)]
    async with running_bot(tmp_path, tg, api, MAX_LIVE_SESSIONS="2") as bot:
        # The k-th answer the API gives ends "done k": which session got it is in the k-th request.
        api.enqueue(*[Text("busy " * 30 + f"done {k}", chunk_size=15, delay=0.3) for k in range(len(names))])
        for name in names:
            await say(bot, f"/new {name}", name)
            tg.push_text(OWNER, f"work for {name}")
            await eventually(lambda name=name: any(f"work for {name}" in r.user_texts for r in api.requests))
        with contextlib.suppress(AssertionError):  # what is still missing then is what was lost
            await eventually(lambda: sum("done" in t for t in bot.texts()) >= len(names), timeout=120)
        live = sum(bot.manager.status(n).pid is not None for n in names)
        case.seen(bot.texts())
    asked = {k: next(n for n in names if f"work for {n}" in r.user_texts) for k, r in enumerate(api.requests[:5])}
    shown = [t.rstrip() for t in bot.texts()]
    lost = [f"the answer for {asked[k]}" for k in asked if not any(t.endswith(f"done {k}") for t in shown)]
    if api.peak_answering > 2 or live > 2:
        lost.append(f"the cap: {api.peak_answering} sessions answered at once, {live} live at the end (cap 2)")
    case.measured(lost, f"MAX_LIVE_SESSIONS=2; 5 × /new + a 3 s answer each; at most {api.peak_answering} answering "
                  f"at once, {live} live at the end")
