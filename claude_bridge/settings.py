"""Settings: read once from the environment (plus an optional `.env`) in `main()` and passed down.

Only this module reads the bot's own variables; every other variable (ANTHROPIC_*, CLAUDE_CONFIG_DIR,
IS_SANDBOX, …) is left alone and reaches the Claude Code CLI unchanged.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import tzlocal
from dotenv import dotenv_values

from claude_bridge.errors import ClaudeNotFound, ConfigError

DEFAULT_API_BASE = "https://api.telegram.org"
LOCAL_TRANSCRIPTION = "local"
DEFAULT_TRANSCRIBE_MODEL = "whisper-1"
DEFAULT_LOCAL_MODEL = "base"


def usual_cli_locations(home: Path) -> list[Path]:
    """Where installers put `claude` when it is not on PATH (systemd units often lack these)."""
    return [
        home / ".local/bin/claude",
        home / ".claude/local/claude",
        home / ".npm-global/bin/claude",
        Path("/usr/local/bin/claude"),
        home / "node_modules/.bin/claude",
        home / ".yarn/bin/claude",
    ]


def usual_bin_dirs(home: Path) -> list[Path]:
    """Directories added to the CLI's PATH so it (and its tools) find `claude`, `node` and friends."""
    return [home / ".local/bin", home / ".claude/local", home / ".npm-global/bin", Path("/usr/local/bin")]


def find_claude(explicit: str | None, env: Mapping[str, str]) -> Path:
    """Resolve the CLI: CLAUDE_BIN if given, else `claude` on PATH, else the usual install locations."""
    home = Path(env.get("HOME") or Path.home())
    if explicit:
        candidate = Path(explicit).expanduser()
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate.resolve()
        found = shutil.which(explicit, path=env.get("PATH"))
        if found:
            return Path(found)
        raise ClaudeNotFound([f"CLAUDE_BIN={explicit}"])
    searched = [f"PATH ({env.get('PATH', '')})"]
    found = shutil.which("claude", path=env.get("PATH"))
    if found:
        return Path(found)
    for candidate in usual_cli_locations(home):
        searched.append(str(candidate))
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise ClaudeNotFound(searched)


@dataclass(frozen=True)
class TranscribeSettings:
    """Speech to text for voice notes: off (url None), an OpenAI-compatible base URL, or "local" (faster-whisper)."""

    url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    model: str = DEFAULT_TRANSCRIBE_MODEL
    language: str | None = None
    timeout_seconds: float = 120.0

    @property
    def enabled(self) -> bool:
        return self.url is not None

    @property
    def local(self) -> bool:
        return self.url == LOCAL_TRANSCRIPTION


@dataclass(frozen=True)
class Settings:
    """Everything the bot is configured with."""

    telegram_token: str
    allowed_user_ids: frozenset[int]
    allowed_chat_ids: frozenset[int] = frozenset()
    telegram_api_base_url: str = DEFAULT_API_BASE
    claude_bin: str | None = None
    sessions_dir: Path = Path("sessions")
    personas_dir: Path = Path("personas")
    idle_timeout_seconds: float = 1800.0
    max_live_sessions: int = 4
    log_level: str = "INFO"
    watchdog_seconds: float = 600.0
    max_download_mb: float = 20.0
    max_upload_mb: float = 50.0
    max_queued: int = 20
    max_sessions: int = 50
    project_roots: tuple[Path, ...] = ()  # folders under which /new <name> <folder> may point a session
    prompt_timeout_minutes: float | None = None  # deny a tool approval nobody answered after this long (off)
    prompt_reminder_minutes: float = 10.0
    limit_margin_seconds: float = 30.0  # LIMIT_RESUME_MARGIN_SECONDS: wait this long past a usage limit's reset
    transcribe: TranscribeSettings = field(default_factory=TranscribeSettings)
    time_zone: tzinfo = field(default_factory=tzlocal.get_localzone)  # TZ: schedules and reset times are in it
    env: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def owner_id(self) -> int | None:
        """The owner: the lowest of ALLOWED_USER_IDS (kept as a set, so "the first" is the lowest)."""
        return min(self.allowed_user_ids) if self.allowed_user_ids else None

    @property
    def bot_base_url(self) -> str:
        return self.telegram_api_base_url.rstrip("/") + "/bot"

    @property
    def bot_file_base_url(self) -> str:
        return self.telegram_api_base_url.rstrip("/") + "/file/bot"


TOKEN_HELP = (
    "TELEGRAM_BOT_TOKEN is not set. Create a bot with @BotFather in Telegram (/newbot) and put the token "
    "it gives you in .env as TELEGRAM_BOT_TOKEN=123456:ABC..."
)
ALLOWLIST_HELP = (
    "ALLOWED_USER_IDS is not set. Put your numeric Telegram user id in .env as ALLOWED_USER_IDS=123456789 "
    "(comma-separated for several people). To find it, message @userinfobot in Telegram, or start the bot "
    "and read the refusal it logs with your id."
)


def _number(env: Mapping[str, str], name: str, default: float, problems: list[str]) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        problems.append(f"{name}={raw!r} is not a number.")
        return default
    if value <= 0:
        problems.append(f"{name} must be greater than 0 (got {raw}).")
    return value


def _count(env: Mapping[str, str], name: str, default: int, problems: list[str]) -> int:
    """A whole number greater than 0 (ASCII digits only)."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not re.fullmatch(r"[0-9]{1,9}", raw) or int(raw) <= 0:
        problems.append(f"{name}={raw!r} is not a whole number greater than 0.")
        return default
    return int(raw)


_USER_ID = re.compile(r"[0-9]{1,20}")
_CHAT_ID = re.compile(r"-?[0-9]{1,20}")


def _parse_user_ids(raw: str, problems: list[str]) -> frozenset[int]:
    """Strict: ASCII digits only, greater than 0 (isdigit() would let '²' or '-5' through)."""
    ids: set[int] = set()
    for part in raw.replace(" ", "").split(","):
        if not part:
            continue
        if not _USER_ID.fullmatch(part) or int(part) <= 0:
            problems.append(f"ALLOWED_USER_IDS: {part!r} is not a numeric Telegram user id (digits, greater than 0).")
            continue
        ids.add(int(part))
    return frozenset(ids)


def _parse_chat_ids(raw: str, problems: list[str]) -> frozenset[int]:
    """Group and supergroup ids are negative (-100… for supergroups); 0 is never a chat."""
    ids: set[int] = set()
    for part in raw.replace(" ", "").split(","):
        if not part:
            continue
        if not _CHAT_ID.fullmatch(part) or int(part) == 0:
            problems.append(f"ALLOWED_CHAT_IDS: {part!r} is not a numeric Telegram chat id (e.g. -1001234567890).")
            continue
        ids.add(int(part))
    return frozenset(ids)


def _project_roots(raw: str, home: Path, problems: list[str]) -> tuple[Path, ...]:
    """PROJECT_ROOTS: existing folders separated like PATH (os.pathsep); `~` is the user's home. Default: the home."""
    if not raw.strip():
        return (home.resolve(),) if home.is_dir() else ()  # a service user without a home: no project folders
    roots: list[Path] = []
    for part in raw.split(os.pathsep):
        part = part.strip()
        if not part:
            continue
        path = home / part[2:] if part == "~" or part.startswith("~/") else Path(part)
        if not path.is_absolute():
            problems.append(f"PROJECT_ROOTS: {part!r} is not an absolute folder (start it with / or ~/).")
        elif not path.is_dir():
            problems.append(f"PROJECT_ROOTS: {part!r} is not an existing folder.")
        elif path.resolve() not in roots:
            roots.append(path.resolve())
    return tuple(roots)


def _transcribe_settings(env: Mapping[str, str], problems: list[str]) -> TranscribeSettings:
    url = env.get("TRANSCRIBE_URL", "").strip() or None
    if url is not None and url != LOCAL_TRANSCRIPTION and not re.fullmatch(r"https?://[^\s/]+(/\S*)?", url):
        problems.append(
            f"TRANSCRIBE_URL={url!r} is neither an http(s) URL nor 'local'. Set it to the base URL of an "
            "OpenAI-compatible API (e.g. https://api.openai.com/v1), or to local for faster-whisper."
        )
    language = env.get("TRANSCRIBE_LANGUAGE", "").strip().lower() or None
    if language is not None and not re.fullmatch(r"[a-z]{2,3}", language):
        problems.append(f"TRANSCRIBE_LANGUAGE={language!r} is not an ISO-639-1 code. Use e.g. en, de or fr.")
    default_model = DEFAULT_LOCAL_MODEL if url == LOCAL_TRANSCRIPTION else DEFAULT_TRANSCRIBE_MODEL
    return TranscribeSettings(
        url=url.rstrip("/") if url else None,
        api_key=env.get("TRANSCRIBE_API_KEY", "").strip() or None,
        model=env.get("TRANSCRIBE_MODEL", "").strip() or default_model,
        language=language,
        timeout_seconds=_number(env, "TRANSCRIBE_TIMEOUT_SECONDS", 120, problems),
    )


def load_settings(
    env: Mapping[str, str] | None = None,
    dotenv_path: Path | None = Path(".env"),
    *,
    require_telegram: bool = True,
) -> Settings:
    """Build Settings from the environment plus an optional .env file; ConfigError lists every problem.

    The process environment wins over `.env`. The console front end passes `require_telegram=False`.
    """
    merged: dict[str, str] = {}
    if dotenv_path is not None and dotenv_path.is_file():
        merged.update({k: v for k, v in dotenv_values(dotenv_path).items() if v is not None})
    merged.update(os.environ if env is None else env)

    problems: list[str] = []
    token = merged.get("TELEGRAM_BOT_TOKEN", "").strip()
    if not token and require_telegram:
        problems.append(TOKEN_HELP)
    raw_ids = merged.get("ALLOWED_USER_IDS", "").strip()
    allowed = _parse_user_ids(raw_ids, problems) if raw_ids else frozenset()
    if require_telegram and (not raw_ids or (not allowed and not problems)):
        problems.append(ALLOWLIST_HELP)
    api_base = merged.get("TELEGRAM_API_BASE_URL", "").strip() or DEFAULT_API_BASE
    allowed_chats = _parse_chat_ids(merged.get("ALLOWED_CHAT_IDS", "").strip(), problems)
    max_live = _number(merged, "MAX_LIVE_SESSIONS", 4, problems)
    log_level = merged.get("LOG_LEVEL", "INFO").strip().upper() or "INFO"
    if log_level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        problems.append(f"LOG_LEVEL={log_level!r} is not one of DEBUG, INFO, WARNING, ERROR, CRITICAL.")
    settings = Settings(
        telegram_token=token,
        allowed_user_ids=allowed,
        allowed_chat_ids=allowed_chats,
        telegram_api_base_url=api_base,
        claude_bin=merged.get("CLAUDE_BIN", "").strip() or None,
        sessions_dir=Path(merged.get("SESSIONS_DIR", "").strip() or "sessions").expanduser().absolute(),
        personas_dir=Path(merged.get("PERSONAS_DIR", "").strip() or "personas").expanduser().absolute(),
        idle_timeout_seconds=_number(merged, "IDLE_TIMEOUT_SECONDS", 1800, problems),
        max_live_sessions=max(1, int(max_live)),
        log_level=log_level,
        watchdog_seconds=_number(merged, "WATCHDOG_SECONDS", 600, problems),
        max_download_mb=_number(merged, "MAX_DOWNLOAD_MB", 20, problems),
        # Telegram takes uploads up to 50 MB from a bot; a self-hosted Bot API server up to 2000 MB.
        max_upload_mb=_number(merged, "MAX_UPLOAD_MB", 50 if api_base == DEFAULT_API_BASE else 2000, problems),
        max_queued=_count(merged, "MAX_QUEUED", 20, problems),
        max_sessions=_count(merged, "MAX_SESSIONS", 50, problems),
        project_roots=_project_roots(
            merged.get("PROJECT_ROOTS", ""), Path(merged.get("HOME") or Path.home()), problems
        ),
        prompt_timeout_minutes=_number(merged, "PROMPT_TIMEOUT_MINUTES", 0, problems) or None,
        prompt_reminder_minutes=_number(merged, "PROMPT_REMINDER_MINUTES", 10, problems),
        limit_margin_seconds=_number(merged, "LIMIT_RESUME_MARGIN_SECONDS", 30, problems),
        transcribe=_transcribe_settings(merged, problems),
        time_zone=_time_zone(merged.get("TZ", "").strip(), problems),
        env=dict(merged),
    )
    if problems:
        raise ConfigError(problems)
    return settings


def _time_zone(name: str, problems: list[str]) -> tzinfo:
    """The bot's zone: an IANA name (TZ), else this machine's."""
    if not name:
        return tzlocal.get_localzone()
    try:
        return ZoneInfo(name.removeprefix(":"))  # glibc also accepts TZ=":Europe/Berlin"
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(f"TZ={name!r} is not a time zone; use a name like Europe/Berlin.")
        return tzlocal.get_localzone()


SECRETS = frozenset({"TELEGRAM_BOT_TOKEN", "TRANSCRIBE_API_KEY"})


def cli_environment(settings: Settings) -> dict[str, str]:
    """What the CLI (and every command Claude runs) inherits: everything but the bot's own secrets."""
    return {k: v for k, v in settings.env.items() if k not in SECRETS}
