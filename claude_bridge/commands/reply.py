"""What a command answers, for any front end: text plus the choices the user can pick from.

Telegram shows choices as inline buttons, the console as numbered lines; picking one runs its command.
"""

from __future__ import annotations

from dataclasses import dataclass

# Telegram carries a choice's command in callback_data, which holds at most 64 bytes.
CHOICE_COMMAND_BYTES = 64


@dataclass(frozen=True)
class Choice:
    """One thing the user can pick: what it says, and the command picking it runs."""

    label: str
    command: str

    def __post_init__(self) -> None:
        if not self.command.startswith("/") or len(self.command.encode()) > CHOICE_COMMAND_BYTES:
            raise ValueError(f"a choice's command is a /command of at most 64 bytes, not {self.command!r}")


@dataclass(frozen=True)
class Reply:
    """A command's answer: a text, and maybe choices to pick from."""

    text: str
    choices: tuple[Choice, ...] = ()
