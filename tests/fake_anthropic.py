"""A fake Anthropic Messages API on loopback, so the real Claude Code CLI can run offline via ANTHROPIC_BASE_URL.

It knows the Messages API's HTTP/SSE face and tells the CLI's main conversation from its side requests (session
title); it is scripted (`enqueue`) and recording (`requests`, `side_requests`, `calls`). Setting `usage` makes it a
subscription account: a usage limit (429 until a reset time) or a warning (see protocol notes §17). It knows nothing
of our bot.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

CHUNK = 64 * 1024  # characters per text_delta: a 20 MB reply is ~300 events, not 20 million
USAGE_IN, USAGE_OUT = 100, 20  # made-up constants; small so the CLI never thinks its context is full
ERROR_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 403: "permission_error", 404: "not_found_error",
    413: "request_too_large", 429: "rate_limit_error", 500: "api_error", 529: "overloaded_error",
}
SIDE_TITLE = '{"title": "Fake session title"}'
# The CLI prepends date/context reminders as their own text blocks; they are not what the user typed.
# A `set_model` control request adds a local-command record (caveat, command, stdout) to the next user message.
REMINDER_RE = re.compile(
    r"(<system-reminder>.*?</system-reminder>"
    r"|<local-command-caveat>.*?</local-command-caveat>"
    r"|<command-name>.*?</command-name>|<command-message>.*?</command-message>|<command-args>.*?</command-args>"
    r"|<local-command-stdout>.*?</local-command-stdout>)\s*",
    re.DOTALL,
)


@dataclass(frozen=True)
class Text:
    """Stream `text` and end the turn; with `delay`, sleep that long between chunks (slow streaming); with `hold`,
    stop after `hold_after` chunks until the test sets it (a turn surely still in flight at a moment of the test's)."""

    text: str
    chunk_size: int | None = None
    delay: float = 0.0
    hold: asyncio.Event | None = None
    hold_after: int = 0


@dataclass(frozen=True)
class ToolUse:
    """Ask the CLI to run a tool (optionally after a text block); stop_reason tool_use."""

    name: str
    input: dict[str, Any]
    text: str | None = None


@dataclass(frozen=True)
class MaxTokens:
    """Stream `text` and stop with stop_reason max_tokens (the CLI then asks for a continuation)."""

    text: str


@dataclass(frozen=True)
class Hang:
    """Accept the request and never answer, until the client goes away or the server stops."""


@dataclass(frozen=True)
class HttpError:
    """Answer with an Anthropic error body and `retry-after: 0`."""

    status: int
    message: str = "fake error"
    error_type: str | None = None


Reply = Text | ToolUse | MaxTokens | Hang | HttpError

# The unified limiter's short window names in its per-window headers (`anthropic-ratelimit-unified-5h-utilization`).
WINDOW_HEADER = {"five_hour": "5h", "seven_day": "7d", "seven_day_overage_included": "7d_oi", "overage": "overage"}


@dataclass(frozen=True)
class UsageLimit:
    """A subscription account out of its plan until `resets_at` (epoch seconds): every request is refused with 429.

    Afterwards requests are answered as usual, with `allowed` unified headers (what a subscription account sees).
    """

    resets_at: float
    claim: str = "five_hour"  # anthropic-ratelimit-unified-representative-claim: which limit was hit


@dataclass(frozen=True)
class UsageWarning:
    """A subscription account nearing its limit: answers carry the unified headers of a passed warning threshold."""

    utilization: float  # fraction of the window used, 0..1
    resets_at: float
    claim: str = "five_hour"
    threshold: float = 0.75  # the highest warning threshold passed


Usage = UsageLimit | UsageWarning


@dataclass(frozen=True)
class ToolResultSeen:
    """A tool_result block the CLI sent back, its content flattened to text."""

    tool_use_id: str
    content: str
    is_error: bool


@dataclass(frozen=True)
class Request:
    """One POST /v1/messages as the fake received it."""

    body: dict[str, Any]
    headers: dict[str, str]  # lower-cased names

    @property
    def model(self) -> str:
        return str(self.body.get("model", ""))

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages", []))

    @property
    def system_text(self) -> str:
        """The system prompt as one string (the CLI sends a list of text blocks)."""
        return flatten(self.body.get("system", ""))

    @property
    def is_title(self) -> bool:
        """The CLI's session-title request: structured output asking for a `title`."""
        schema = self.body.get("output_config", {}).get("format", {}).get("schema", {})
        return "title" in schema.get("properties", {})

    @property
    def is_side(self) -> bool:
        """A helper call rather than the conversation: the title request, or one without tools or context_management.

        Every main-loop call carries `context_management`, even with `--tools ""`; the title request carries neither.
        """
        return self.is_title or not (self.body.get("tools") or "context_management" in self.body)

    @property
    def last_user_text(self) -> str:
        """What the user typed in the last user message (tool results and system reminders left out)."""
        users = [m for m in self.messages if m.get("role") == "user"]
        return flatten(users[-1]["content"]) if users else ""

    @property
    def user_texts(self) -> list[str]:
        """Every user text in the history, oldest first (tool-result-only messages skipped)."""
        texts = (flatten(m["content"]) for m in self.messages if m.get("role") == "user")
        return [text for text in texts if text]

    @property
    def tool_results(self) -> list[ToolResultSeen]:
        """The tool_result blocks of the last user message."""
        users = [m for m in self.messages if m.get("role") == "user"]
        content = users[-1]["content"] if users else []
        return [
            ToolResultSeen(block.get("tool_use_id", ""), flatten(block.get("content", "")), bool(block.get("is_error")))
            for block in (content if isinstance(content, list) else [])
            if block.get("type") == "tool_result"
        ]


def flatten(content: str | list[dict[str, Any]]) -> str:
    """Text of a content value: a string or blocks; images/documents noted as [image]/[document]."""
    if isinstance(content, str):
        return REMINDER_RE.sub("", content)
    parts = []
    for block in content:
        kind = block.get("type")
        if kind == "text":
            parts.append(REMINDER_RE.sub("", block.get("text", "")))
        elif kind in ("image", "document"):
            parts.append(f"[{kind}]")
    return "\n".join(part for part in parts if part)


def default_reply(request: Request) -> Reply:
    """What the fake says when nothing is scripted: report the tool result, else echo the user."""
    if request.tool_results:
        return Text(f"tool said: {request.tool_results[0].content[:200]}")
    return Text(f"echo: {request.last_user_text}")


@dataclass
class FakeAnthropic:
    """The fake server: `await start()`, point the CLI at `.url`, `enqueue` replies, read `requests`."""

    requests: list[Request] = field(default_factory=list)
    side_requests: list[Request] = field(default_factory=list)
    calls: list[tuple[str, str]] = field(default_factory=list)  # (method, path with query) of everything seen
    refused: list[Request] = field(default_factory=list)  # every request answered with a usage-limit 429
    usage: Usage | None = None  # the account's plan state; None = an API-key account (no unified headers at all)
    clock: Callable[[], float] = time.time  # what "now" is when comparing with UsageLimit.resets_at
    url: str = ""
    answering: int = 0  # main-conversation requests being answered now
    peak_answering: int = 0  # the most of them at once: how many CLIs worked at the same time
    _script: deque[Reply] = field(default_factory=deque)
    _runner: web.AppRunner | None = None
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    _handlers: set[asyncio.Task[Any]] = field(default_factory=set)

    def enqueue(self, *replies: Reply) -> None:
        """Script the next main-conversation replies, first in first out (each retry consumes one)."""
        self._script.extend(replies)

    async def wait_for_refused(self, n: int, timeout: float = 30.0) -> list[Request]:
        """Return the first `n` requests refused by the usage limit once they have arrived."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: len(self.refused) >= n)
        return self.refused[:n]

    async def wait_for_requests(self, n: int, timeout: float = 30.0) -> list[Request]:
        """Return the first `n` main requests once they have arrived."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: len(self.requests) >= n)
        return self.requests[:n]

    @property
    def in_flight(self) -> int:
        """How many /v1/messages requests are still being answered (hanging, streaming)."""
        return len(self._handlers)

    async def wait_until_idle(self, timeout: float = 30.0) -> None:
        """Return once no request is being answered: every reply finished or its client went away."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: not self._handlers)

    async def start(self) -> None:
        """Listen on 127.0.0.1 at a free port and set `url`."""
        app = web.Application(client_max_size=1 << 30)  # a long history easily passes aiohttp's 1 MiB default
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_post("/v1/messages/count_tokens", self._count_tokens)
        app.router.add_route("*", "/{tail:.*}", self._other)
        # handler_cancellation: a client that disconnects cancels its handler, which ends a Hang.
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        """Stop serving; hanging and slow replies are cancelled rather than awaited."""
        for task in self._handlers:
            task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeAnthropic:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def limited(self) -> bool:
        """Whether a request arriving now is refused by the usage limit."""
        return isinstance(self.usage, UsageLimit) and self.clock() < self.usage.resets_at

    async def _messages(self, http: web.Request) -> web.StreamResponse:
        self.calls.append((http.method, http.path_qs))
        request = Request(await http.json(), {k.lower(): v for k, v in http.headers.items()})
        if self.limited:  # refused before it counts: the script is kept for the answer after the reset
            self.refused.append(request)
            await self._notify()
            return self._limit_response()
        if request.is_side:
            self.side_requests.append(request)
            reply: Reply = Text(SIDE_TITLE if request.is_title else "ok")
        else:
            self.requests.append(request)
            reply = self._script.popleft() if self._script else default_reply(request)
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        main = not request.is_side
        self.answering += main
        self.peak_answering = max(self.peak_answering, self.answering)
        await self._notify()
        try:
            return await self._answer(http, request, reply)
        finally:
            self._handlers.discard(task)
            self.answering -= main
            await self._notify()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _answer(self, http: web.Request, request: Request, reply: Reply) -> web.StreamResponse:
        if isinstance(reply, Hang):
            return await asyncio.Future[web.StreamResponse]()  # never resolves: ends by cancellation only
        if isinstance(reply, HttpError):
            return error_response(reply)
        content, stop_reason = reply_content(reply)
        message = {
            "id": f"msg_{uuid.uuid4().hex[:24]}", "type": "message", "role": "assistant", "model": request.model,
            "content": content, "stop_reason": stop_reason, "stop_sequence": None,
            "usage": {"input_tokens": USAGE_IN, "output_tokens": USAGE_OUT},
        }
        headers = {"request-id": f"req_fake_{uuid.uuid4().hex[:12]}", **self._usage_headers()}
        if not request.body.get("stream"):
            return web.json_response(message, headers=headers)
        chunk = reply.chunk_size if isinstance(reply, Text) and reply.chunk_size else CHUNK
        delay = reply.delay if isinstance(reply, Text) else 0.0
        headers.update({"content-type": "text/event-stream", "cache-control": "no-cache"})
        response = web.StreamResponse(headers=headers)
        await response.prepare(http)
        deltas = 0
        for event in sse_events(message, chunk):
            await response.write(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode())
            if event["type"] != "content_block_delta":
                continue
            deltas += 1
            if isinstance(reply, Text) and reply.hold is not None and deltas == reply.hold_after:
                await reply.hold.wait()
            if delay:
                await asyncio.sleep(delay)
        await response.write_eof()
        return response

    def _limit_response(self) -> web.Response:
        assert isinstance(self.usage, UsageLimit)
        wait = max(1, math.ceil(self.usage.resets_at - self.clock()))
        body = {"type": "error", "error": {"type": "rate_limit_error", "message": "Rate limited"}}
        return web.json_response(body, status=429, headers={**self._usage_headers(), "retry-after": str(wait)})

    def _usage_headers(self) -> dict[str, str]:
        """The `anthropic-ratelimit-unified-*` headers a subscription account's answers carry now."""
        usage = self.usage
        if usage is None:
            return {}
        reset = str(int(usage.resets_at))
        if isinstance(usage, UsageLimit):
            status = "rejected" if self.limited else "allowed"
            return {
                "anthropic-ratelimit-unified-status": status,
                "anthropic-ratelimit-unified-reset": reset,
                "anthropic-ratelimit-unified-representative-claim": usage.claim,
            }
        window = f"anthropic-ratelimit-unified-{WINDOW_HEADER[usage.claim]}"
        return {
            "anthropic-ratelimit-unified-status": "allowed_warning",
            "anthropic-ratelimit-unified-reset": reset,
            "anthropic-ratelimit-unified-representative-claim": usage.claim,
            f"{window}-status": "allowed_warning",
            f"{window}-utilization": str(usage.utilization),
            f"{window}-reset": reset,
            f"{window}-surpassed-threshold": str(usage.threshold),
        }

    async def _count_tokens(self, http: web.Request) -> web.Response:
        self.calls.append((http.method, http.path_qs))
        return web.json_response({"input_tokens": max(1, len(await http.read()) // 4)})

    async def _other(self, http: web.Request) -> web.Response:
        self.calls.append((http.method, http.path_qs))
        if http.path == "/":  # the CLI's connectivity probe: HEAD /
            return web.Response(status=200)
        return error_response(HttpError(404, f"no such endpoint: {http.method} {http.path}"))


def error_response(error: HttpError) -> web.Response:
    kind = error.error_type or ERROR_TYPES.get(error.status, "api_error")
    body = {"type": "error", "error": {"type": kind, "message": error.message}}
    return web.json_response(body, status=error.status, headers={"retry-after": "0"})


def reply_content(reply: Text | ToolUse | MaxTokens) -> tuple[list[dict[str, Any]], str]:
    """The complete content blocks of a reply and its stop_reason."""
    if isinstance(reply, ToolUse):
        blocks = [{"type": "text", "text": reply.text}] if reply.text else []
        tool = {"type": "tool_use", "id": f"toolu_{uuid.uuid4().hex[:24]}", "name": reply.name, "input": reply.input}
        return [*blocks, tool], "tool_use"
    return [{"type": "text", "text": reply.text}], "max_tokens" if isinstance(reply, MaxTokens) else "end_turn"


def sse_events(message: dict[str, Any], chunk: int) -> Iterator[dict[str, Any]]:
    """The Messages API streaming events for a complete message, text split into `chunk`-character deltas."""
    start = {**message, "content": [], "stop_reason": None, "usage": {"input_tokens": USAGE_IN, "output_tokens": 1}}
    yield {"type": "message_start", "message": start}
    for index, block in enumerate(message["content"]):
        if block["type"] == "text":
            yield {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}
            for at in range(0, len(block["text"]), chunk):
                delta = {"type": "text_delta", "text": block["text"][at : at + chunk]}
                yield {"type": "content_block_delta", "index": index, "delta": delta}
        else:
            yield {"type": "content_block_start", "index": index, "content_block": {**block, "input": {}}}
            delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
            yield {"type": "content_block_delta", "index": index, "delta": delta}
        yield {"type": "content_block_stop", "index": index}
    stop = {"stop_reason": message["stop_reason"], "stop_sequence": None}
    yield {"type": "message_delta", "delta": stop, "usage": {"output_tokens": USAGE_OUT}}
    yield {"type": "message_stop"}
