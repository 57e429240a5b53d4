"""The fake Messages API, proven against the real Claude Code CLI (and a few raw HTTP checks)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from conftest import cli_env, real_cli_version
from fake_anthropic import FakeAnthropic, Hang, HttpError, MaxTokens, Text, ToolUse, UsageLimit, UsageWarning
from fake_process import FakeClock

LINE_LIMIT = 256 * 1024 * 1024  # a 20 MB reply makes two 20 MB stdout lines (assistant + result)


@pytest.fixture
async def api() -> AsyncIterator[FakeAnthropic]:
    async with FakeAnthropic() as fake:
        yield fake


class Cli:
    """One real CLI process in stream-json mode: send user messages, read events up to each result."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.events: list[dict[str, Any]] = []

    async def send(self, text: str) -> None:
        assert self.proc.stdin is not None
        line = {"type": "user", "message": {"role": "user", "content": text}}
        self.proc.stdin.write(json.dumps(line).encode() + b"\n")
        await self.proc.stdin.drain()

    async def result(self, timeout: float = 30.0) -> dict[str, Any]:
        """Read events until the next `result` and return it."""
        assert self.proc.stdout is not None
        async with asyncio.timeout(timeout):
            while line := await self.proc.stdout.readline():
                self.events.append(json.loads(line))
                if self.events[-1]["type"] == "result":
                    return self.events[-1]
        raise AssertionError(f"CLI exited with {await self.proc.wait()} before a result")

    async def ask(self, text: str) -> dict[str, Any]:
        await self.send(text)
        return await self.result()


@contextlib.asynccontextmanager
async def claude(
    claude_bin: Path, tmp_path: Path, api_url: str, *args: str, **env: str | None
) -> AsyncIterator[Cli]:
    """Run the CLI in `tmp_path/work` against the fake (a None in `env` unsets it); always reaped, killed if stuck."""
    workdir = tmp_path / "work"
    workdir.mkdir(exist_ok=True)
    merged = {**cli_env(tmp_path, api_url), **env}
    full_env = {name: value for name, value in merged.items() if value is not None}
    argv = ["-p", "--input-format", "stream-json", "--output-format", "stream-json", "--verbose",
            "--dangerously-skip-permissions", *args]
    with (tmp_path / "cli-stderr.txt").open("wb") as stderr:
        proc = await asyncio.create_subprocess_exec(
            str(claude_bin), *argv, cwd=workdir, env=full_env, limit=LINE_LIMIT,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=stderr,
        )
        try:
            yield Cli(proc)
        finally:
            if proc.returncode is None and proc.stdin is not None:
                proc.stdin.close()  # an idle CLI exits on EOF within ~40 ms
            try:
                await asyncio.wait_for(proc.wait(), 5)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def test_text_reply_comes_back_as_the_result(claude_bin: Path, tmp_path: Path, api: FakeAnthropic) -> None:
    api.enqueue(Text("Hello from the fake"))

    async with claude(claude_bin, tmp_path, api.url) as cli:
        result = await cli.ask("hi")

    assert result["is_error"] is False
    assert result["result"] == "Hello from the fake"
    assert api.requests[0].last_user_text == "hi"


async def test_unscripted_reply_echoes_the_user(claude_bin: Path, tmp_path: Path, api: FakeAnthropic) -> None:
    async with claude(claude_bin, tmp_path, api.url) as cli:
        result = await cli.ask("ping pong")

    assert result["result"] == "echo: ping pong"


async def test_tool_use_really_runs_and_the_result_goes_back(
    claude_bin: Path, tmp_path: Path, api: FakeAnthropic
) -> None:
    api.enqueue(ToolUse("Bash", {"command": "echo hi | tee out.txt", "description": "write"}, text="Writing."))

    async with claude(claude_bin, tmp_path, api.url) as cli:
        result = await cli.ask("make a file")

    assert (tmp_path / "work" / "out.txt").read_text() == "hi\n"
    assert len(api.requests) == 2
    tool_result = api.requests[1].tool_results[0]
    assert (tool_result.content, tool_result.is_error) == ("hi", False)
    assert result["result"] == "tool said: hi"
    assert result["num_turns"] == 2


async def test_http_400_is_an_error_result(claude_bin: Path, tmp_path: Path, api: FakeAnthropic) -> None:
    """2.1.197 never retries a 400; 2.1.332 first retries it without its optional beta headers, one at a time."""
    api.enqueue(*[HttpError(400, "bad things")] * 10)

    async with claude(claude_bin, tmp_path, api.url) as cli:
        result = await cli.ask("hi")

    assert result["is_error"] is True
    assert result["api_error_status"] == 400
    if real_cli_version() < (2, 1, 332):
        assert len(api.requests) == 1
    else:
        betas = [set(r.headers.get("anthropic-beta", "").split(",")) for r in api.requests]
        assert 1 < len(api.requests) < 10
        assert betas[1] < betas[0]


async def test_http_500_is_retried_then_an_error_result(claude_bin: Path, tmp_path: Path, api: FakeAnthropic) -> None:
    api.enqueue(HttpError(500), HttpError(500))  # CLAUDE_CODE_MAX_RETRIES=1: first try + one retry

    async with claude(claude_bin, tmp_path, api.url) as cli:
        result = await cli.ask("hi")

    assert result["is_error"] is True
    assert result["api_error_status"] == 500
    assert len(api.requests) == 2
    assert any(e["type"] == "system" and e.get("subtype") == "api_retry" for e in cli.events)


async def test_second_turn_carries_the_first_exchange(claude_bin: Path, tmp_path: Path, api: FakeAnthropic) -> None:
    api.enqueue(Text("first answer"))

    async with claude(claude_bin, tmp_path, api.url) as cli:
        await cli.ask("first question")
        second = await cli.ask("second question")

    assert second["result"] == "echo: second question"
    history = api.requests[1]
    assert history.user_texts == ["first question", "second question"]
    assert any(m["role"] == "assistant" and "first answer" in json.dumps(m["content"]) for m in history.messages)


async def test_model_and_appended_system_prompt_reach_the_api(
    claude_bin: Path, tmp_path: Path, api: FakeAnthropic
) -> None:
    persona = ("--append-system-prompt", "PERSONA-MARKER")
    async with claude(claude_bin, tmp_path, api.url, "--model", "haiku", *persona) as cli:
        await cli.ask("hi")

    assert "haiku" in api.requests[0].model
    assert "PERSONA-MARKER" in api.requests[0].system_text


async def test_a_conversation_without_tools_is_still_the_main_conversation(
    claude_bin: Path, tmp_path: Path, api: FakeAnthropic
) -> None:
    api.enqueue(Text("scripted"))

    async with claude(claude_bin, tmp_path, api.url, "--tools", "") as cli:
        result = await cli.ask("hi")

    assert result["result"] == "scripted"
    assert (len(api.requests), api.side_requests) == (1, [])


async def test_title_side_request_does_not_consume_the_script(
    claude_bin: Path, tmp_path: Path, api: FakeAnthropic
) -> None:
    api.enqueue(Text("scripted answer"))
    # Non-essential traffic on: the CLI asks for a session title when the first prompt has >= 10 characters.
    async with claude(claude_bin, tmp_path, api.url, CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="") as cli:
        result = await cli.ask("please summarise this repository")

    assert result["result"] == "scripted answer"
    assert len(api.requests) == 1
    # 2.1.197 asks for the title in -p mode; 2.1.332 no longer does.
    assert [r.is_title for r in api.side_requests] == ([True] if real_cli_version() < (2, 1, 332) else [])


async def test_max_tokens_makes_the_cli_ask_to_continue(claude_bin: Path, tmp_path: Path, api: FakeAnthropic) -> None:
    api.enqueue(MaxTokens("cut off mid"), Text("dle, now complete"))

    async with claude(claude_bin, tmp_path, api.url) as cli:
        result = await cli.ask("hi")

    assert result["is_error"] is False
    assert len(api.requests) == 2
    assert "cut off mid" in json.dumps(api.requests[1].messages)


async def test_hang_ends_when_the_cli_is_killed_and_stop_is_prompt(
    claude_bin: Path, tmp_path: Path, api: FakeAnthropic
) -> None:
    api.enqueue(Hang())

    async with claude(claude_bin, tmp_path, api.url) as cli:
        await cli.send("hi")
        await api.wait_for_requests(1)
        assert api.in_flight == 1
        cli.proc.kill()
        await cli.proc.wait()

    await api.wait_until_idle(timeout=5)
    started = time.monotonic()
    await api.stop()
    assert time.monotonic() - started < 0.5


async def test_stop_returns_promptly_while_a_request_hangs(api: FakeAnthropic) -> None:
    api.enqueue(Hang())
    async with aiohttp.ClientSession() as http:
        post = asyncio.create_task(http.post(f"{api.url}/v1/messages", json={"tools": [{}], "messages": []}))
        await api.wait_for_requests(1)

        started = time.monotonic()
        await api.stop()

        assert time.monotonic() - started < 0.5
        with pytest.raises(aiohttp.ClientError):
            await post


async def test_slow_stream_arrives_in_delayed_chunks(api: FakeAnthropic) -> None:
    api.enqueue(Text("abcdef", chunk_size=2, delay=0.1))
    body = {"tools": [{}], "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    started = time.monotonic()
    async with aiohttp.ClientSession() as http, http.post(f"{api.url}/v1/messages", json=body) as response:
        events = [json.loads(line[6:]) async for line in response.content if line.startswith(b"data: ")]

    assert time.monotonic() - started >= 0.3
    deltas = [e["delta"]["text"] for e in events if e["type"] == "content_block_delta"]
    assert deltas == ["ab", "cd", "ef"]
    assert [e["type"] for e in events][-2:] == ["message_delta", "message_stop"]
    assert events[-2]["delta"]["stop_reason"] == "end_turn"


async def test_non_streaming_request_and_error_shape(api: FakeAnthropic) -> None:
    api.enqueue(ToolUse("Write", {"file_path": "a.txt", "content": "x"}), HttpError(529))
    body = {"tools": [{}], "stream": False, "messages": [{"role": "user", "content": "hi"}]}
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{api.url}/v1/messages", json=body) as response:
            message = await response.json()
        async with http.post(f"{api.url}/v1/messages", json=body) as response:
            error = (response.status, response.headers["retry-after"], await response.json())

    assert message["stop_reason"] == "tool_use"
    assert message["content"][0]["input"] == {"file_path": "a.txt", "content": "x"}
    assert error == (529, "0", {"type": "error", "error": {"type": "overloaded_error", "message": "fake error"}})


async def test_twenty_megabyte_reply_arrives_intact(claude_bin: Path, tmp_path: Path, api: FakeAnthropic) -> None:
    big = "x" * 20_000_000
    api.enqueue(Text(big))

    async with claude(claude_bin, tmp_path, api.url) as cli:
        result = await cli.ask("big please")
        after = await cli.ask("thanks")  # this request carries the 20 MB answer in its history

    assert result["is_error"] is False
    assert len(result["result"]) == len(big)
    assert result["result"] == big
    assert after["result"] == "echo: thanks"


# A subscription login (§17): any OAuth token works against a loopback base URL; no API key, no onboarding.
SUBSCRIPTION = {"ANTHROPIC_API_KEY": None, "CLAUDE_CODE_OAUTH_TOKEN": "fake-oauth-token"}
HOUR = 3600


def lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def rate_limits(cli: Cli) -> list[dict[str, Any]]:
    return [e["rate_limit_info"] for e in cli.events if e["type"] == "rate_limit_event"]


async def test_usage_limit_refuses_with_unified_headers_until_the_reset(api: FakeAnthropic) -> None:
    clock = FakeClock(1_800_000_000.0)
    api.clock, api.usage = clock, UsageLimit(resets_at=clock.now + 90, claim="seven_day")
    api.enqueue(Text("kept for after the reset"))
    body = {"tools": [{}], "stream": False, "messages": [{"role": "user", "content": "hi"}]}
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{api.url}/v1/messages", json=body) as response:
            refused = (response.status, lower(response.headers), await response.json())
        clock.advance(90)
        async with http.post(f"{api.url}/v1/messages", json=body) as response:
            answered = (response.status, lower(response.headers), await response.json())

    status, headers, error = refused
    assert (status, error["error"]["type"], headers["retry-after"]) == (429, "rate_limit_error", "90")
    assert headers["anthropic-ratelimit-unified-status"] == "rejected"
    assert headers["anthropic-ratelimit-unified-reset"] == "1800000090"
    assert headers["anthropic-ratelimit-unified-representative-claim"] == "seven_day"
    status, headers, message = answered
    assert (status, headers["anthropic-ratelimit-unified-status"]) == (200, "allowed")
    assert message["content"][0]["text"] == "kept for after the reset"
    assert (len(api.refused), len(api.requests)) == (1, 1)


async def test_usage_warning_headers_name_the_window_and_threshold(api: FakeAnthropic) -> None:
    api.usage = UsageWarning(utilization=0.92, resets_at=1_800_000_000, claim="seven_day", threshold=0.9)
    body = {"tools": [{}], "stream": False, "messages": [{"role": "user", "content": "hi"}]}
    async with aiohttp.ClientSession() as http, http.post(f"{api.url}/v1/messages", json=body) as response:
        headers = lower(response.headers)

    assert response.status == 200
    assert headers["anthropic-ratelimit-unified-7d-surpassed-threshold"] == "0.9"
    assert headers["anthropic-ratelimit-unified-7d-utilization"] == "0.92"
    assert headers["anthropic-ratelimit-unified-7d-reset"] == "1800000000"


async def test_api_key_account_answers_carry_no_unified_headers(api: FakeAnthropic) -> None:
    body = {"tools": [{}], "stream": False, "messages": [{"role": "user", "content": "hi"}]}
    async with aiohttp.ClientSession() as http, http.post(f"{api.url}/v1/messages", json=body) as response:
        assert not [name for name in response.headers if name.lower().startswith("anthropic-ratelimit")]


async def test_subscription_cli_is_refused_at_once_then_answers_after_the_reset(
    claude_bin: Path, tmp_path: Path, api: FakeAnthropic
) -> None:
    clock = FakeClock(time.time())
    api.clock, api.usage = clock, UsageLimit(resets_at=int(clock.now) + HOUR)

    async with claude(claude_bin, tmp_path, api.url, **SUBSCRIPTION) as cli:
        refused = await cli.ask("first")
        again = await cli.ask("second")
        clock.advance(HOUR)
        answered = await cli.ask("third")

    limit = "5-hour limit" if real_cli_version() >= (2, 1, 332) else "session limit"
    assert (refused["is_error"], refused["api_error_status"]) == (True, 429)
    assert refused["result"].startswith(f"You've hit your {limit} · resets ")
    assert (again["is_error"], again["api_error_status"]) == (True, 429)
    synthetic = [e for e in cli.events if e["type"] == "assistant" and e["message"]["model"] == "<synthetic>"]
    assert [e["error"] for e in synthetic] == ["rate_limit", "rate_limit"]
    # One event per change of state, not one per refused turn.
    assert [(i["status"], i.get("resetsAt"), i.get("rateLimitType")) for i in rate_limits(cli)] == [
        ("rejected", int(clock.now), "five_hour"), ("allowed", int(clock.now), "five_hour")
    ]
    # The refused messages stayed in the CLI's history: the first answered request carries all three.
    assert answered["result"] == "echo: first\n\nsecond\n\nthird"
    assert (len(api.refused), len(api.requests)) == (2, 1)


async def test_subscription_cli_reports_a_passed_warning_threshold(
    claude_bin: Path, tmp_path: Path, api: FakeAnthropic
) -> None:
    api.usage = UsageWarning(utilization=0.9, resets_at=int(time.time()) + HOUR, threshold=0.75)

    async with claude(claude_bin, tmp_path, api.url, **SUBSCRIPTION) as cli:
        first = await cli.ask("hi")
        await cli.ask("again")

    assert first["is_error"] is False
    (warning,) = rate_limits(cli)  # once, not once per answer
    assert (warning["status"], warning["rateLimitType"]) == ("allowed_warning", "five_hour")
    assert (warning["surpassedThreshold"], warning["utilization"]) == (0.75, 0.9)


async def test_api_key_cli_retries_the_usage_429(claude_bin: Path, tmp_path: Path, api: FakeAnthropic) -> None:
    clock = FakeClock(time.time())
    api.clock, api.usage = clock, UsageLimit(resets_at=clock.now + 1)  # retry-after: 1

    async with claude(claude_bin, tmp_path, api.url) as cli:
        await cli.send("hi")
        await api.wait_for_refused(1)
        clock.advance(1)
        result = await cli.result()

    assert result["result"] == "echo: hi"
    retries = [e for e in cli.events if e["type"] == "system" and e.get("subtype") == "api_retry"]
    assert [(r["error_status"], r["error"]) for r in retries] == [(429, "rate_limit")]
    assert rate_limits(cli) == []  # an API-key session never reports the unified limiter
