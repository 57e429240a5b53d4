"""The bridge's error tree; a front end shows any of these as a short, useful reply (Telegram's error handler, the
console's loop, bot.py's `main()` at start-up) and logs anything else with its traceback.

BridgeError                 base
├── ConfigError             settings missing or invalid: each problem with how to fix it
├── ClaudeNotFound          the CLI is missing: where we looked and how to install it
├── ClaudeStartError        the CLI refused to start (root without IS_SANDBOX, bad flag): stderr tail attached
├── ClaudeNoAnswer          a control request (set_model, interrupt, …) timed out or its process ended first
├── SessionError            bad name, unknown session, refused operation
└── TranscriptionError      a voice note could not be turned into text: the service's answer, or why not
"""

from __future__ import annotations


class BridgeError(Exception):
    """Base of every error the bridge shows to a user."""


class ConfigError(BridgeError):
    """Settings are missing or invalid; `problems` says each one and how to fix it."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class ClaudeNotFound(BridgeError):
    """The Claude Code CLI could not be found."""

    def __init__(self, searched: list[str]) -> None:
        self.searched = searched
        super().__init__(
            "Claude Code CLI not found. Looked in: "
            + ", ".join(searched)
            + ". Install it with `npm install -g @anthropic-ai/claude-code` (or see "
            "https://docs.anthropic.com/en/docs/claude-code) or set CLAUDE_BIN to its path."
        )


class ClaudeStartError(BridgeError):
    """The CLI exited before it could take a message."""

    def __init__(self, message: str, exit_code: int | None, stderr_tail: str) -> None:
        self.exit_code = exit_code
        self.stderr_tail = stderr_tail
        super().__init__(message)


class ClaudeNoAnswer(BridgeError):
    """A control request got no answer: `request` is its subtype ("set_model", …), the text says why."""

    def __init__(self, request: str, message: str) -> None:
        self.request = request
        super().__init__(message)


class SessionError(BridgeError):
    """A session operation was refused: bad name, unknown session, busy, …"""


class TranscriptionError(BridgeError):
    """Speech to text failed; `status` is the service's HTTP status when it answered with an error."""

    def __init__(self, message: str, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)
