"""Speech to text on its own: the settings, and the client against a fake OpenAI-compatible transcription API."""

from __future__ import annotations

import socket
import sys
import types
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, ClassVar

import pytest
import pytest_asyncio

from claude_bridge.errors import ConfigError, TranscriptionError
from claude_bridge.settings import TranscribeSettings, cli_environment, load_settings
from claude_bridge.voice import local_backend_installed, probe, transcribe
from fake_transcriber import Fails, FakeTranscriber, Hangs, Said

pytestmark = pytest.mark.fast

OGG = b"OggS\x00\x02" + bytes(range(256)) * 4  # not real speech: the fake only records the bytes


@pytest_asyncio.fixture
async def stt() -> AsyncIterator[FakeTranscriber]:
    async with FakeTranscriber(api_key="sk-voice") as server:
        yield server


def settings_for(stt: FakeTranscriber, **overrides: object) -> TranscribeSettings:
    values: dict[str, object] = {"url": stt.url, "api_key": "sk-voice", "model": "whisper-large-v3"}
    return TranscribeSettings(**(values | overrides))  # type: ignore[arg-type]


def closed_port_url() -> str:
    with socket.socket() as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe_socket.getsockname()[1]}/v1"


def load(**env: str) -> TranscribeSettings:
    return load_settings(env, dotenv_path=None, require_telegram=False).transcribe


async def test_the_service_gets_the_exact_audio_model_language_and_key_and_its_text_comes_back(stt):
    stt.enqueue(Said("  turn the lights off  "))

    text = await transcribe(OGG, "voice-7.ogg", settings_for(stt, language="de"))

    assert text == "turn the lights off"
    [seen] = stt.requests
    assert seen.audio == OGG and seen.filename == "voice-7.ogg" and seen.content_type == "audio/ogg"
    assert (seen.model, seen.language, seen.authorization) == ("whisper-large-v3", "de", "Bearer sk-voice")


async def test_no_language_and_no_key_send_neither(tmp_path):
    async with FakeTranscriber() as open_server:
        await transcribe(OGG, "a.mp3", TranscribeSettings(url=open_server.url))

    [seen] = open_server.requests
    assert (seen.model, seen.language, seen.authorization) == ("whisper-1", None, None)


async def test_an_http_error_carries_the_status_and_the_services_message(stt):
    stt.enqueue(Fails(500, "model overloaded"))

    with pytest.raises(TranscriptionError, match="HTTP 500: model overloaded") as caught:
        await transcribe(OGG, "voice.ogg", settings_for(stt))
    assert caught.value.status == 500


async def test_a_wrong_key_is_reported_as_the_service_says_it(stt):
    with pytest.raises(TranscriptionError, match="HTTP 401: Incorrect API key"):
        await transcribe(OGG, "voice.ogg", settings_for(stt, api_key="sk-wrong"))


async def test_a_service_that_never_answers_times_out_with_a_clear_error(stt):
    stt.enqueue(Hangs())

    with pytest.raises(TranscriptionError, match=r"did not answer within 0\.5 s"):
        await transcribe(OGG, "voice.ogg", settings_for(stt, timeout_seconds=0.5))


async def test_an_empty_transcript_is_an_error_not_an_empty_message(stt):
    stt.enqueue(Said("   "))

    with pytest.raises(TranscriptionError, match="empty"):
        await transcribe(OGG, "voice.ogg", settings_for(stt))


async def test_an_unreachable_service_is_named_in_the_error():
    url = closed_port_url()

    with pytest.raises(TranscriptionError, match=f"could not reach .*{url}/audio/transcriptions"):
        await transcribe(OGG, "voice.ogg", TranscribeSettings(url=url))


async def test_without_a_url_nothing_is_sent():
    with pytest.raises(TranscriptionError, match="TRANSCRIBE_URL is not set"):
        await transcribe(OGG, "voice.ogg", TranscribeSettings())


@pytest.mark.skipif(local_backend_installed(), reason="faster-whisper is installed here")
async def test_local_mode_without_the_extra_says_how_to_install_it():
    with pytest.raises(TranscriptionError, match=r"claude-telegram-bridge\[voice-local\]"):
        await transcribe(OGG, "voice.ogg", TranscribeSettings(url="local", model="tiny"))


@dataclass(frozen=True)
class Segment:
    text: str


class FakeWhisperModel:
    """faster-whisper's face: `WhisperModel(name)`, `.transcribe(audio, language=…) -> (segments, info)`."""

    loaded: ClassVar[list[str]] = []
    heard: ClassVar[list[tuple[bytes, str | None]]] = []

    def __init__(self, model_size_or_path: str) -> None:
        self.loaded.append(model_size_or_path)

    def transcribe(self, audio: IO[bytes], language: str | None = None) -> tuple[Iterator[Segment], Any]:
        self.heard.append((audio.read(), language))
        return iter([Segment(" Hello"), Segment(" world. ")]), None


async def test_local_mode_runs_faster_whisper_and_loads_its_model_once(monkeypatch):
    fake = types.ModuleType("faster_whisper")
    fake.WhisperModel = FakeWhisperModel  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "faster_whisper", fake)
    settings = TranscribeSettings(url="local", model="fake-model-once", language="en")

    first = await transcribe(OGG, "voice.ogg", settings)
    await transcribe(b"second", "voice.ogg", settings)

    assert first == "Hello world."
    assert FakeWhisperModel.loaded.count("fake-model-once") == 1
    assert FakeWhisperModel.heard[-2:] == [(OGG, "en"), (b"second", "en")]


async def test_the_doctors_probe_tells_a_working_service_from_a_rejected_key(stt):
    assert "accepts the key" in await probe(settings_for(stt))
    with pytest.raises(TranscriptionError, match="rejected TRANSCRIBE_API_KEY"):
        await probe(settings_for(stt, api_key="sk-wrong"))
    with pytest.raises(TranscriptionError, match="not reachable"):
        await probe(TranscribeSettings(url=closed_port_url()))


def test_settings_default_to_off_and_to_whisper_1():
    assert load() == TranscribeSettings(url=None, api_key=None, model="whisper-1", language=None)
    assert not load().enabled


def test_settings_are_read_and_the_key_is_kept_out_of_reprs_and_the_clis_environment(tmp_path: Path):
    env = {"TRANSCRIBE_URL": "https://api.groq.com/openai/v1/", "TRANSCRIBE_API_KEY": "gsk-secret",
           "TRANSCRIBE_MODEL": "whisper-large-v3", "TRANSCRIBE_LANGUAGE": "DE"}
    settings = load_settings(env, dotenv_path=None, require_telegram=False)

    voice = settings.transcribe
    assert (voice.url, voice.api_key, voice.model, voice.language) == (
        "https://api.groq.com/openai/v1", "gsk-secret", "whisper-large-v3", "de")
    assert "gsk-secret" not in repr(settings)
    assert "TRANSCRIBE_API_KEY" not in cli_environment(settings)


def test_local_mode_defaults_to_a_faster_whisper_model_name():
    voice = load(TRANSCRIBE_URL="local")
    assert voice.local and voice.model == "base"
    assert load(TRANSCRIBE_URL="local", TRANSCRIBE_MODEL="small").model == "small"


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"TRANSCRIBE_URL": "api.openai.com/v1"}, "neither an http(s) URL nor 'local'"),
        ({"TRANSCRIBE_URL": "local", "TRANSCRIBE_LANGUAGE": "english"}, "not an ISO-639-1 code"),
        ({"TRANSCRIBE_URL": "local", "TRANSCRIBE_TIMEOUT_SECONDS": "soon"}, "is not a number"),
    ],
)
def test_bad_voice_settings_are_refused_with_how_to_fix_them(env, problem):
    with pytest.raises(ConfigError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        load(**env)
