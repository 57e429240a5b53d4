"""The SessionManager wired to real Claude Code processes, from the settings (what front ends start with)."""

from __future__ import annotations

from pathlib import Path

from claude_bridge.process.argv import ProcessOptions
from claude_bridge.process.requests import control_handler
from claude_bridge.process.subprocess import ClaudeSubprocess
from claude_bridge.sessions.file_policy import Protected
from claude_bridge.sessions.frontend import FrontEnd
from claude_bridge.sessions.manager import SessionManager
from claude_bridge.sessions.store import load_personas
from claude_bridge.settings import Settings, cli_environment


def build_manager(settings: Settings, claude_bin: Path, front_end: FrontEnd | None = None) -> SessionManager:
    """The session manager with real Claude processes, showing through `front_end` (the front end's port)."""
    personas, _ = load_personas(settings.personas_dir)
    base = ProcessOptions(
        claude_bin=claude_bin,
        cwd=settings.sessions_dir,
        env=cli_environment(settings),
        watchdog_seconds=settings.watchdog_seconds,
    )
    return SessionManager(
        settings.sessions_dir,
        spawn=lambda options, hooks: ClaudeSubprocess(
            options,
            hooks.on_status,
            on_claude_turn=hooks.on_claude_turn,
            on_control_request=control_handler(hooks.tools, hooks.on_permission),
        ),
        base_options=base,
        personas=personas,
        idle_after=settings.idle_timeout_seconds,
        max_live=settings.max_live_sessions,
        max_queued=settings.max_queued,
        max_sessions=settings.max_sessions,
        front_end=front_end,
        owner=settings.owner_id,
        upload_limit=int(settings.max_upload_mb * 1024 * 1024),
        project_roots=settings.project_roots,
        protected=Protected.of(
            sessions_dir=settings.sessions_dir,
            env=settings.env,
            secrets=(settings.telegram_token, settings.transcribe.api_key or ""),
            # The .env load_settings read lives in the bot's working folder, which may not be its code's folder.
            bot_folders=(Path.cwd(),) if Path(".env").is_file() else (),
        ),
        prompt_reminder=settings.prompt_reminder_minutes * 60,
        prompt_timeout=settings.prompt_timeout_minutes * 60 if settings.prompt_timeout_minutes else None,
        time_zone=settings.time_zone,
        limit_margin=settings.limit_margin_seconds,
    )
