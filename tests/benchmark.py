"""Prints speed and memory figures for the real CLI driven by ClaudeSubprocess (against the fake Messages API,
so every latency is our overhead plus the CLI's, not the model's). Run: `.venv/bin/python tests/benchmark.py`."""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).resolve().parent)]

from claude_bridge.process.argv import ProcessOptions  # noqa: E402
from claude_bridge.process.subprocess import ClaudeSubprocess  # noqa: E402
from claude_bridge.telegram.render import render_markdown, render_tail  # noqa: E402
from conftest import cli_env, real_cli_path  # noqa: E402
from fake_anthropic import FakeAnthropic, Text  # noqa: E402


def rss_mib(pid: int) -> float:
    process = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [process, *process.children(recursive=True)]) / 2**20


async def measure_process(api: FakeAnthropic, root: Path, turns: int = 20) -> None:
    workdir = root / "session"
    workdir.mkdir()
    options = ProcessOptions(
        claude_bin=real_cli_path(), cwd=workdir, env=cli_env(root, api.url), permission_mode="bypassPermissions"
    )
    process = ClaudeSubprocess(options)
    started = time.monotonic()
    await process.start()
    ready = time.monotonic() - started
    first = process.submit("first")
    await first.wait()
    print(f"spawn → ready (initialize answered): {ready:.2f} s")
    print(f"spawn → first init:                 {first.timings.spawn_to_init or 0:.2f} s")
    print(f"first turn send → result:           {first.timings.send_to_result or 0:.3f} s")
    latencies = []
    for n in range(turns):
        turn = process.submit(f"turn {n}")
        await turn.wait()
        latencies.append(turn.timings.send_to_result or 0)
    print(
        f"warm turns send → result ({turns}):     median {statistics.median(latencies) * 1000:.0f} ms, "
        f"max {max(latencies) * 1000:.0f} ms"
    )
    print(f"idle process RSS (CLI + children):  {rss_mib(process.pid or 0):.0f} MiB")
    api.enqueue(Text("x" * (8 * 2**20)))
    big = process.submit("big")
    await big.wait()
    print(f"8 MiB single-line answer → result:  {big.timings.send_to_result or 0:.2f} s")
    started = time.monotonic()
    await process.stop()
    print(f"graceful stop (idle):               {time.monotonic() - started:.2f} s")


def measure_rendering() -> None:
    line = "Paragraph {}: some **bold**, `code` and a [link](https://example.com) 😀."
    answer = "\n\n".join(line.format(i) for i in range(1500))
    started = time.perf_counter()
    chunks = render_markdown(answer)
    full = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(50):
        render_tail(answer)
    tail = (time.perf_counter() - started) / 50
    print(f"render {len(answer) // 1000} KB answer → {len(chunks)} messages: {full * 1000:.0f} ms")
    print(f"render_tail of it (one live frame):  {tail * 1000:.1f} ms")


async def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        async with FakeAnthropic() as api:
            await measure_process(api, Path(scratch))
    measure_rendering()


if __name__ == "__main__":
    asyncio.run(main())
