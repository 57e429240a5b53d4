"""`python bot.py doctor` checks the voice set-up in one line: off, a service that answers (or not), or local."""

from __future__ import annotations

import pytest
from test_doctor import closed_port_url, doctor

from bot_harness import bot_env
from claude_bridge.voice import local_backend_installed
from fake_transcriber import FakeTranscriber

pytestmark = pytest.mark.real_cli


async def test_voice_notes_off_is_a_passing_line_that_says_how_to_turn_them_on(tmp_path, tg, api):
    report = await doctor(tmp_path, bot_env(tmp_path, tg, api))

    line = report.line_about("voice notes")
    assert line == "✓ voice notes off: set TRANSCRIBE_URL to turn them on (README.md, Voice notes)"
    assert report.code == 0, report.output


async def test_a_transcription_service_that_answers_and_accepts_the_key_passes(tmp_path, tg, api):
    async with FakeTranscriber(api_key="sk-voice") as stt:
        env = bot_env(tmp_path, tg, api, TRANSCRIBE_URL=stt.url, TRANSCRIBE_API_KEY="sk-voice")
        report = await doctor(tmp_path, env)

    assert report.line_about("voice notes").startswith(f"✓ voice notes on: {stt.url} answers and accepts the key")
    assert stt.model_listings == 1 and not stt.requests  # it looked, and transcribed (spent) nothing


async def test_a_rejected_key_and_an_unreachable_service_fail_with_a_hint(tmp_path, tg, api):
    async with FakeTranscriber(api_key="sk-voice") as stt:
        wrong_key = await doctor(tmp_path, bot_env(tmp_path, tg, api, TRANSCRIBE_URL=stt.url, TRANSCRIBE_API_KEY="x"))
    nobody = await doctor(tmp_path, bot_env(tmp_path, tg, api, TRANSCRIBE_URL=closed_port_url() + "/v1"))

    assert wrong_key.failed == [wrong_key.line_about("rejected TRANSCRIBE_API_KEY")]
    assert nobody.failed == [nobody.line_about("is not reachable")]
    assert "check TRANSCRIBE_URL" in nobody.line_about("is not reachable")


@pytest.mark.skipif(local_backend_installed(), reason="faster-whisper is installed here")
async def test_local_transcription_without_faster_whisper_fails_with_the_install_command(tmp_path, tg, api):
    report = await doctor(tmp_path, bot_env(tmp_path, tg, api, TRANSCRIBE_URL="local"))

    line = report.line_about("faster-whisper")
    assert line.startswith("✗ TRANSCRIBE_URL=local but faster-whisper is not installed")
    assert "[voice-local]" in line
