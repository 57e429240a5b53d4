"""A chat's command menu: the bot's commands plus a session's Claude commands, in Telegram's rules, and the way back."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from claude_bridge.commands import catalog, menu
from claude_bridge.commands.menu import ClaudeCommands

pytestmark = pytest.mark.fast

# What `init` listed on CLI 2.1.332 in a folder with .claude/commands/hello-world.md (trimmed).
INIT_332 = ClaudeCommands(
    slash_commands=(
        "hello-world", "deep-research", "code-review", "doctor", "loop", "agents", "auto-mode-setup", "clear",
        "color", "compact", "context", "fast", "focus", "heapdump", "init", "mcp", "model", "__remote-workflow",
        "workflow-launch-exec", "reload-plugins", "rename", "security-review", "usage",
    ),
    skills=("deep-research", "code-review", "doctor", "loop"),
    terminal=("doctor", "color", "focus", "reload-plugins"),
)
TELEGRAM_NAME = re.compile(r"[a-z0-9_]{1,32}")


def test_the_bots_own_commands_come_first_and_claudes_follow_in_inits_order() -> None:
    built = menu.build(INIT_332)

    names = [name for name, _ in built.commands]
    own = [name for name, _ in catalog.menu()]
    assert names[: len(own)] == own
    assert names[len(own) :] == [
        "hello_world", "deep_research", "code_review", "loop", "compact", "context", "init", "mcp", "rename",
        "security_review",  # "usage" is the bot's own /usage now: ours wins
    ]
    assert dict(built.commands)["code_review"] == "Claude Code skill /code-review"
    assert dict(built.commands)["compact"] == "Claude Code command /compact"


def test_the_bots_own_command_wins_a_clash() -> None:
    built = menu.build(INIT_332)

    assert [name for name, _ in built.commands].count("model") == 1
    assert dict(built.commands)["model"] == dict(catalog.menu())["model"]
    assert built.claude_line("/model haiku") is None


def test_commands_that_cannot_work_in_a_chat_are_left_out() -> None:
    names = dict(menu.build(INIT_332).commands)

    for left_out in ("clear", "heapdump", "agents", "auto_mode_setup", "workflow_launch_exec", "fast", "color",
                     "focus", "doctor", "reload_plugins", "remote_workflow", "__remote_workflow"):
        assert left_out not in names


def test_a_typed_command_goes_back_to_claudes_name_with_its_arguments() -> None:
    built = menu.build(INIT_332)

    assert built.claude_line("/hello_world alpha beta") == "/hello-world alpha beta"
    assert built.claude_line("/Hello_World@my_bot  alpha") == "/hello-world alpha"
    assert built.claude_line("/hello-world alpha") == "/hello-world alpha"  # typed with Claude's own spelling
    assert built.claude_line("/compact") == "/compact"
    assert built.claude_line("/clear") is None
    assert built.claude_line("/nobody") is None
    assert built.claude_line("hello_world") is None


def test_names_telegram_cannot_show_are_mapped_or_skipped() -> None:
    assert menu.telegram_name("Hello-World") == "hello_world"
    assert menu.telegram_name("plugin:review.pr") == "pluginreviewpr"
    assert menu.telegram_name("x" * 32) == "x" * 32
    assert menu.telegram_name("x" * 33) is None
    assert menu.telegram_name("ü") is None


def test_the_first_of_two_names_that_map_alike_wins() -> None:
    built = menu.build(ClaudeCommands(slash_commands=("a-b", "a_b")), own=())

    assert built.commands == (("a_b", "Claude Code command /a-b"),)
    assert built.claude_line("/a_b") == "/a-b"


def test_the_menu_holds_at_most_100_commands() -> None:
    many = ClaudeCommands(slash_commands=tuple(f"cmd-{n}" for n in range(150)))

    built = menu.build(many)

    assert len(built.commands) == 100
    assert built.claude_line("/cmd_0") == "/cmd-0"
    assert built.claude_line("/cmd_149") is None


@given(st.lists(st.text(min_size=1, max_size=40), max_size=120), st.lists(st.text(max_size=40), max_size=10))
def test_every_menu_is_valid_for_telegram(slash: list[str], skills: list[str]) -> None:
    built = menu.build(ClaudeCommands(slash_commands=tuple(slash), skills=tuple(skills)))

    names = [name for name, _ in built.commands]
    assert len(names) <= 100 and len(set(names)) == len(names)
    assert all(TELEGRAM_NAME.fullmatch(name) for name in names)
    assert all(1 <= len(text) <= 256 for _, text in built.commands)
