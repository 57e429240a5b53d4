"""Speech to text for voice notes: an OpenAI-compatible `POST <base>/audio/transcriptions`, or faster-whisper here.

It knows HTTP and audio, never Telegram or sessions; every failure becomes a TranscriptionError that says why.
"""

from __future__ import annotations

import asyncio
import importlib.util
import io
import logging
import mimetypes
import threading
from typing import Any

import httpx

from claude_bridge.errors import TranscriptionError
from claude_bridge.runtime import redact_url_credentials
from claude_bridge.settings import TranscribeSettings

logger = logging.getLogger(__name__)

LOCAL_EXTRA = "pip install 'claude-telegram-bridge[voice-local]'"
LOCAL_MISSING = (
    f"TRANSCRIBE_URL=local needs faster-whisper, which is not installed: run `{LOCAL_EXTRA}` in the bot's "
    "environment, or set TRANSCRIBE_URL to an OpenAI-compatible API"
)
PROBE_TIMEOUT = 10.0

_local_models: dict[str, Any] = {}
_local_lock = threading.Lock()


async def transcribe(audio: bytes, filename: str, settings: TranscribeSettings) -> str:
    """The text spoken in `audio`; TranscriptionError if the service fails, times out or hears nothing.

    The error's text is shown in the chat and the log, so a password in TRANSCRIBE_URL is blanked in it.
    """
    try:
        return await _transcribe(audio, filename, settings)
    except TranscriptionError as exc:
        raise _without_credentials(exc) from exc.__cause__


def _without_credentials(exc: TranscriptionError) -> TranscriptionError:
    return TranscriptionError(redact_url_credentials(str(exc)), exc.status)


async def _transcribe(audio: bytes, filename: str, settings: TranscribeSettings) -> str:
    if settings.url is None:
        raise TranscriptionError("voice notes are off: TRANSCRIBE_URL is not set")
    if settings.local:
        text = await asyncio.to_thread(_transcribe_locally, audio, settings)
    else:
        text = await _transcribe_over_http(audio, filename, settings)
    text = text.strip()
    if not text:
        raise TranscriptionError("the transcription came back empty (no speech heard?)")
    logger.info("transcribed %d bytes of audio into %d characters", len(audio), len(text))
    return text


async def _transcribe_over_http(audio: bytes, filename: str, settings: TranscribeSettings) -> str:
    endpoint = f"{settings.url}/audio/transcriptions"
    fields = {"model": settings.model} | ({"language": settings.language} if settings.language else {})
    media_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
    try:
        async with httpx.AsyncClient(timeout=settings.timeout_seconds) as client:
            response = await client.post(
                endpoint, data=fields, files={"file": (filename, audio, media_type)}, headers=_auth(settings)
            )
    except httpx.TimeoutException as exc:
        raise TranscriptionError(
            f"the transcription service at {endpoint} did not answer within {settings.timeout_seconds:g} s"
        ) from exc
    except httpx.HTTPError as exc:
        raise TranscriptionError(
            f"could not reach the transcription service at {endpoint}: {exc or type(exc).__name__}"
        ) from exc
    if response.status_code != 200:
        raise TranscriptionError(
            f"the transcription service at {endpoint} answered HTTP {response.status_code}: {_detail(response)}",
            response.status_code,
        )
    try:
        text = response.json().get("text")
    except (ValueError, AttributeError) as exc:
        raise TranscriptionError(f"the transcription service at {endpoint} answered with no JSON object") from exc
    if not isinstance(text, str):
        raise TranscriptionError(f"the transcription service at {endpoint} answered without a `text` field")
    return text


def _auth(settings: TranscribeSettings) -> dict[str, str]:
    return {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}


def _detail(response: httpx.Response) -> str:
    """The error message of an OpenAI-style error body ({"error": {"message": …}}), else the body's start."""
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        error = None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])[:300]
    if isinstance(error, str) and error:
        return error[:300]
    return " ".join(response.text.split())[:300] or response.reason_phrase


def local_backend_installed() -> bool:
    """Whether faster-whisper (the `voice-local` extra) can be imported, without importing it."""
    return importlib.util.find_spec("faster_whisper") is not None


def _transcribe_locally(audio: bytes, settings: TranscribeSettings) -> str:
    """faster-whisper in this process (a worker thread); the model is fetched once, on first use, and kept."""
    try:
        # The optional extra: imported only when TRANSCRIBE_URL=local asks for it.
        from faster_whisper import WhisperModel
    except ImportError as exc:
        raise TranscriptionError(LOCAL_MISSING) from exc
    try:
        with _local_lock:
            model = _local_models.get(settings.model)
            if model is None:
                logger.info("loading faster-whisper model %s (downloaded on first use)", settings.model)
                model = _local_models[settings.model] = WhisperModel(settings.model)
        segments, _info = model.transcribe(io.BytesIO(audio), language=settings.language)
        return " ".join(segment.text.strip() for segment in segments)
    except Exception as exc:  # faster-whisper, ctranslate2, PyAV and the model download each raise their own
        raise TranscriptionError(f"faster-whisper ({settings.model}) failed: {exc}") from exc


async def probe(settings: TranscribeSettings) -> str:
    """For the doctor: does the service answer (GET <base>/models, spends nothing)? A description, or the error."""
    try:
        return redact_url_credentials(await _probe(settings))
    except TranscriptionError as exc:
        raise _without_credentials(exc) from exc.__cause__


async def _probe(settings: TranscribeSettings) -> str:
    if settings.url is None:
        raise TranscriptionError("TRANSCRIBE_URL is not set")
    endpoint = f"{settings.url}/models"
    try:
        async with httpx.AsyncClient(timeout=PROBE_TIMEOUT) as client:
            response = await client.get(endpoint, headers=_auth(settings))
    except httpx.HTTPError as exc:
        raise TranscriptionError(f"{endpoint} is not reachable: {exc or type(exc).__name__}") from exc
    if response.status_code in (401, 403):
        raise TranscriptionError(
            f"{endpoint} rejected TRANSCRIBE_API_KEY (HTTP {response.status_code}: {_detail(response)})",
            response.status_code,
        )
    if response.status_code == 200:
        return f"{settings.url} answers and accepts the key"
    # Some servers (whisper.cpp, faster-whisper wrappers) have no /models; any answer means it is up.
    return f"{settings.url} answers (GET /models: HTTP {response.status_code})"
