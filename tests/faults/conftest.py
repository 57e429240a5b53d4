"""The fault suite's collector: each case records what the user saw and what was lost, in docs/reliability.md.

Every module here sets `pytestmark = FAULTS` (marker `faults`; pyproject's addopts leave it out of the default run);
at the end of a `pytest -m faults` run the session-finish hook writes the report from what the cases measured.
Under pytest-xdist the cases run in worker processes: each test's report carries what its case measured (a user
property), so the process that writes the report, the controller, rebuilds the cases from the reports it receives.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field

import pytest
import pytest_asyncio

from conftest import ROOT
from fake_anthropic import FakeAnthropic
from fake_telegram import FakeBotAPI

FAULTS = [pytest.mark.faults, pytest.mark.real_cli]
REPORT = ROOT / "docs/reliability.md"
QUOTE = 70  # characters of each chat message quoted in the report
SHOWN = 8  # chat messages quoted per case (after folding repeats)


def brief(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= QUOTE else line[: QUOTE - 1] + "…"


@dataclass
class Case:
    """What one case measured: the chat as the user saw it, and every message or file that was lost."""

    title: str
    saw: list[str] = field(default_factory=list)
    lost: list[str] | None = None  # None: the case never got as far as measuring
    how: str = ""
    outcome: str = "not run"
    seconds: float = 0.0
    order: int = 0  # the test's place in the collection: rows keep it whichever worker ran them

    def seen(self, texts: Iterable[str]) -> None:
        self.saw = [brief(t) for t in texts if t.strip()]

    def measured(self, lost: Iterable[str], how: str = "") -> None:
        """Record what was lost (the target: nothing) and how the fault was made; then assert it."""
        self.lost = list(lost)
        self.how = how or self.how
        assert not self.lost, f"lost: {self.lost}; the chat: {self.saw}"
        assert self.saw, "the user saw no message at all"


CASES: dict[str, Case] = {}


@pytest.fixture
def case(request: pytest.FixtureRequest) -> Case:
    doc = (getattr(request.function, "__doc__", None) or request.node.name).strip().splitlines()[0]
    recorded = CASES[request.node.nodeid] = Case(doc)
    return recorded


@pytest_asyncio.fixture
async def fakes() -> AsyncIterator[tuple[FakeBotAPI, FakeAnthropic]]:
    async with FakeBotAPI() as tg, FakeAnthropic() as api:
        yield tg, api


MEASURED = "fault case"  # the user property that carries a case's measurements on its test's reports


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> pytest.TestReport:
    """Where the case ran (a worker, or the only process): put what it measured on the report."""
    report: pytest.TestReport = yield
    recorded = CASES.get(item.nodeid)
    if recorded is not None:
        recorded.order = item.session.items.index(item)
        # A new list: the report's own is the item's, shared by the reports of its other phases.
        report.user_properties = [*report.user_properties, (MEASURED, dataclasses.asdict(recorded))]
    return report


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Where the report is written (the controller, or the only process): the case as measured, and its outcome."""
    measured = next((value for name, value in report.user_properties if name == MEASURED), None)
    if measured is None:
        return
    recorded = CASES.setdefault(report.nodeid, Case(measured["title"]))
    for name in ("title", "saw", "lost", "how", "order"):
        setattr(recorded, name, measured[name])
    if report.when == "call":
        recorded.seconds = report.duration
        if hasattr(report, "wasxfail"):
            recorded.outcome = "XFAIL (known loss)" if report.skipped else "XPASS"
        else:
            recorded.outcome = report.outcome.upper()
    elif report.failed:  # setup or teardown
        recorded.outcome = f"FAILED in {report.when}"


def pytest_sessionfinish(session: pytest.Session) -> None:
    worker = hasattr(session.config, "workerinput")  # an xdist worker: the controller writes the report
    if worker or session.config.getoption("markexpr") != "faults" or not CASES:
        return
    REPORT.parent.mkdir(exist_ok=True)
    # A subset (-k, a file or a test id) re-writes only its own rows; a full run writes the whole table afresh.
    subset = bool(session.config.getoption("keyword")) or any(
        "::" in arg or arg.endswith(".py") for arg in session.config.args
    )
    kept = rows_of(REPORT.read_text()) if subset and REPORT.exists() else {}
    REPORT.write_text(render(CASES, kept))


ROW_NAME = re.compile(r"^\| .*?<br>`([^`]+)` \|", re.MULTILINE)


def rows_of(report: str) -> dict[str, str]:
    """The table rows of an earlier report, by test name."""
    return {m[1]: line for line in report.splitlines() if (m := ROW_NAME.match(line))}


def folded(texts: list[str]) -> list[str]:
    """Runs of messages that differ only in a "#n" ("⏳ Queued, #1", "#2" …) as one line with a count."""
    out: list[tuple[str, str, int]] = []  # (shape, first text, count)
    for text in texts:
        shape = re.sub(r"#\d+", "#", text)
        if out and out[-1][0] == shape:
            out[-1] = (shape, out[-1][1], out[-1][2] + 1)
        else:
            out.append((shape, text, 1))
    return [f"“{text}”" + (f" ×{count}" if count > 1 else "") for _, text, count in out]


def render(cases: dict[str, Case], kept: dict[str, str] | None = None) -> str:
    """The report: the rows of `cases`, in place of (or after) the `kept` rows of an earlier run."""
    rows = dict(kept or {})
    for nodeid, c in sorted(cases.items(), key=lambda named: named[1].order):
        lines = folded(c.saw)
        saw = "<br>".join(lines[:SHOWN]) or "(nothing)"
        if len(lines) > SHOWN:
            saw += f"<br>… and {len(lines) - SHOWN} more"
        if c.lost is None:
            lost = "not measured (the case failed before measuring)"
        else:
            lost = "nothing" if not c.lost else "LOST: " + "; ".join(c.lost)
        if c.outcome.startswith("XFAIL") and c.lost is not None and c.lost and not lost.startswith("LOST"):
            lost = "LOST: " + lost
        name = nodeid.split("::")[-1]
        rows[name] = f"| {c.title}<br>`{name}` | {c.how} | {c.outcome} ({c.seconds:.0f} s) | {saw} | {lost} |"
    return "\n".join([
        "# Reliability: faults and abuse",
        "",
        "Written by `make faults` (tests/faults/) on " + time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        + "; do not edit by hand.",
        "",
        "Each row is one test: it makes the fault, then measures what the user saw in the chat (the bot's messages,",
        "quoted briefly) and what was lost (a message neither answered nor named in a notice, a file written where",
        "it must not be, a stranger's words reaching Claude, …). The target is nothing lost and a clear message every",
        "time; a case fails when it is not met. An `XFAIL` row is a known loss. A subset run (`-k`, one file or",
        "test) rewrites only its own rows.",
        "",
        "| Case | How the fault is made | Outcome | What the user saw | What was lost |",
        "|---|---|---|---|---|",
        *rows.values(),
        "",
    ])
