"""The door of the Telegram bot: `main()` reads the settings, wires the parts together and runs the Application.

`python bot.py` runs the bot, `python bot.py doctor` checks the setup, `python bot.py console` chats from a
terminal. The parts live in the `claude_bridge` package: `telegram/` (handlers, rendering, sending),
`console.py`, `doctor.py`, over the sessions (session_manager.py) and the CLI process (claude_subprocess.py).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from telegram.error import InvalidToken

from claude_bridge.console import run_console
from claude_bridge.doctor import run_doctor
from claude_bridge.errors import BridgeError, ConfigError
from claude_bridge.runtime import become_subreaper, protect_process, setup_logging, take_instance_lock
from claude_bridge.settings import find_claude, load_settings
from claude_bridge.telegram.app import build_application
from claude_bridge.telegram.gate import ALLOWED_UPDATES
from session_manager import build_manager

logger = logging.getLogger("bot")


def _not_the_token_traceback(record: logging.LogRecord) -> bool:
    """PTB logs a rejected token with a traceback before raising it; run_bot says it in one line instead."""
    return not (record.exc_info and isinstance(record.exc_info[1], InvalidToken))


def run_bot() -> int:
    """Run the Telegram bot until SIGTERM/SIGINT: 0 on a clean stop, 2 for bad settings, 1 if one already runs."""
    try:
        settings = load_settings()
    except ConfigError as exc:
        print("The bot cannot start; its settings need attention:\n", file=sys.stderr)
        for problem in exc.problems:
            print(f"  • {problem}", file=sys.stderr)
        print("\nSee README.md (Configuration). `python bot.py doctor` checks everything.", file=sys.stderr)
        return 2
    setup_logging(settings.log_level, settings.telegram_token, settings.transcribe.api_key or "")
    logging.getLogger("telegram.ext").addFilter(_not_the_token_traceback)
    protect_process()
    if not become_subreaper():  # what Claude's tools detach stays ours to stop (reaping.stop_survivors)
        logger.warning("not a child subreaper (not Linux?): a tool that detaches itself may outlive its session")
    try:
        claude_bin = find_claude(settings.claude_bin, settings.env)
    except BridgeError as exc:
        logger.error("%s", exc)
        return 2
    lock = take_instance_lock(settings.sessions_dir)
    if lock is None:
        return 1
    app = build_application(settings, lambda front_end: build_manager(settings, claude_bin, front_end))
    logger.info("starting; sessions in %s, Claude CLI %s", settings.sessions_dir, claude_bin)
    try:
        app.run_polling(allowed_updates=ALLOWED_UPDATES)
    except InvalidToken:
        # PTB's message quotes the token; the one line below does not (and the formatter would blank it anyway).
        logger.error("Telegram rejected TELEGRAM_BOT_TOKEN: check it, or get a new one from @BotFather (/token).")
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`python bot.py [doctor|console]`."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "doctor":
        return run_doctor(args[1:])
    if args and args[0] == "console":
        return run_console(args[1:])
    if args and args[0] in ("-h", "--help", "help"):
        print(__doc__)
        return 0
    if args:
        print(f"Unknown argument {args[0]!r}. Use: python bot.py [doctor|console]", file=sys.stderr)
        return 2
    return run_bot()


if __name__ == "__main__":
    sys.exit(main())
