"""`make bench`: speed and memory of the bridge against its targets, printed and written to docs/benchmarks.md.

The real Claude Code CLI talks to an instant fake Messages API, so every latency is the CLI's plus ours, not a
model's; the bot talks to a fake Bot API that enforces Telegram's documented flood limits (TelegramLimits).
Figures are printed, never asserted: the machine is shared and slow, so read them next to its description.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from bot_harness import bot_env  # noqa: E402
from claude_bridge.process.argv import ProcessOptions  # noqa: E402
from claude_bridge.process.subprocess import ClaudeSubprocess  # noqa: E402
from claude_bridge.sessions.store import META_FILE, STATE_DIR  # noqa: E402
from conftest import cli_env, real_cli_path  # noqa: E402
from fake_anthropic import FakeAnthropic, Text  # noqa: E402
from fake_claude_helper import FakeCliScript, Step, make_fake_cli  # noqa: E402
from fake_telegram import FakeBotAPI, TelegramLimits  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "20"))  # fewer only to try the bench out
WARM_UP = 3
CHATS = [201, 202, 203, 204]  # the bot's users, one private chat and one session each, used in turn
HUMAN_GAP = 0.75  # s between messages; with 4 chats in turn, each chat waits ≥ 3 s (a full flood bucket)
LIMITS = TelegramLimits()
REFILL = LIMITS.chat_burst / LIMITS.chat_per_second  # s until a chat's flood budget is full again
BRIDGE_COST_TARGET = 0.005  # s the bridge may add to a message beyond Telegram's and Claude's
SPREAD_TARGET = 0.5  # s from a long answer's first part to its last
BIG_LINE = 64 * 2**20
STREAM_ARGS = ["-p", "--input-format", "stream-json", "--output-format", "stream-json", "--verbose"]


@dataclass
class Figure:
    """One measured row: samples (seconds) or a single value, with its target and verdict."""

    what: str
    samples: list[float] = field(default_factory=list)
    value: str = ""
    target: str = ""
    verdict: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def p90(self) -> float:
        ordered = sorted(self.samples)
        return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]

    def cells(self) -> list[str]:
        if self.samples:
            return [self.what, ms(self.median), ms(self.p90), str(len(self.samples)), self.target, self.verdict]
        return [self.what, self.value, "", "", self.target, self.verdict]


def ms(seconds: float) -> str:
    if seconds < 0.01:
        return f"{seconds * 1000:.1f} ms"  # a few ms: the tenth tells a target met from one missed
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


@dataclass
class Report:
    """Rows in the order measured, printed as they come, then written as Markdown."""

    machine: list[str]
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, figure: Figure) -> Figure:
        self.figures.append(figure)
        cells = figure.cells()
        print(f"{cells[0]:<58} {cells[1]:>9} {cells[2]:>9} {cells[3]:>3}  {cells[4]} {cells[5]}", flush=True)
        return figure

    def markdown(self) -> str:
        lines = [
            "# Benchmarks",
            "",
            "Written by `make bench` (bench/benchmark.py). The real Claude Code CLI answers from an instant fake",
            "Messages API, so a latency is the CLI's cost plus the bridge's. The bot talks to a fake Bot API that",
            "enforces Telegram's documented flood limits (Bot FAQ), not the bot's own pacing: per chat a burst of "
            f"{LIMITS.chat_burst}",
            f"then {LIMITS.chat_per_second:g} message/s (the burst size is not documented), in a group at most "
            f"{LIMITS.group_per_minute} in any 60 s,",
            f"over all chats at most {LIMITS.overall_per_second} in any 1 s. It counts what Telegram counts: messages, "
            "files and edits;",
            "drafts, chat actions and deletions are free. Each 429 is counted by the limit that drew it.",
            "A message's time runs from the fake handing the update to the bot's long poll (its own wake-up is",
            "Telegram's) to the answer's sendMessage reaching it. The bridge's own cost is paired per message: that",
            "time less the CLI's time for the same turn (message written → result read, as the bot clocks it in the",
            "session's metadata). It keeps both loopback HTTP trips, PTB's client included. The difference of the",
            "whole bot's median and a bare CLI turn's median at the same pace, this doc's measure until 2026-12-06,",
            "is printed next to it: it also carries the CLI's spread between two runs of 20. A quick follow-up is a",
            "message sent the moment the previous answer arrived (the 2nd and 3rd of three in a row).",
            f"Median and p90 over {RUNS} runs unless n says otherwise. Timing is printed, never asserted in tests.",
            "",
            "## Machine",
            "",
            *[f"- {line}" for line in self.machine],
            "",
            "## Figures",
            "",
            "| measure | median | p90 | n | target | verdict |",
            "|---|---|---|---|---|---|",
            *["| " + " | ".join(cell.replace("|", "/") for cell in figure.cells()) + " |" for figure in self.figures],
            "",
        ]
        if self.notes:
            lines += ["## Notes", "", *[f"- {note}" for note in self.notes], ""]
        return "\n".join(lines)


def describe_machine(cli: Path) -> list[str]:
    version = subprocess.run([cli, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    model = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        platform.processor() or "unknown CPU",
    )
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    where = cli.relative_to(ROOT) if cli.is_relative_to(ROOT) else cli
    return [
        f"{os.cpu_count()} cores ({model}), {psutil.virtual_memory().total / 2**30:.1f} GiB RAM, load {load} at start",
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}",
        f"Claude Code {version.removesuffix(' (Claude Code)')} ({where})",
        f"measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
    ]


def verdict(measured: float, target: float, unit: str = "×") -> str:
    """"met", or "missed by" how much: in × of the bare turn, in time ("s"), or a plain count ("")."""
    if measured <= target:
        return "met"
    if unit == "s":
        return f"missed by {ms(measured - target)}"
    return f"missed by {measured - target:.2f}×" if unit == "×" else f"missed by {measured - target:g}"


# ---------------------------------------------------------------- the CLI alone, and ClaudeSubprocess


async def bare_cli_turns(
    api: FakeAnthropic, root: Path, cli: Path, gap: float = 0.0
) -> tuple[list[float], Counter[str]]:
    """The CLI driven by hand (no bridge code): persistent stream-json process, send → result line, `gap` s apart.

    The gap matters: an idle CLI answers ~20 ms slower than one kept busy (measured 2026-12-05, 2.1.332), so the
    bridge's cost at a human pace is measured against the bare CLI at the same pace."""
    workdir = root / f"bare-{gap:g}"
    workdir.mkdir()
    proc = await asyncio.create_subprocess_exec(
        cli, *STREAM_ARGS, "--include-partial-messages", "--permission-mode=bypassPermissions",
        cwd=workdir, env=cli_env(root, api.url), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL, limit=2**20,
    )
    assert proc.stdin and proc.stdout
    kinds: Counter[str] = Counter()
    latencies = []
    for n in range(WARM_UP + RUNS):
        await asyncio.sleep(gap)
        message = {"type": "user", "message": {"role": "user", "content": f"bare {n}"}}
        started = time.monotonic()
        proc.stdin.write(json.dumps(message).encode() + b"\n")
        await proc.stdin.drain()
        while True:
            event = json.loads(await proc.stdout.readline())
            if n == WARM_UP:  # one warm turn's events, to compare CLI versions
                kinds[":".join(filter(None, [event.get("type"), event.get("subtype")]))] += 1
            if event.get("type") == "result":
                break
        if n >= WARM_UP:
            latencies.append(time.monotonic() - started)
    proc.stdin.close()
    await proc.wait()
    return latencies, kinds


def process_options(root: Path, api_url: str, cli: Path, cwd: Path, *, resume_id: str | None = None) -> ProcessOptions:
    cwd.mkdir(parents=True, exist_ok=True)
    return ProcessOptions(
        claude_bin=cli, cwd=cwd, env=cli_env(root, api_url), permission_mode="bypassPermissions", resume_id=resume_id,
    )


async def timed_turn(process: ClaudeSubprocess, text: str) -> float:
    started = time.monotonic()
    result = await process.submit(text).wait()
    assert not result.is_error, result.text
    return time.monotonic() - started


async def subprocess_turns(api: FakeAnthropic, root: Path, cli: Path) -> list[float]:
    process = ClaudeSubprocess(process_options(root, api.url, cli, root / "warm"))
    await process.start()
    try:
        return [await timed_turn(process, f"turn {n}") for n in range(WARM_UP + RUNS)][WARM_UP:]
    finally:
        await process.stop()


async def cold_and_resumed(api: FakeAnthropic, root: Path, cli: Path) -> tuple[list[float], list[float]]:
    """Spawn → first answer in a new folder (cold), then, after a stop, `--resume=<its id>` as the bot resumes."""
    cold: list[float] = []
    resumed: list[float] = []
    for n in range(RUNS):
        cwd = root / f"cold-{n}"
        session_id: str | None = None
        for samples in (cold, resumed):
            started = time.monotonic()
            process = ClaudeSubprocess(process_options(root, api.url, cli, cwd, resume_id=session_id))
            await process.start()
            result = await process.submit(f"hello {n}").wait()
            samples.append(time.monotonic() - started)
            assert not result.is_error, result.text
            assert session_id is None or result.session_id == session_id  # the same conversation went on
            session_id = result.session_id
            await process.stop()
    return cold, resumed


async def print_mode_turns(api: FakeAnthropic, root: Path, cli: Path) -> list[float]:
    """The other design: a new `claude -p --continue <message>` per message, spawn → exit."""
    cwd = root / "print-mode"
    cwd.mkdir()
    env = cli_env(root, api.url)
    samples = []
    for n in range(RUNS + 1):
        started = time.monotonic()
        flags = ["--continue"] if n else []
        proc = await asyncio.create_subprocess_exec(
            cli, "-p", *flags, "--output-format", "json", f"message {n}", cwd=cwd, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )
        out, _ = await proc.communicate()
        assert json.loads(out)["result"] == f"echo: message {n}"
        if n:
            samples.append(time.monotonic() - started)
    return samples


async def big_line(root: Path) -> float:
    """Seconds for a 64 MiB assistant line (and its 64 MiB result) through ClaudeSubprocess, stand-in CLI."""
    script = FakeCliScript(root / "big/script.json").turn(Step.huge_line(BIG_LINE))
    cli = make_fake_cli(root / "big", script)
    process = ClaudeSubprocess(ProcessOptions(claude_bin=cli, cwd=root / "big", env=dict(os.environ)))
    await process.start()
    try:
        started = time.monotonic()
        result = await process.submit("big").wait()
        elapsed = time.monotonic() - started
        assert len(result.text) == BIG_LINE
        return elapsed
    finally:
        await process.stop()


# ---------------------------------------------------------------- the whole bot


@contextlib.asynccontextmanager
async def bot_process(
    root: Path, tg: FakeBotAPI, api: FakeAnthropic, *, claude_bin: Path | None = None
) -> AsyncIterator[int]:
    """`python bot.py` as a user runs it, pointed at the fakes; yields its pid, stops it with SIGTERM."""
    users = ",".join(str(chat) for chat in CHATS)
    env = bot_env(root, tg, api, ALLOWED_USER_IDS=users, MAX_LIVE_SESSIONS="30", LOG_LEVEL="WARNING")
    if claude_bin:
        env["CLAUDE_BIN"] = str(claude_bin)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "bot.py"), cwd=root, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await tg.wait_polling(timeout=60)
        yield proc.pid
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 60)
        except TimeoutError:
            proc.kill()


async def delivered(tg: FakeBotAPI, chat: int, needle: str, since: int, timeout: float = 60) -> float:
    """When the fake Bot API accepted the first message or edit in `chat` showing `needle` (a 429 is not it)."""
    index = since
    while True:
        call = await tg.wait_for(
            "sendMessage", lambda p: p.get("chat_id") == chat and needle in str(p.get("text", "")),
            since=index, timeout=timeout,
        )
        if call.ok:
            return call.time
        index = tg.calls.index(call) + 1


async def ask(tg: FakeBotAPI, chat: int, text: str) -> float:
    """Push a user's message; seconds from Telegram handing it to the bot's long poll until its answer (`echo: text`)
    is in the chat. The fake's own time waking the poll is Telegram's, so the clock starts when it hands it out."""
    since = len(tg.calls)
    message_id = tg.push_text(chat, text)
    answered = await delivered(tg, chat, f"echo: {text}", since)
    return answered - tg.handed_out[(chat, message_id)]


@dataclass(frozen=True)
class Answer:
    """One message's way through the whole bot, and the CLI's part of it as the bot clocked it."""

    whole: float
    cli: float  # message written to the CLI → its result read (the session's metadata, last_timings)

    @property
    def bridge(self) -> float:
        return self.whole - self.cli


@dataclass
class Chats:
    """The bot's users, one session each (`c<chat>`), and where the bot keeps that session's metadata."""

    tg: FakeBotAPI
    sessions: Path
    turns: dict[int, int] = field(default_factory=dict)

    async def ask(self, chat: int, text: str) -> Answer:
        whole = await ask(self.tg, chat, text)
        meta = json.loads((self.sessions / STATE_DIR / "sessions" / f"c{chat}" / META_FILE).read_text())
        assert meta["turns"] > self.turns.get(chat, 0), "the bot keeps its books before it shows the answer"
        self.turns[chat] = meta["turns"]
        return Answer(whole, meta["last_timings"]["send_to_result"])


async def whole_bot(
    tg: FakeBotAPI, api: FakeAnthropic, root: Path, report: Report, bare: float, bare_paced: float
) -> None:
    async with bot_process(root / "bot", tg, api):
        chats = Chats(tg, root / "bot" / "sessions")
        for chat in CHATS:  # each user gets a session (and a warm CLI) of their own
            since = len(tg.calls)
            tg.push_text(chat, f"/new c{chat}")
            await delivered(tg, chat, f"c{chat}", since)
            await chats.ask(chat, "warm up")
        await asyncio.sleep(REFILL)
        rejections = tg.flood_rejections
        await human_pace(chats, report, bare_paced)
        human_429 = tg.flood_rejections - rejections
        await quick_follow_ups(chats, report, bare, bare_paced)

        await asyncio.sleep(REFILL)
        started = time.monotonic()
        sustained = [await ask(tg, CHATS[0], f"sustained {n}") for n in range(RUNS)]
        rate = RUNS / (time.monotonic() - started)
        report.add(Figure("whole bot, sustained back-to-back, one chat", sustained))
        report.add(Figure("  … answers per second", value=f"{rate:.2f}/s"))

        await asyncio.sleep(REFILL)
        spreads, parts = [], []
        for n in range(RUNS):
            chat = CHATS[n % len(CHATS)]
            spread, count = await long_answer(tg, api, chat, n)
            spreads.append(spread)
            parts.append(count)
            await asyncio.sleep(HUMAN_GAP)
        figure = Figure(f"long answer ({statistics.median(parts):.0f} parts): first → last part", spreads,
                        target=f"≤ {ms(SPREAD_TARGET)} (median)")
        figure.verdict = verdict(figure.median, SPREAD_TARGET, unit="s")
        report.add(figure)
        rules = ", ".join(f"{rule} {count}" for rule, count in sorted(tg.flood_by_rule.items())) or "none"
        report.add(Figure("429s seen at a human pace / in all", value=f"{human_429} / {tg.flood_rejections} ({rules})",
                          target="0", verdict=verdict(tg.flood_rejections, 0, unit="")))


async def bot_api_trips(tg: FakeBotAPI, report: Report) -> None:
    """A Bot API call's round trip from another process, bare and through PTB as the bot calls: back to back, and at
    a human pace (then both processes wake from idle, which on a VM can cost more than the call)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "bench" / "api_trip.py"), tg.url, tg.token, str(RUNS), str(HUMAN_GAP),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    trips = json.loads(out)
    raw_now = report.add(Figure("Bot API round trip, loopback, back to back: a bare HTTP request", trips["raw_now"]))
    ptb_now = report.add(Figure("  … the same call through PTB (httpx), as the bot makes it", trips["ptb_now"]))
    raw = report.add(Figure(f"  … a bare HTTP request, {HUMAN_GAP:g} s apart", trips["raw"]))
    report.add(Figure(f"  … through PTB, {HUMAN_GAP:g} s apart", trips["ptb"]))
    report.notes.append(
        f"a Bot API call costs the bot's client {ms(ptb_now.median - raw_now.median)} beyond the fake server and the "
        f"loopback wire ({ms(raw_now.median)} back to back). {HUMAN_GAP:g} s apart the same bare request takes "
        f"{ms(raw.median)}: waking idle processes costs this machine that much. A message at a human pace meets it in "
        "the bridge's own cost at least twice: the bot wakes for the update, the fake Bot API for the answer."
    )


async def human_pace(chats: Chats, report: Report, bare_paced: float) -> None:
    """Messages 0.75 s apart, the users in turn: the bridge's own cost per message, paired with the CLI's time for
    that very turn, and (as before) against a bare CLI turn at the same pace."""
    answers = []
    for n in range(RUNS):
        answers.append(await chats.ask(CHATS[n % len(CHATS)], f"human {n}"))
        await asyncio.sleep(HUMAN_GAP)
    whole = report.add(Figure("whole bot, human pace: update → final message", [a.whole for a in answers]))
    cli = report.add(Figure("  … of which the CLI: written → result (the bot's clock)", [a.cli for a in answers]))
    own = Figure("  … the bridge's own cost: whole − that turn's CLI time", [a.bridge for a in answers])
    own.target, own.verdict = f"≤ {ms(BRIDGE_COST_TARGET)} (median)", verdict(own.median, BRIDGE_COST_TARGET, "s")
    report.add(own)
    unpaired = whole.median - bare_paced
    report.add(Figure("  … whole − a bare CLI turn at that pace (medians of two runs)", value=ms(unpaired)))
    report.notes.append(
        f"the bridge's own cost at a human pace, {ms(own.median)} a message (median; p90 {ms(own.p90)}): the "
        "update's trip from the Bot API's long poll through PTB's handler, the durable inbox (one fsync per "
        "message, in a thread), the hand-over to the CLI, then the books (the inbox's done record and the metadata, "
        "no fsync), the rendering and the answer's sendMessage; two loopback HTTP trips through PTB's httpx. Typing "
        "and the draft go out while Claude works, never in the way. It is paired per message with the CLI's own "
        f"time for that turn ({ms(cli.median)} median, a bare CLI turn at that pace {ms(bare_paced)}): the "
        f"difference of the two medians ({ms(unpaired)}) also carries the CLI's spread from run to run."
    )


async def quick_follow_ups(chats: Chats, report: Report, bare: float, bare_paced: float) -> None:
    """Three messages in a row, each sent as soon as the previous answer arrives; the second and third are the
    follow-ups, against a bare turn sent the instant the previous result is read. The first of each three reaches a
    CLI idle for seconds (a human-pace turn, measured above), so it is not one."""
    follow_ups = []
    for round_ in range(math.ceil(RUNS / 2)):
        chat = CHATS[round_ % len(CHATS)]
        await chats.ask(chat, f"quick {round_}.0")
        follow_ups += [await chats.ask(chat, f"quick {round_}.{k}") for k in (1, 2)]
        await asyncio.sleep(HUMAN_GAP)
    figure = Figure("whole bot, quick follow-ups (2nd and 3rd of 3 in a row)", [a.whole for a in follow_ups])
    ratio = figure.median / bare
    figure.target, figure.verdict = f"≤ 1.5× bare turn ({ratio:.2f}×)", verdict(ratio, 1.5)
    report.add(figure)
    cli = report.add(Figure("  … of which the CLI: written → result (the bot's clock)", [a.cli for a in follow_ups]))
    report.add(Figure("  … the bridge's own cost: whole − that turn's CLI time", [a.bridge for a in follow_ups]))
    report.notes.append(
        f"a quick follow-up reaches a CLI that ended its previous turn a few ms before: its own turn takes "
        f"{ms(cli.median)} (the bot's clock), a bare turn sent the instant the previous result is read {ms(bare)}. "
        "Until 2026-12-06 this row also counted the first message of each three, which reaches a CLI idle for "
        f"seconds: a human-pace turn (a bare CLI turn takes {ms(bare_paced)} then), not a follow-up."
    )


async def long_answer(tg: FakeBotAPI, api: FakeAnthropic, chat: int, n: int) -> tuple[float, int]:
    """An answer of three ~3.5 KB paragraphs (Telegram allows 4096 per message): seconds from part 1 to the end."""
    paragraphs = [f"Part {k} of answer {n}. " + "lorem ipsum dolor sit amet " * 130 for k in range(3)]
    end = f"end of long answer {n}."
    api.enqueue(Text("\n\n".join(paragraphs) + " " + end))
    since = len(tg.calls)
    tg.push_text(chat, f"long {n}")
    last = await delivered(tg, chat, end, since)
    sent = [c for c in tg.calls[since:] if c.ok and c.method == "sendMessage" and c.params.get("chat_id") == chat
            and c.time <= last and "lorem ipsum" in str(c.params.get("text", ""))]
    return last - sent[0].time, len(sent)


async def bot_rss(root: Path, report: Report) -> None:
    """The bot process's own RSS with 1 and with 20 live sessions (stand-in CLIs, no flood limit)."""
    cli = make_fake_cli(root / "rss", None)
    chat = CHATS[0]
    async with FakeBotAPI() as tg, FakeAnthropic() as api, bot_process(root / "rss", tg, api, claude_bin=cli) as pid:
        await ask(tg, chat, "one session")
        one = psutil.Process(pid).memory_info().rss
        for n in range(1, 20):
            since = len(tg.calls)
            tg.push_text(chat, f"/new s{n}")
            await delivered(tg, chat, f"s{n}", since)
            await ask(tg, chat, f"session {n}")
        twenty = psutil.Process(pid).memory_info().rss
        children = sum(c.memory_info().rss for c in psutil.Process(pid).children(recursive=True))
    per_session = (twenty - one) / 2**20 / 19
    report.add(Figure("bot RSS, 1 live session", value=f"{one / 2**20:.0f} MiB"))
    report.add(Figure("bot RSS, 20 live sessions", value=f"{twenty / 2**20:.0f} MiB (+{per_session:.1f} MiB each)"))
    report.notes.append(f"the 20 stand-in CLIs used {children / 2**20:.0f} MiB more (not the bot's)")


# ---------------------------------------------------------------- main


async def run(cli: Path, scratch: Path) -> Report:
    report = Report(describe_machine(cli))
    print(*report.machine, sep="\n")
    print(f"\n{'measure':<58} {'median':>9} {'p90':>9} {'n':>3}  target verdict")
    async with FakeAnthropic() as api:
        bare, kinds = await bare_cli_turns(api, scratch, cli)
        base = report.add(Figure("bare persistent CLI turn: send → result", bare)).median
        paced, _ = await bare_cli_turns(api, scratch, cli, gap=HUMAN_GAP)
        base_paced = report.add(Figure(f"  … the same, {HUMAN_GAP:g} s apart (a human pace)", paced)).median
        report.notes.append("events in one warm bare turn: " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())))
        report.add(Figure("ClaudeSubprocess turn: submit → result", await subprocess_turns(api, scratch, cli)))
        cold, resumed = await cold_and_resumed(api, scratch, cli)
        report.add(Figure("cold start: spawn → first answer (ClaudeSubprocess)", cold))
        report.add(Figure("resume after suspend: spawn --resume=<id> → answer", resumed))
        per_message = await print_mode_turns(api, scratch, cli)
        report.add(Figure("new `claude -p --continue` per message: spawn → exit", per_message))
        async with FakeBotAPI() as tg:
            tg.enforce_telegram_limits(LIMITS)
            await bot_api_trips(tg, report)
            await whole_bot(tg, api, scratch, report, base, base_paced)
    await bot_rss(scratch, report)
    seconds = await big_line(scratch)
    speed = BIG_LINE / 2**20 / seconds
    report.add(Figure("64 MiB line (+ its 64 MiB result), stand-in CLI", value=f"{speed:.0f} MB/s ({ms(seconds)})"))
    return report


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else None
    started = time.monotonic()
    scratch = Path(tempfile.mkdtemp(prefix="bench-"))
    for bot_root in ("bot", "rss"):
        (scratch / bot_root).mkdir()
    try:
        report = asyncio.run(run(real_cli_path(), scratch))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    report.notes.append(f"bench runtime {time.monotonic() - started:.0f} s; load {load} at the end (a shared machine)")
    print(f"\nbench runtime {time.monotonic() - started:.0f} s")
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(report.markdown())
        print(f"written to {out}")


if __name__ == "__main__":
    main()
