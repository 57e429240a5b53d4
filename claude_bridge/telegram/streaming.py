"""Shows one Claude turn in a Telegram chat while it runs: live draft or edited preview, tool progress, typing,
then the final answer as its own message(s) and any error, once.

It knows Telegram calls and our rendering; it reads the manager's event stream but never the CLI's JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import logging
import random
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from telegram import Bot, InlineKeyboardMarkup, MessageEntity, ReplyParameters
from telegram.constants import ChatAction
from telegram.error import RetryAfter, TelegramError

from claude_bridge.commands.describe import tool_line
from claude_bridge.commands.wording import retry_text
from claude_bridge.protocol.events import (
    HANDED_OVER,
    ApiRetry,
    AssistantText,
    Event,
    ProcessStatus,
    TextDelta,
    ToolResult,
    ToolUse,
    TurnResult,
)
from claude_bridge.sessions.worker import Notice
from claude_bridge.telegram.outbox import OpKind, Outbox
from claude_bridge.telegram.render import (
    Chunk,
    chunk_plain_text,
    document_preview,
    needs_document,
    plain_chunks,
    progress_text,
    render_markdown,
    render_tail,
)

logger = logging.getLogger(__name__)

TYPING_EVERY = 4.0  # Telegram shows "typing…" for at most 5 s
_view_ids = itertools.count(1)


@dataclass
class ChatPrefs:
    """What we learned about a chat: whether sendMessageDraft works there."""

    drafts_ok: bool = True


@dataclass
class _Progress:
    lines: list[str] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)
    message_id: asyncio.Future[Any] | None = None


class Sender:
    """Telegram calls for one chat (and, in a forum, one topic: `thread_id`), all through the chat's Outbox."""

    def __init__(self, bot: Bot, outbox: Outbox, thread_id: int | None = None) -> None:
        self.bot = bot
        self.outbox = outbox
        self.chat_id = outbox.chat_id
        self.thread_id = thread_id  # every new message, draft and chat action goes to this topic

    def text(
        self, text: str, *, reply_to: int | None = None, markup: InlineKeyboardMarkup | None = None
    ) -> asyncio.Future[Any]:
        """A short plain message (notices, errors, command replies)."""
        chunks = plain_chunks(text) or [Chunk("…", ())]
        futures = [self.chunk(c, reply_to=reply_to if i == 0 else None, markup=markup) for i, c in enumerate(chunks)]
        return futures[-1]

    def chunk(
        self, chunk: Chunk, *, reply_to: int | None = None, markup: InlineKeyboardMarkup | None = None
    ) -> asyncio.Future[Any]:
        """One rendered part; if Telegram rejects its entities, the same part goes again as plain text."""

        def call(entities: list[MessageEntity] | None, text: str) -> Any:
            return lambda: self.bot.send_message(
                self.chat_id,
                text,
                entities=entities,
                parse_mode=None,
                reply_markup=markup,
                reply_parameters=_reply(reply_to),
                message_thread_id=self.thread_id,
            )

        plain = chunk_plain_text(chunk)
        fallback = call(None, plain.text) if chunk.entities else None
        return self.outbox.send(call(list(chunk.entities) or None, chunk.text), fallback=fallback)

    def document(self, name: str, data: bytes, caption: str = "") -> asyncio.Future[Any]:
        return self.outbox.send(
            lambda: self.bot.send_document(
                self.chat_id,
                io.BytesIO(data),
                filename=name,
                caption=caption[:1024],
                message_thread_id=self.thread_id,
            )
        )

    def answer(self, markdown: str, *, reply_to: int | None = None) -> list[asyncio.Future[Any]]:
        """Claude's Markdown as Telegram messages, or as a .md document with a preview when it is long."""
        chunks = render_markdown(markdown)
        if not chunks:
            return []
        if needs_document(markdown, chunks):
            preview = document_preview(markdown)
            return [
                self.chunk(preview, reply_to=reply_to),
                self.document("answer.md", markdown.encode("utf-8"), caption="The full answer, as Markdown."),
            ]
        return [self.chunk(chunk, reply_to=reply_to if i == 0 else None) for i, chunk in enumerate(chunks)]


@dataclass(frozen=True)
class SentMessage:
    """A message an earlier image sent: only its id is known (edits and deletes need no more)."""

    message_id: int


def _message_id(sent: asyncio.Future[Any] | None) -> int | None:
    if sent is None or not sent.done() or sent.cancelled() or sent.exception() is not None:
        return None
    message = sent.result()
    return getattr(message, "message_id", None)


def _sent(message_id: Any) -> asyncio.Future[Any] | None:
    if message_id is None:
        return None
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    future.set_result(SentMessage(int(message_id)))
    return future


def _reply(message_id: int | None) -> ReplyParameters | None:
    if message_id is None:
        return None
    return ReplyParameters(message_id=message_id, allow_sending_without_reply=True)


class TurnView:
    """Renders one turn's events into the chat."""

    def __init__(self, sender: Sender, prefs: ChatPrefs, *, reply_to: int | None = None, queued: bool = False) -> None:
        self.sender = sender
        # A queued turn shows no "Thinking…" bubble up front: in a private chat a new draft id replaces the bubble
        # on screen, which would hide the running turn's live answer. Its drafts start with its own text.
        self.queued = queued
        self.bot = sender.bot
        self.chat_id = sender.chat_id
        self.prefs = prefs
        self.reply_to = reply_to
        self.use_drafts = prefs.drafts_ok and self.chat_id > 0
        # Frame keys are this view's own: a queued turn's view in the same chat must not replace ours.
        self.view_id = next(_view_ids)
        self.draft_id = random.randint(1, 2**31 - 1)
        self.parts: list[str] = []
        self.streaming = ""  # the text block still arriving as deltas
        self.progress = _Progress()
        self.preview_id: asyncio.Future[Any] | None = None
        self.result: TurnResult | None = None
        self.handed_over = asyncio.Event()  # the bot reloads: this view stops here; the next image goes on with it
        self.resumed = False  # it goes on from a previous image: its messages are already on screen

    @property
    def answer_text(self) -> str:
        parts = [*self.parts, self.streaming] if self.streaming else self.parts
        return "\n\n".join(part.strip("\n") for part in parts).strip()

    async def run(
        self, events: AsyncIterator[Event | Notice], running: Callable[[], bool] | None = None
    ) -> TurnResult | None:
        """Consume the stream to its TurnResult; Telegram failures are logged, never stop the stream. `running`:
        whether Claude works on it now, so a waiting message (queued, held for the usage limit) shows no "typing…"."""
        typing = asyncio.create_task(self._keep_typing(running))
        try:
            if self.use_drafts and not self.queued and not self.resumed:
                self._draft()  # an empty draft shows Telegram's "Thinking…" bubble at once
            async for event in events:
                if isinstance(event, ProcessStatus) and event.kind == HANDED_OVER:
                    self.handed_over.set()
                    return None  # no end here: the next image finishes the turn in the same messages
                self._on_event(event)
            await self._finish()
        finally:
            typing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await typing
        return self.result

    # -- a reload --

    def snapshot(self) -> dict[str, Any]:
        """What the next image needs to go on showing this turn (after the outbox sent everything queued)."""
        return {
            "draft_id": self.draft_id,
            "use_drafts": self.use_drafts,
            "reply_to": self.reply_to,
            "parts": list(self.parts),
            "streaming": self.streaming,
            "preview_id": _message_id(self.preview_id),
            "progress_id": _message_id(self.progress.message_id),
            "progress_lines": list(self.progress.lines),
            "progress_index": dict(self.progress.index),
        }

    @classmethod
    def resume(cls, sender: Sender, prefs: ChatPrefs, snapshot: Mapping[str, Any]) -> TurnView:
        """The view a previous image handed over: the same draft, preview and progress messages, its text so far."""
        view = cls(sender, prefs, reply_to=snapshot["reply_to"])
        view.resumed = True
        view.draft_id = int(snapshot["draft_id"])
        view.use_drafts = bool(snapshot["use_drafts"])
        view.parts = [str(part) for part in snapshot["parts"]]
        view.streaming = str(snapshot["streaming"])
        view.preview_id = _sent(snapshot["preview_id"])
        view.progress = _Progress(
            [str(line) for line in snapshot["progress_lines"]],
            {str(k): int(v) for k, v in snapshot["progress_index"].items()},
            _sent(snapshot["progress_id"]),
        )
        return view

    def _on_event(self, event: Event | Notice) -> None:
        match event:
            case Notice(text=text):
                self.sender.text(f"ℹ️ {text}")
            case ProcessStatus(kind=kind, message=message) if kind != "crashed":  # the turn's error says it crashed
                self.sender.text(f"⚙️ {message}")
            case TextDelta(text=text):
                self.streaming += text
                self._live_frame()
            case AssistantText(text=text):
                self.parts.append(text)
                self.streaming = ""
                self._live_frame()
            case ToolUse(id=key, name=name, input=tool_input):
                self._progress_line(key, tool_line(name, dict(tool_input)))
            case ToolResult(is_error=True, tool_use_id=key) if key in self.progress.index:
                i = self.progress.index[key]
                self.progress.lines[i] = self.progress.lines[i] + "  ✗"
                self._progress_frame()
            case ApiRetry(attempt=attempt):
                self._progress_line(f"retry-{attempt}", f"⏳ {retry_text(event)}")
            case TurnResult():
                self.result = event

    def _key(self, name: str) -> str:
        return f"{self.view_id}:{name}"

    # -- live answer --

    def _draft(self) -> None:
        async def call() -> Any:
            tail = render_tail(self.answer_text)
            try:
                return await self.bot.send_message_draft(
                    self.chat_id,
                    self.draft_id,
                    text=tail.text,
                    message_thread_id=self.sender.thread_id,
                    entities=list(tail.entities) or None,
                    parse_mode=None,
                    api_kwargs={"can_stop": True},
                )
            except TelegramError as exc:
                if isinstance(exc, RetryAfter):
                    raise
                logger.info("chat %s: drafts unavailable (%s); editing a message instead", self.chat_id, exc)
                self.prefs.drafts_ok = False
                self.use_drafts = False
                self._live_frame()
                return None

        self.sender.outbox.frame(self._key("draft"), call, kind=OpKind.DRAFT)

    def _live_frame(self) -> None:
        if self.use_drafts:
            self._draft()
            return
        if self.preview_id is None:
            tail = render_tail(self.answer_text)
            if tail.text:  # Telegram rejects empty messages
                self.preview_id = self.sender.chunk(tail)
            return
        preview = self.preview_id

        async def edit() -> Any:
            message = await preview
            tail = render_tail(self.answer_text)
            return await self.bot.edit_message_text(
                tail.text, self.chat_id, message.message_id, entities=list(tail.entities) or None, parse_mode=None
            )

        self.sender.outbox.frame(self._key("preview"), edit, kind=OpKind.EDIT)

    # -- tool progress --

    def _progress_line(self, key: str, line: str) -> None:
        self.progress.index[key] = len(self.progress.lines)
        self.progress.lines.append(line)
        if self.progress.message_id is None:
            self.progress.message_id = self.sender.outbox.send(
                lambda: self.bot.send_message(
                    self.chat_id,
                    progress_text(self.progress.lines),
                    parse_mode=None,
                    message_thread_id=self.sender.thread_id,
                )
            )
        else:
            self._progress_frame()

    def _progress_frame(self) -> None:
        sent = self.progress.message_id
        if sent is None:
            return

        async def edit() -> Any:
            message = await sent
            return await self.bot.edit_message_text(
                progress_text(self.progress.lines), self.chat_id, message.message_id, parse_mode=None
            )

        self.sender.outbox.frame(self._key("progress"), edit, kind=OpKind.EDIT)

    async def _keep_typing(self, running: Callable[[], bool] | None) -> None:
        def typing() -> Any:
            return self.bot.send_chat_action(self.chat_id, ChatAction.TYPING, message_thread_id=self.sender.thread_id)

        first = not self.queued  # a message that goes at once says so at once, before its turn is under way
        while True:
            if first or running is None or running():
                self.sender.outbox.frame(self._key("typing"), typing, kind=OpKind.ACTION)
            first = False
            await asyncio.sleep(TYPING_EVERY)

    # -- the end --

    async def _finish(self) -> None:
        outbox = self.sender.outbox
        for name in ("draft", "preview", "typing"):
            outbox.discard_frame(self._key(name))  # only this view's frames: the final answer supersedes them
        result = self.result
        text = self.answer_text
        futures: list[asyncio.Future[Any]] = []
        if result is None:
            futures.append(self.sender.text("⚠️ The answer stream ended without a result."))
        elif result.is_error:
            if text and text != result.text.strip():
                futures += self.sender.answer(text, reply_to=self.reply_to)
            icon = "⏹" if result.stopped and result.subtype != "watchdog" else "⚠️"
            futures.append(self.sender.text(f"{icon} {result.error_text}", reply_to=self.reply_to))
        else:
            futures += self.sender.answer(text or result.text, reply_to=self.reply_to)
            if not futures:
                futures.append(self.sender.text("✓ Done (no text in the answer).", reply_to=self.reply_to))
        if self.progress.lines:
            self._progress_frame()
        if self.preview_id is not None:
            preview = self.preview_id

            async def delete() -> Any:
                with contextlib.suppress(TelegramError):
                    message = await preview
                    return await self.bot.delete_message(self.chat_id, message.message_id)
                return None

            futures.append(outbox.send(delete))
        # A part that could not be delivered was logged by the outbox; the view just waits for all of them.
        await asyncio.gather(*futures, return_exceptions=True)
