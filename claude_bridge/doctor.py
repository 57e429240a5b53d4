"""`python bot.py doctor`: checks the setup and prints one ✓ / ✗ line per check, with how to fix each ✗.

It only looks (settings, Telegram's getMe, the CLI, root, folders, personas, voice notes); the one thing it may
spend is a tiny real turn, and only when asked with `--turn`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from telegram import Bot
from telegram.error import InvalidToken, NetworkError, TelegramError
from telegram.request import HTTPXRequest

from claude_bridge.errors import BridgeError, ClaudeNotFound, ConfigError, TranscriptionError
from claude_bridge.process.argv import ProcessOptions
from claude_bridge.process.subprocess import ClaudeSubprocess
from claude_bridge.runtime import setup_logging
from claude_bridge.sessions.store import DEFAULT_PERSONA, Persona, load_personas
from claude_bridge.settings import ALLOWLIST_HELP, TOKEN_HELP, Settings, cli_environment, find_claude, load_settings
from claude_bridge.voice import LOCAL_EXTRA, local_backend_installed, probe

VERSION_TIMEOUT = 10.0
TURN_TIMEOUT = 120.0
PING = "Reply with the single word: pong"
INSTALL_HINT = "install it with `npm install -g @anthropic-ai/claude-code`, or set CLAUDE_BIN to its full path"
# The oldest CLI the test suite runs against (the Makefile's CLAUDE_CODE_OLDEST_TESTED; a test keeps them equal).
OLDEST_TESTED_CLI = "2.1.197"
UPDATE_HINT = "update it with `npm install -g @anthropic-ai/claude-code@latest` (or `claude update`)"


@dataclass(frozen=True)
class Check:
    """One line of the checklist."""

    ok: bool
    what: str
    hint: str = ""

    def line(self) -> str:
        """`✓ what` or `✗ what — hint`."""
        return f"✓ {self.what}" if self.ok else f"✗ {self.what} — {self.hint}"


def split_problem(problem: str) -> Check:
    """A config problem ("X is wrong. Do this.") as a failed check: the first sentence, then the advice."""
    what, _, hint = problem.partition(". ")
    return Check(False, what.rstrip("."), hint or "see README.md (Configuration)")


def check_settings() -> tuple[Settings | None, list[Check]]:
    """Load the settings as the bot does, except the Telegram ones, which have checks of their own."""
    try:
        settings = load_settings(require_telegram=False)
    except ConfigError as exc:
        return None, [split_problem(problem) for problem in exc.problems]
    source = "the environment and ./.env" if Path(".env").is_file() else "the environment (no .env here)"
    return settings, [Check(True, f"settings load from {source}")]


def check_allowlist(settings: Settings) -> Check:
    """At least one Telegram user may use the bot."""
    ids = sorted(settings.allowed_user_ids)
    if not ids:
        return split_problem(ALLOWLIST_HELP)
    return Check(True, f"ALLOWED_USER_IDS allows {len(ids)} user(s): {', '.join(map(str, ids))}")


async def check_telegram(settings: Settings) -> Check:
    """getMe through python-telegram-bot: the server is reachable and accepts the token."""
    if not settings.telegram_token:
        return split_problem(TOKEN_HELP)
    where = settings.telegram_api_base_url
    request = HTTPXRequest(connect_timeout=10.0, read_timeout=10.0)
    bot = Bot(
        settings.telegram_token,
        base_url=settings.bot_base_url,
        base_file_url=settings.bot_file_base_url,
        request=request,
    )
    try:
        async with bot:
            username = bot.username
    except InvalidToken:
        # PTB puts the token into this exception's message, so it is never printed.
        return Check(
            False,
            f"Telegram at {where} rejected TELEGRAM_BOT_TOKEN",
            "copy the token again from @BotFather (/mybots → API Token), or create a bot there with /newbot",
        )
    except NetworkError as exc:
        return Check(
            False,
            f"Telegram at {where} is not reachable ({_redact(str(exc), settings.telegram_token)})",
            "check the machine's internet connection, proxy and firewall; TELEGRAM_API_BASE_URL must be the "
            "server root (default https://api.telegram.org)",
        )
    except TelegramError as exc:
        return Check(
            False,
            f"Telegram at {where} answered getMe with an error: {_redact(str(exc), settings.telegram_token)}",
            "check TELEGRAM_BOT_TOKEN and TELEGRAM_API_BASE_URL",
        )
    return Check(True, f"Telegram at {where} accepts the token: the bot is @{username}")


def _redact(text: str, secret: str) -> str:
    return text.replace(secret, "<token>") if secret else text


def check_claude(settings: Settings) -> tuple[Path | None, Check]:
    """The CLI is found where the bot will look for it."""
    try:
        path = find_claude(settings.claude_bin, settings.env)
    except ClaudeNotFound as exc:
        return None, Check(False, f"Claude Code CLI not found (looked in: {', '.join(exc.searched)})", INSTALL_HINT)
    return path, Check(True, f"Claude Code CLI found at {path}")


def check_version(claude_bin: Path, env: Mapping[str, str]) -> Check:
    """`claude --version` runs and answers within VERSION_TIMEOUT."""
    try:
        run = subprocess.run(
            [str(claude_bin), "--version"],
            capture_output=True,
            text=True,
            env=dict(env),
            timeout=VERSION_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return Check(
            False,
            f"`{claude_bin} --version` did not answer within {VERSION_TIMEOUT:g} s",
            "run it by hand to see what it waits for, or reinstall the CLI",
        )
    except OSError as exc:
        return Check(False, f"`{claude_bin} --version` could not run ({exc})", INSTALL_HINT)
    if run.returncode != 0:
        tail = (run.stderr or run.stdout).strip()[-300:]
        return Check(False, f"`{claude_bin} --version` failed (exit code {run.returncode}): {tail}", INSTALL_HINT)
    answer = run.stdout.strip()
    version = parse_version(answer)
    if version and version < parse_version(OLDEST_TESTED_CLI):
        return Check(
            False,
            f"Claude Code version {answer} is older than {OLDEST_TESTED_CLI}, the oldest this bot is tested with",
            UPDATE_HINT,
        )
    return Check(True, f"Claude Code version {answer}")


def parse_version(text: str) -> tuple[int, ...]:
    """The leading dotted number of `claude --version`'s answer ("2.1.332 (Claude Code)" → (2, 1, 332)); () if none."""
    found = re.match(r"\s*v?(\d+(?:\.\d+)*)", text)
    return tuple(int(part) for part in found[1].split(".")) if found else ()


def check_not_root(settings: Settings, personas: Mapping[str, Persona]) -> Check:
    """Claude Code refuses bypassPermissions as root unless IS_SANDBOX=1."""
    skipping = sorted(name for name, persona in personas.items() if persona.permission_mode == "bypassPermissions")
    if os.geteuid() != 0:
        return Check(True, "not running as root")
    if not skipping:
        return Check(True, "running as root, but no persona skips permissions")
    # The CLI compares the value with the string "1" exactly; IS_SANDBOX=true does not count.
    if settings.env.get("IS_SANDBOX") == "1":
        return Check(True, "running as root with IS_SANDBOX=1 (fine in a disposable container)")
    return Check(
        False,
        f"running as root while personas skip permission prompts (bypassPermissions): {', '.join(skipping)}",
        "Claude Code refuses that as root: run the bot as a normal user, or set IS_SANDBOX=1 only in a "
        "disposable container",
    )


def check_sessions_dir(directory: Path) -> Check:
    """The sessions directory exists (created if missing) and takes a file."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".doctor-") as probe:
            probe.write(b"ok")
            probe.flush()
    except OSError as exc:
        return Check(
            False,
            f"sessions directory {directory} is not writable ({exc.strerror or exc})",
            "set SESSIONS_DIR to a folder the bot's user owns, or fix the folder's permissions",
        )
    return Check(True, f"sessions directory {directory} is writable")


def check_personas(settings: Settings) -> tuple[dict[str, Persona], list[Check]]:
    """Every persona file is valid; a missing personas directory leaves only the built-in default."""
    personas, problems = load_personas(settings.personas_dir)
    checks = [
        Check(False, f"persona file {problem}", "fix the file or remove it (README.md, Personas, shows the format)")
        for problem in problems
    ]
    if not settings.personas_dir.is_dir():
        checks.append(
            Check(
                False,
                f"personas directory {settings.personas_dir} does not exist, so only a bare default persona is left",
                "run the bot from its project folder, or set PERSONAS_DIR to the folder holding the *.json files",
            )
        )
    elif not problems:
        checks.append(Check(True, f"personas valid: {', '.join(sorted(personas))}"))
    return personas, checks


async def check_voice(settings: Settings) -> Check:
    """Voice notes: off is fine; a service must answer; local needs faster-whisper installed."""
    voice = settings.transcribe
    if not voice.enabled:
        return Check(True, "voice notes off: set TRANSCRIBE_URL to turn them on (README.md, Voice notes)")
    if voice.local:
        if not local_backend_installed():
            return Check(False, "TRANSCRIBE_URL=local but faster-whisper is not installed", f"run `{LOCAL_EXTRA}`")
        return Check(True, f"voice notes on: faster-whisper installed, model {voice.model} (fetched on first use)")
    try:
        answer = await probe(voice)
    except TranscriptionError as exc:
        return Check(
            False,
            f"voice notes: {exc}",
            "check TRANSCRIBE_URL (the API's base, e.g. https://api.openai.com/v1) and TRANSCRIBE_API_KEY",
        )
    return Check(True, f"voice notes on: {answer}; model {voice.model}")


async def check_turn(claude_bin: Path, settings: Settings, personas: Mapping[str, Persona]) -> Check:
    """One tiny real turn in a throw-away folder, with the default persona's permission mode."""
    persona = personas.get(DEFAULT_PERSONA)
    with tempfile.TemporaryDirectory(prefix="claude-doctor-") as folder:
        process = ClaudeSubprocess(
            ProcessOptions(
                claude_bin=claude_bin,
                cwd=Path(folder),
                env=cli_environment(settings),
                permission_mode=persona.permission_mode if persona else None,
                restart_delays=(),
                label="doctor",
            )
        )
        try:
            await process.start()
            result = await asyncio.wait_for(process.submit(PING).wait(), TURN_TIMEOUT)
        except TimeoutError:
            return Check(
                False,
                f"a real turn got no answer within {TURN_TIMEOUT:g} s",
                "check the network and the Anthropic API status; `claude -p hello` shows the same",
            )
        except BridgeError as exc:
            return Check(False, f"Claude Code could not start: {exc}", "run `claude -p hello` by hand to see why")
        finally:
            await process.stop()
    if result.is_error:
        return Check(
            False,
            f"a real turn failed: {result.error_text[:300]}",
            "log in once with `claude`, or set ANTHROPIC_API_KEY; `claude -p hello` shows the same error",
        )
    answer = " ".join(result.text.split())[:80]
    return Check(True, f"a real turn answered “{answer}” in {result.duration_ms / 1000:.1f} s")


def run_checks(settings: Settings, turn: bool) -> list[Check]:
    """Every check that needs the settings, each printed as soon as it is known."""
    checks = [show(check_allowlist(settings)), show(asyncio.run(check_telegram(settings)))]
    claude_bin, found = check_claude(settings)
    checks.append(show(found))
    if claude_bin is not None:
        checks.append(show(check_version(claude_bin, cli_environment(settings))))
    personas, persona_checks = check_personas(settings)
    checks.append(show(check_not_root(settings, personas)))
    checks.append(show(check_sessions_dir(settings.sessions_dir)))
    checks += [show(check) for check in persona_checks]
    checks.append(show(asyncio.run(check_voice(settings))))
    if turn and claude_bin is not None:
        print("… running one real turn (it costs a few tokens)", flush=True)
        checks.append(show(asyncio.run(check_turn(claude_bin, settings, personas))))
    return checks


def show(check: Check) -> Check:
    """Print a check's line at once (the Telegram and CLI checks can take seconds)."""
    print(check.line(), flush=True)
    return check


def run_doctor(args: list[str]) -> int:
    """Print the checklist; 0 when every check passed, 1 when one failed, 2 when the settings do not load."""
    parser = argparse.ArgumentParser(prog="bot.py doctor", description="Check the bot's setup.")
    parser.add_argument("--turn", action="store_true", help="also run one tiny real turn (costs a few tokens)")
    parser.add_argument("-v", "--verbose", action="store_true", help="show the log on stderr")
    options = parser.parse_args(args)
    settings, checks = check_settings()
    setup_logging("DEBUG" if options.verbose else "CRITICAL", settings.telegram_token if settings else "")
    for check in checks:
        show(check)
    if settings is None:
        show(Check(False, "the other checks need settings that load", "fix the settings above, then run this again"))
        return 2
    checks += run_checks(settings, options.turn)
    failed = sum(1 for check in checks if not check.ok)
    print("\nAll checks passed." if not failed else f"\n{failed} check(s) failed; see the hints after —.")
    return 1 if failed else 0
