"""What PTB 22 confirms to Telegram when it stops polling, measured over the fake Bot API (issue 24, reload).

Facts a reload relies on: Updater.stop() confirms every update it fetched (one last getUpdates with the next
offset), so whatever was fetched must be handled or saved before the exec; an update that arrives after it stays
unconfirmed and the next image fetches it; Application.stop() waits for every block=False handler to end.
"""

from __future__ import annotations

import asyncio
from typing import Any

from telegram import Update
from telegram.ext import Application, ApplicationBuilder, ContextTypes, MessageHandler, filters

CHAT = 111


class Handled:
    """Texts the handler saw, awaitable by count."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.changed = asyncio.Condition()

    async def add(self, text: str) -> None:
        async with self.changed:
            self.texts.append(text)
            self.changed.notify_all()

    async def wait(self, count: int) -> None:
        async with asyncio.timeout(30), self.changed:
            await self.changed.wait_for(lambda: len(self.texts) >= count)


def application(tg: Any, seen: Handled, release: asyncio.Event) -> Application[Any, Any, Any, Any, Any, Any]:
    async def on_text(update: Update, _: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None and update.message.text is not None
        await seen.add(update.message.text)
        if update.message.text == "slow":
            await release.wait()  # a handler still waiting on Claude's turn

    app = ApplicationBuilder().token("123:fake").base_url(f"{tg.url}/bot").concurrent_updates(True).build()
    app.add_handler(MessageHandler(filters.TEXT, on_text, block=False))
    return app


async def polling(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    await app.initialize()
    await app.start()
    assert app.updater is not None
    await app.updater.start_polling()


async def test_stopping_the_updater_confirms_what_it_fetched_and_leaves_later_updates_for_the_next_image(tg):
    seen, release = Handled(), asyncio.Event()
    old = application(tg, seen, release)
    await polling(old)
    tg.push_text(CHAT, "slow")
    tg.push_text(CHAT, "two")
    await seen.wait(2)

    assert old.updater is not None
    await old.updater.stop()
    tg.push_text(CHAT, "after the stop")
    cleanup = tg.calls_to("getUpdates")[-1].params
    stop = asyncio.create_task(old.stop())
    done, _ = await asyncio.wait({stop}, timeout=1.0)
    release.set()
    await stop
    await old.shutdown()

    assert int(cleanup["timeout"]) == 0 and int(cleanup["offset"]) > 0  # the confirming last call
    assert not done, "Application.stop() returned while a block=False handler still ran"
    new_seen = Handled()
    new = application(tg, new_seen, asyncio.Event())
    await polling(new)
    await new_seen.wait(1)
    assert new.updater is not None
    await new.updater.stop()
    await new.stop()
    await new.shutdown()
    assert new_seen.texts == ["after the stop"]  # nothing fetched before the stop comes again
