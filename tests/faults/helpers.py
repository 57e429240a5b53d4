"""What the fault cases share: send and wait, and which prompts never got their answer."""

from __future__ import annotations

from bot_harness import OWNER, RunningBot


async def say(bot: RunningBot, text: str, expect: str, timeout: float = 60) -> str:
    """The owner sends `text`; returns the first bot message after it that contains `expect` ("echo: X": an echo
    that contains X, since after an error the CLI sends the failed prompt again with the next one)."""
    since = len(bot.tg.calls)
    bot.tg.push_text(OWNER, text, user_id=OWNER)

    def matches(params: dict[str, object]) -> bool:
        sent = str(params.get("text", ""))
        if params["chat_id"] != OWNER:
            return False
        if expect.startswith("echo: "):
            return sent.startswith("echo:") and expect.removeprefix("echo: ") in sent
        return expect in sent

    call = await bot.tg.wait_for("sendMessage", matches, since=since, timeout=timeout)
    while not call.ok:  # a rejected attempt (a 429): wait for the one Telegram accepted
        call = await bot.tg.wait_for("sendMessage", matches, since=bot.tg.calls.index(call) + 1, timeout=timeout)
    return str(call.params["text"])


def unanswered(texts: list[str], prompts: list[str]) -> list[str]:
    """Prompts whose echo never reached the chat (one echo may answer several merged prompts; no prompt may be
    a prefix of another)."""
    echoes = [t for t in texts if t.startswith("echo:")]
    return [f"'{p}' unanswered" for p in prompts if not any(p in t for t in echoes)]
