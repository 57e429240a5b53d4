"""The token never reaches a log line, tracebacks included; the bot's own process is private."""

from __future__ import annotations

import io
import logging
import subprocess
import sys

import pytest

from claude_bridge.runtime import RedactingFormatter

pytestmark = pytest.mark.fast

TOKEN = "123456:AAHsecret-token_value"


def test_the_token_is_blanked_in_messages_arguments_and_tracebacks() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(RedactingFormatter("%(levelname)s %(message)s", TOKEN))
    log = logging.getLogger("test.redaction")
    log.addHandler(handler)
    try:
        log.error("GET https://api.telegram.org/bot%s/getMe", TOKEN)
        try:
            raise RuntimeError(f"The token `{TOKEN}` was rejected by the server.")
        except RuntimeError:
            log.exception("start-up failed")
    finally:
        log.removeHandler(handler)

    output = stream.getvalue()
    assert TOKEN not in output and "AAHsecret" not in output
    assert "bot<token>/getMe" in output and "Traceback" in output and "`<token>` was rejected" in output


def test_the_url_encoded_token_is_blanked_too() -> None:
    encoded = "123456%3AAAHsecret-token_value"  # the ':' as an HTTP client writes it in a URL path
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(RedactingFormatter("%(message)s", TOKEN))
    log = logging.getLogger("test.redaction.encoded")
    log.addHandler(handler)
    try:
        log.warning("HTTP Request: POST https://api.telegram.org/bot%s/getUpdates \"HTTP/1.1 409\"", encoded)
    finally:
        log.removeHandler(handler)

    assert stream.getvalue() == 'HTTP Request: POST https://api.telegram.org/bot<token>/getUpdates "HTTP/1.1 409"\n'


def test_the_bot_process_is_not_dumpable_and_writes_private_files(tmp_path) -> None:
    probe = (
        "import ctypes, os, pathlib, sys\n"
        "from claude_bridge.runtime import protect_process\n"
        "protect_process()\n"
        "print(ctypes.CDLL(None).prctl(3, 0, 0, 0, 0))\n"  # PR_GET_DUMPABLE
        f"p = pathlib.Path({str(tmp_path)!r}) / 'state.json'; p.write_text('x')\n"
        "print(oct(p.stat().st_mode & 0o777))\n"
    )
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=30, check=True)

    assert run.stdout.split() == ["0", "0o600"]
