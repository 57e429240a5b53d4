"""A fake OpenAI-compatible speech-to-text API on loopback: `POST <url>/audio/transcriptions` and `GET <url>/models`.

Scripted (`enqueue(Said(...), Fails(500), Hangs(), Said(""))`) and recording (`requests`: the exact bytes, file name,
model, language and Authorization header of each call). It knows nothing of the bot.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

from aiohttp import BodyPartReader, web

DEFAULT_TEXT = "what is the capital of France"


@dataclass(frozen=True)
class Said:
    """Answer 200 with `{"text": text}` (an empty text is what a service returns for silence), after `delay` s."""

    text: str
    delay: float = 0.0


@dataclass(frozen=True)
class Fails:
    """Answer with an OpenAI-style error body."""

    status: int
    message: str = "the fake transcriber failed"


@dataclass(frozen=True)
class Hangs:
    """Accept the request and never answer, until the client goes away or the server stops."""


Reply = Said | Fails | Hangs


@dataclass(frozen=True)
class Received:
    """One transcription request as the service saw it."""

    audio: bytes
    filename: str
    content_type: str
    model: str | None
    language: str | None
    authorization: str | None


@dataclass
class FakeTranscriber:
    """`async with FakeTranscriber() as stt:` then point TRANSCRIBE_URL at `stt.url`."""

    api_key: str | None = None  # when set, a request without `Bearer <api_key>` gets 401, as OpenAI answers
    requests: list[Received] = field(default_factory=list)
    model_listings: int = 0
    url: str = ""
    _script: deque[Reply] = field(default_factory=deque)
    _runner: web.AppRunner | None = None

    def enqueue(self, *replies: Reply) -> None:
        """Script the next transcription answers, first in first out; unscripted calls get DEFAULT_TEXT."""
        self._script.extend(replies)

    async def __aenter__(self) -> FakeTranscriber:
        app = web.Application(client_max_size=1 << 28)
        app.router.add_post("/v1/audio/transcriptions", self._transcriptions)
        app.router.add_get("/v1/models", self._models)
        # handler_cancellation: a client that gives up cancels its handler, which ends a Hangs.
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/v1"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _refused(self, http: web.Request) -> web.Response | None:
        if self.api_key is None or http.headers.get("Authorization") == f"Bearer {self.api_key}":
            return None
        return _error(401, "Incorrect API key provided")

    async def _models(self, http: web.Request) -> web.Response:
        self.model_listings += 1
        return self._refused(http) or web.json_response({"object": "list", "data": [{"id": "whisper-1"}]})

    async def _transcriptions(self, http: web.Request) -> web.Response:
        fields: dict[str, str] = {}
        audio, filename, content_type = b"", "", ""
        reader = await http.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader) or part.name is None:
                continue
            if part.name == "file":
                filename = part.filename or ""
                content_type = part.headers.get("Content-Type", "")
                audio = bytes(await part.read())
            else:
                fields[part.name] = (await part.text())
        authorization = http.headers.get("Authorization")
        self.requests.append(
            Received(audio, filename, content_type, fields.get("model"), fields.get("language"), authorization)
        )
        refused = self._refused(http)
        if refused is not None:
            return refused
        reply = self._script.popleft() if self._script else Said(DEFAULT_TEXT)
        if isinstance(reply, Hangs):
            return await asyncio.Future[web.Response]()  # never resolves: ends by cancellation only
        if isinstance(reply, Fails):
            return _error(reply.status, reply.message)
        if not audio or fields.get("model") is None:
            return _error(400, "file and model are required")
        await asyncio.sleep(reply.delay)
        return web.json_response({"text": reply.text})


def _error(status: int, message: str) -> web.Response:
    body = {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}
    return web.json_response(body, status=status)
