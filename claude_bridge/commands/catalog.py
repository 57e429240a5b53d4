"""The bot's commands by name: the one source of the help text, the usage lines and Telegram's command menu.

Words only; running a command is core.py's job.
"""

from __future__ import annotations

from dataclasses import dataclass

from claude_bridge.sessions.manager import MODEL_ALIASES


@dataclass(frozen=True)
class CommandSpec:
    """How a command is typed and what it does, in the words /help and the menu use."""

    name: str
    usage: str
    summary: str
    in_help: bool = True
    in_menu: bool = True


SPECS = (
    CommandSpec("start", "/start", "what this bot is", in_help=False),
    CommandSpec("help", "/help", "commands and tips", in_help=False),
    CommandSpec(
        "new",
        "/new [name] [folder] [persona]",
        "start a session (and switch to it); with a folder (/abs/path, ~/path or ./path under the first of "
        "PROJECT_ROOTS) Claude works in that project",
    ),
    CommandSpec("switch", "/switch [name]", "change the active session (no name: pick one)"),
    CommandSpec("sessions", "/sessions", "list sessions"),
    CommandSpec("model", f"/model [{'|'.join(MODEL_ALIASES)}|<full model id>|default]", "show or change the model"),
    CommandSpec("persona", "/persona [name]", "show or change the persona (system prompt)"),
    CommandSpec(
        "mode",
        "/mode [default|acceptEdits|plan|bypassPermissions]",
        "show or change what Claude may do unasked (default: ask first)",
    ),
    CommandSpec(
        "permissions",
        "/permissions",
        "what Claude may do unasked in the session's project (“Always allow” rules), each with Remove",
    ),
    CommandSpec("stop", "/stop [name]", "stop the running answer; the session lives on"),
    CommandSpec("status", "/status", "what the active session is doing"),
    CommandSpec("tasks", "/tasks [stop <id>]", "background tasks of the active session (stop one)"),
    CommandSpec("usage", "/usage", "cost and tokens per session today, and the plan's usage limit"),
    CommandSpec("limit", "/limit cancel", "do not continue by itself after the usage limit", in_menu=False),
    CommandSpec("resume", "/resume [id]", "continue an earlier conversation of the session's folder (no id: pick one)"),
    CommandSpec("delete", "/delete <name>", "delete a session (asks first)"),
    CommandSpec("every", "/every <interval> <prompt>", "run a prompt in the active session every 10m, 2h, 1d, …"),
    CommandSpec("at", "/at <when> <prompt>", "run a prompt once, at +10m, 14:30 or 2026-12-24 09:00"),
    CommandSpec("cron", '/cron "<min hour day month weekday>" <prompt>', "run a prompt on a cron line"),
    CommandSpec("schedules", "/schedules", "this place's scheduled prompts (delete one)"),
    CommandSpec("cancel", "/cancel", "forget a pending question", in_help=False, in_menu=False),
    CommandSpec("answer", "/answer <id> <choice>", "a button of Claude's question", in_help=False, in_menu=False),
)
BY_NAME = {spec.name: spec for spec in SPECS}

INTRO = "Send a message and Claude Code answers in the active session (a folder on this machine)."
TIPS = (
    "Files and photos sent from Telegram are saved in the session's files/ folder (for a project folder, in the "
    "bot's own state folder instead) and shown to Claude. "
    "Voice notes are transcribed and sent as text (once TRANSCRIBE_URL is set). "
    "When Claude asks before a tool, a question or a plan, answer with the buttons, or type a reply."
)
FOLDER_HINT = "A project folder is written /abs/path, ~/path or ./path (under the first of PROJECT_ROOTS)."
GREETING = "👋 Claude Code, in your pocket. Just write; Claude answers here."


def help_text(extra: tuple[CommandSpec, ...] = ()) -> str:
    """What /help shows; `extra` are a front end's own commands (the console's /quit)."""
    lines = [f"{spec.usage} — {spec.summary}" for spec in (*SPECS, *extra) if spec.in_help]
    return "\n\n".join([INTRO, "\n".join(lines), TIPS])


def menu() -> list[tuple[str, str]]:
    """(command, description) pairs for Telegram's command menu (setMyCommands)."""
    return [(spec.name, _menu_line(spec)) for spec in SPECS if spec.in_menu]


def _menu_line(spec: CommandSpec) -> str:
    summary = spec.summary[:1].upper() + spec.summary[1:]
    return summary if spec.usage == f"/{spec.name}" else f"{summary}: {spec.usage}"


def usage(name: str) -> str:
    """The usage line a command answers when its arguments are wrong."""
    return f"Usage: {BY_NAME[name].usage}"


def unknown(name: str) -> str:
    """The answer to a command nobody knows."""
    return f"Unknown command /{name}. /help lists them."
