"""A fake Telegram Bot API server on loopback, so the real PTB Application can be driven offline over HTTP.

It knows the Bot API's HTTP face and the text rules Telegram enforces (length, parse modes, "not modified",
flood 429s); it is scripted (push_*, fail_next) and recording (calls, messages, drafts). It knows nothing of our bot.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import json
import math
import re
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import BodyPartReader, web

MAX_TEXT = 4096  # "1-4096 characters after entities parsing"; we count UTF-16 units, stricter than the server
MAX_CAPTION = 1024
UPLOAD_LIMIT = 50 * 1024 * 1024 + 64 * 1024  # a bot may upload files up to 50 MB (plus the form around them)
MAX_RAW_TEXT_BYTES = 1 << 15  # telegram-bot-api rejects larger `text` before parsing
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are exactly "
    "the same as a current content and reply markup of the message"
)
# What Telegram's flood limits count: messages that land in a chat and edits of them ("edits count toward flood
# limits"). Drafts (no documented limit), chat actions, deletions and callback answers are not messages.
COUNTED_METHODS = frozenset(
    {"sendMessage", "sendDocument", "sendPhoto", "editMessageText", "editMessageReplyMarkup"}
)
# Form values are raw strings for these; every other value is JSON (PTB json.dumps non-str values).
STRING_PARAMS = frozenset(
    {"text", "caption", "parse_mode", "action", "callback_query_id", "file_id", "url", "emoji", "data",
     "inline_message_id", "business_connection_id", "language_code", "description", "title", "name", "query"}
)
# Delivered when a bot never passed allowed_updates (Bot API: all types except these three).
NOT_DEFAULT_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
CHAT_ACTIONS = frozenset(
    {"typing", "upload_photo", "record_video", "upload_video", "record_voice", "upload_voice", "upload_document",
     "choose_sticker", "find_location", "record_video_note", "upload_video_note"}
)
HTML_ENTITY_TYPES = {
    "b": "bold", "strong": "bold", "i": "italic", "em": "italic", "u": "underline", "ins": "underline",
    "s": "strikethrough", "strike": "strikethrough", "del": "strikethrough", "tg-spoiler": "spoiler",
    "span": "spoiler", "a": "text_link", "code": "code", "pre": "pre", "blockquote": "blockquote",
    "tg-emoji": "custom_emoji", "tg-time": "date_time",
}
NAMED_CHARREFS = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}  # the only named entities Telegram knows
TOKEN_RE = re.compile(r"\d+:.+")


@dataclass(frozen=True)
class TelegramLimits:
    """Telegram's documented flood limits (Bot FAQ "My bot is hitting limits"), as the fake enforces them.

    Per chat about one message a second, short bursts tolerated (a token bucket: `chat_burst` at once, then
    `chat_per_second`; the burst size is not documented); in a group at most `group_per_minute` in any 60 s; at most
    `overall_per_second` in any 1 s over all chats. Each counted call must pass all three; a 429 says how long to wait.
    """

    chat_burst: int = 3
    chat_per_second: float = 1.0
    group_per_minute: int = 20
    overall_per_second: int = 30


class ApiError(Exception):
    """An error answer: HTTP status == error_code, as the real server does (PTB maps the status to its exception)."""

    def __init__(self, code: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.code, self.description, self.retry_after = code, description, retry_after

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": False, "error_code": self.code, "description": self.description}
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


def bad_request(reason: str) -> ApiError:
    return ApiError(400, f"Bad Request: {reason}")


@dataclass(frozen=True)
class UploadedFile:
    """A file part of a multipart request, as it appears in a recorded call's params."""

    filename: str
    content: bytes
    mime_type: str


@dataclass
class Call:
    """One recorded request: canonical method name, decoded params, arrival time, and how it was answered."""

    method: str
    params: dict[str, Any]
    time: float
    status: int = 200
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200


@dataclass
class StoredFile:
    """Bytes the fake serves through getFile + GET /file/bot<token>/<file_path>."""

    file_id: str
    file_unique_id: str
    file_path: str
    content: bytes
    file_name: str | None = None
    mime_type: str | None = None
    report_size: bool = True  # Telegram may omit file_size

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"file_id": self.file_id, "file_unique_id": self.file_unique_id}
        out |= {"file_size": len(self.content)} if self.report_size else {}
        return out | {k: v for k, v in (("file_name", self.file_name), ("mime_type", self.mime_type)) if v}


@dataclass
class BotMessage:
    """What the user sees of one bot message, after edits and deletion."""

    message_id: int
    chat_id: int
    text: str | None
    entities: list[dict[str, Any]]
    reply_markup: dict[str, Any] | None = None
    deleted: bool = False
    edited: bool = False
    caption: str | None = None  # media messages: `entities` are then the caption entities
    document: StoredFile | None = None
    photo: StoredFile | None = None
    thread_id: int | None = None  # the forum topic it was sent to (message_thread_id)


@dataclass(frozen=True)
class Draft:
    """One accepted sendMessageDraft frame (text already parsed), with all params including Bot API 10.3 extras."""

    chat_id: int
    draft_id: int
    text: str
    entities: list[dict[str, Any]]
    params: dict[str, Any] = field(repr=False)


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the unit of Telegram's entity offsets and (here) of the length limit."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _has_lone_surrogate(value: object) -> bool:
    if isinstance(value, str):
        return any("\ud800" <= ch <= "\udfff" for ch in value)
    if isinstance(value, dict):
        return any(_has_lone_surrogate(v) for v in value.values())
    return isinstance(value, list) and any(_has_lone_surrogate(v) for v in value)


def _decode_value(key: str, raw: str) -> Any:
    if key in STRING_PARAMS:
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def parse_html(source: str) -> tuple[str, list[dict[str, Any]]]:
    """Telegram's HTML subset → (plain text, entities), with the server's errors for anything outside it."""
    out: list[str] = []
    entities: list[dict[str, Any]] = []
    stack: list[tuple[str, int, dict[str, Any]]] = []  # (tag, utf16 start, entity extras)
    pos = 0

    def fail(reason: str) -> ApiError:
        return bad_request(f"can't parse entities: {reason}")

    def byte_offset(index: int) -> int:
        return len(source[:index].encode("utf-8", "surrogatepass"))

    i = 0
    while i < len(source):
        ch = source[i]
        if ch == "&":
            ref = re.match(r"&(#\d+|#x[0-9a-fA-F]+|[a-zA-Z]+);", source[i:])
            decoded = None
            if ref and ref[1].startswith("#"):
                decoded = chr(int(ref[1][2:], 16) if ref[1][1] in "xX" else int(ref[1][1:]))
            elif ref:
                decoded = NAMED_CHARREFS.get(ref[1])
            if ref and decoded is not None:
                out.append(decoded)
                pos += utf16_len(decoded)
                i += len(ref[0])
                continue
        if ch != "<":
            out.append(ch)
            pos += utf16_len(ch)
            i += 1
            continue
        end = source.find(">", i)
        closing = source.startswith("</", i)
        if end < 0:
            raise fail(f"Unclosed {'end' if closing else 'start'} tag at byte offset {byte_offset(i)}")
        if closing:
            name = source[i + 2 : end].strip().lower()
            if not stack:
                raise fail(f"Unexpected end tag at byte offset {byte_offset(i)}")
            tag, start, extras = stack.pop()
            if name != tag:
                raise fail(f'Unmatched end tag at byte offset {byte_offset(i)}, expected "</{tag}>", found "</{name}>"')
            if pos > start and extras.get("type"):
                entities.append({"offset": start, "length": pos - start, **extras})
        else:
            tag_match = re.match(r"<([^\s>]*)(.*)", source[i:end], re.S)
            assert tag_match is not None
            tag, attrs_src = tag_match[1].lower(), tag_match[2]
            if tag not in HTML_ENTITY_TYPES:
                raise fail(f'Unsupported start tag "{tag}" at byte offset {byte_offset(i)}')
            attrs = {k.lower(): dq or sq or bare for k, dq, sq, bare in re.findall(
                r"""([\w-]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"']+)))?""", attrs_src)}
            stack.append((tag, pos, _html_entity(tag, attrs, stack, fail)))
        i = end + 1
    if stack:
        raise fail(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities


def _html_entity(
    tag: str, attrs: dict[str, str], stack: list[tuple[str, int, dict[str, Any]]], fail: Callable[[str], ApiError]
) -> dict[str, Any]:
    kind = HTML_ENTITY_TYPES[tag]
    if tag == "span" and attrs.get("class") != "tg-spoiler":
        raise fail('Tag "span" must have class "tg-spoiler"')
    if tag == "a":
        return {"type": kind, "url": attrs["href"]} if attrs.get("href") else {}
    if tag == "code" and stack and stack[-1][0] == "pre":
        if attrs.get("class", "").startswith("language-"):  # <pre><code class="language-x">: one pre entity
            stack[-1][2]["language"] = attrs["class"].removeprefix("language-")
        return {}
    if tag == "blockquote" and "expandable" in attrs:
        return {"type": "expandable_blockquote"}
    if tag == "tg-emoji":
        return {"type": kind, "custom_emoji_id": attrs.get("emoji-id", "")}
    return {"type": kind}


MD_MARKERS = {"*": "bold", "_": "italic", "__": "underline", "~": "strikethrough", "||": "spoiler"}


def parse_markdown(source: str, v2: bool) -> tuple[str, list[dict[str, Any]]]:
    """A light Markdown/MarkdownV2 parser: escapes, code, links, marker balance and V2's reserved characters."""
    out: list[str] = []
    entities: list[dict[str, Any]] = []
    open_at: dict[str, int] = {}
    link_start: int | None = None
    pos, i = 0, 0

    def emit(text: str) -> None:
        nonlocal pos
        out.append(text)
        pos += utf16_len(text)

    while i < len(source):
        ch, two = source[i], source[i : i + 2]
        if ch == "\\" and i + 1 < len(source):
            emit(source[i + 1])
            i += 2
        elif ch == "`":
            fence = "```" if source.startswith("```", i) else "`"
            end = source.find(fence, i + len(fence))
            if end < 0:
                raise bad_request("can't parse entities: Can't find end of code entity")
            body, start = source[i + len(fence) : end], pos
            if fence == "```":
                body = body.split("\n", 1)[1] if "\n" in body else body
            emit(body.replace("\\`", "`").replace("\\\\", "\\"))
            entities.append({"type": "pre" if fence == "```" else "code", "offset": start, "length": pos - start})
            i = end + len(fence)
        elif (marker := two if v2 and two in ("__", "||") else ch) in MD_MARKERS and (v2 or ch in "*_"):
            if marker in open_at:
                start = open_at.pop(marker)
                entities.append({"type": MD_MARKERS[marker], "offset": start, "length": pos - start})
            else:
                open_at[marker] = pos
            i += len(marker)
        elif ch == "[":
            link_start, i = pos, i + 1
        elif ch == "]" and link_start is not None and source.startswith("(", i + 1):
            close = source.find(")", i)
            entities.append({"type": "text_link", "offset": link_start, "length": pos - link_start,
                             "url": source[i + 2 : close]})
            link_start, i = None, close + 1
        elif v2 and ch == ">" and (i == 0 or source[i - 1] == "\n"):
            i += 1  # a blockquote line; the light parser keeps no entity for it
        elif v2 and ch in "_*[]()~`>#+-=|{}.!":
            raise bad_request(
                f"can't parse entities: Character '{ch}' is reserved and must be escaped with the preceding '\\'"
            )
        else:
            emit(ch)
            i += 1
    if open_at:
        marker = next(iter(open_at))
        raise bad_request(f"can't parse entities: Can't find end of {MD_MARKERS[marker]} entity")
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities


def formatted_text(
    raw: object, parse_mode: object, entities: object, *, limit: int = MAX_TEXT,
    empty_error: str | None = "message text is empty", long_error: str = "message is too long",
) -> tuple[str, list[dict[str, Any]]]:
    """Text as the user will see it: parse_mode wins over entities (the server ignores them), then the limits."""
    text = "" if raw is None else str(raw)
    if len(text.encode("utf-8", "surrogatepass")) > MAX_RAW_TEXT_BYTES:
        raise bad_request("text is too long")
    mode = str(parse_mode or "").lower()
    if text and mode and mode != "none":
        if mode not in ("html", "markdown", "markdownv2"):
            raise bad_request("unsupported parse_mode")
        text, parsed = parse_html(text) if mode == "html" else parse_markdown(text, v2=mode == "markdownv2")
    else:
        parsed = list(entities) if isinstance(entities, list) else []
        size = utf16_len(text)
        for entity in parsed:
            offset, length = (entity.get("offset"), entity.get("length")) if isinstance(entity, dict) else (0, 0)
            if not (isinstance(offset, int) and isinstance(length, int) and offset >= 0 and length > 0
                    and offset + length <= size):
                raise bad_request(f"can't parse entities: entity {entity} is outside of the text")
    if empty_error and not text.strip():
        raise bad_request(empty_error)
    if utf16_len(text) > limit:
        raise bad_request(long_error)
    return text, parsed


class FakeBotAPI:
    """An aiohttp Bot API server on 127.0.0.1: point PTB at `{url}/bot` and `{url}/file/bot`."""

    def __init__(
        self, *, bot_id: int = 123456, username: str = "fake_bot", first_name: str = "Fake Bot",
        file_size_limit: int = 20 * 1024 * 1024, clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bot_id, self.username, self.first_name = bot_id, username, first_name
        self.file_size_limit = file_size_limit
        self.calls: list[Call] = []
        self.commands: list[dict[str, Any]] = []
        self.chat_commands: dict[int, list[dict[str, Any]]] = {}  # setMyCommands with BotCommandScopeChat
        self.flood_rejections = 0
        self.handed_out: dict[tuple[int, int], float] = {}  # (chat id, message id) -> when getUpdates handed it out
        self._clock = clock
        self._url: str | None = None
        self._runner: web.AppRunner | None = None
        self._closing = False
        self._changed = asyncio.Event()
        self._pollers = 0
        self._updates: list[dict[str, Any]] = []
        self._allowed_updates: frozenset[str] | None = None
        self._update_ids = itertools.count(1)
        self._ids = itertools.count(1)  # file ids, callback query ids
        self._message_ids: defaultdict[int, itertools.count[int]] = defaultdict(lambda: itertools.count(1))
        self._chats: dict[int, dict[str, Any]] = {}
        self._messages: defaultdict[int, list[BotMessage]] = defaultdict(list)
        self._drafts: defaultdict[int, list[Draft]] = defaultdict(list)
        self._files: dict[str, StoredFile] = {}
        self._open_queries: set[str] = set()
        self.topics: dict[tuple[int, int], str] = {}  # (chat id, message_thread_id) -> topic name
        self.topics_enabled = False  # getMe's has_topics_enabled: private chats with topics (Bot API 9.4)
        self._injected: defaultdict[str, deque[ApiError]] = defaultdict(deque)
        self._limits: TelegramLimits | None = None
        self.flood_by_rule: Counter[str] = Counter()  # 429s by the limit that drew them: chat, group, overall
        self._buckets: dict[object, tuple[float, float]] = {}  # chat_id -> (tokens, when)
        self._counted: deque[tuple[float, object]] = deque()  # (when, chat_id) of counted calls in the last 60 s
        self._down_until = 0.0  # until then every method answers 502 Bad Gateway (see down())
        self._held: dict[str, asyncio.Event] = {}  # method -> answered only once this is set (see hold())
        self._methods: dict[str, Callable[[dict[str, Any]], Any]] = {
            "getMe": lambda p: self._bot_user(), "deleteWebhook": self._delete_webhook,
            "getUpdates": self._get_updates, "setMyCommands": self._set_my_commands,
            "getMyCommands": self._get_my_commands, "sendMessage": self._send_message,
            "editMessageText": self._edit_message_text, "sendMessageDraft": self._send_message_draft,
            "sendChatAction": self._send_chat_action, "getFile": self._get_file,
            "sendDocument": lambda p: self._send_media(p, "document"),
            "sendPhoto": lambda p: self._send_media(p, "photo"), "answerCallbackQuery": self._answer_callback_query,
            "editMessageReplyMarkup": self._edit_message_reply_markup, "deleteMessage": self._delete_message,
            "createForumTopic": self._create_forum_topic, "deleteForumTopic": self._delete_forum_topic,
        }

    async def start(self) -> None:
        """Listen on an ephemeral loopback port."""
        app = web.Application(client_max_size=UPLOAD_LIMIT)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_method)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_download)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self._url, self._closing = f"http://127.0.0.1:{port}", False

    async def stop(self) -> None:
        """Answer pending long polls with [] and shut down; idempotent."""
        self._closing = True
        self._notify()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> FakeBotAPI:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        """http://127.0.0.1:<port> once started."""
        if self._url is None:
            raise RuntimeError("FakeBotAPI is not started")
        return self._url

    @property
    def token(self) -> str:
        """A token the fake accepts (any `<digits>:<anything>` is accepted)."""
        return f"{self.bot_id}:FAKE-TOKEN"

    def fail_next(
        self, method: str, code: int, description: str | None = None, *, retry_after: int | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next `times` calls of `method` with this error (a 429 always carries retry_after)."""
        if code == 429:
            retry_after = retry_after or 1
            description = description or f"Too Many Requests: retry after {retry_after}"
        error = ApiError(code, description or f"Error {code}", retry_after)
        self._injected[method.lower()].extend([error] * times)

    def enforce_telegram_limits(self, limits: TelegramLimits | None = TelegramLimits()) -> None:
        """429 what Telegram would (see TelegramLimits); None switches the limits off."""
        self._limits = limits

    def hold(self, method: str, until: asyncio.Event) -> None:
        """Answer calls of `method` only once `until` is set: Telegram slow on that call (recorded when answered)."""
        self._held[method.lower()] = until

    def down(self, seconds: float) -> None:
        """The Bot API is unreachable for `seconds` from now: every method answers 502 Bad Gateway (recorded)."""
        self._down_until = self._clock() + seconds

    def push_update(self, update: dict[str, Any]) -> int:
        """Queue a raw update for getUpdates (update_id assigned unless given); returns its update_id."""
        update = {"update_id": next(self._update_ids), **update}
        self._updates.append(update)
        self._notify()
        return int(update["update_id"])

    def make_forum(self, chat_id: int, title: str = "Team forum") -> None:
        """Make `chat_id` a forum supergroup (is_forum); its General topic is the chat without a thread id."""
        self._chats[chat_id] = self._chat_json(chat_id, "supergroup") | {"title": title, "is_forum": True}

    def open_topic(self, chat_id: int, name: str) -> int:
        """A user opens a topic in a forum (or a private chat with topics); returns its message_thread_id."""
        thread_id = next(self._message_ids[chat_id])  # a topic's id is its opening service message's id
        self.topics[(chat_id, thread_id)] = name
        return thread_id

    def push_text(
        self, chat_id: int, text: str, user_id: int | None = None, chat_type: str | None = None, *,
        username: str = "alice", entities: list[dict[str, Any]] | None = None, thread_id: int | None = None,
    ) -> int:
        """A user sends `text` (a leading /command gets its bot_command entity), in topic `thread_id` if given;
        returns the message_id."""
        message = self._user_message(chat_id, user_id, chat_type, username) | self._in_topic(chat_id, thread_id)
        all_entities = list(entities or [])
        if text.startswith("/"):
            all_entities.insert(0, {"type": "bot_command", "offset": 0, "length": utf16_len(text.split()[0])})
        message |= {"text": text} | ({"entities": all_entities} if all_entities else {})
        self.push_update({"message": message})
        return int(message["message_id"])

    def push_edited_text(
        self, chat_id: int, message_id: int, text: str, user_id: int | None = None, chat_type: str | None = None,
        *, username: str = "alice",
    ) -> int:
        """A user edits their earlier message `message_id` to `text`; returns the message_id."""
        message = self._user_message(chat_id, user_id, chat_type, username)
        message |= {"message_id": message_id, "text": text, "edit_date": int(time.time())}
        self.push_update({"edited_message": message})
        return message_id

    def push_callback(self, chat_id: int, user_id: int, data: str, message_id: int, *, username: str = "alice") -> str:
        """A user presses an inline button on bot message `message_id`; returns the callback query id."""
        query_id = str(next(self._ids))
        bot_message = self._find_message(chat_id, message_id)
        message = self._message_json(bot_message) if bot_message else {
            "message_id": message_id, "date": 0, "chat": self._chat(chat_id)}  # date 0: inaccessible message
        self._open_queries.add(query_id)
        self.push_update({"callback_query": {
            "id": query_id, "from": self._user(user_id, username), "chat_instance": str(chat_id),
            "message": message, "data": data}})
        return query_id

    def push_document(
        self, chat_id: int, user_id: int, file_name: str, content: bytes, caption: str | None = None, *,
        mime_type: str = "application/octet-stream", username: str = "alice", report_size: bool = True,
    ) -> int:
        """A user sends a file; its bytes are served by getFile + download. Returns the message_id."""
        stored = self._store("documents", content, file_name, mime_type)
        stored.report_size = report_size
        message = self._user_message(chat_id, user_id, None, username) | {"document": stored.as_json()}
        self.push_update({"message": message | ({"caption": caption} if caption else {})})
        return int(message["message_id"])

    def push_photo(
        self, chat_id: int, user_id: int, content: bytes, caption: str | None = None, *,
        width: int = 1280, height: int = 960, username: str = "alice",
    ) -> int:
        """A user sends a photo: a thumbnail (a prefix of the bytes) then the full size, like Telegram's list."""
        sizes = [(self._store("photos", content[: max(1, len(content) // 10)]), 90, 90 * height // width),
                 (self._store("photos", content), width, height)]
        photo = [f.as_json() | {"width": w, "height": h} for f, w, h in sizes]
        message = self._user_message(chat_id, user_id, None, username) | {"photo": photo}
        self.push_update({"message": message | ({"caption": caption} if caption else {})})
        return int(message["message_id"])

    def push_voice(
        self, chat_id: int, user_id: int, content: bytes, *, duration: int = 3, username: str = "alice",
    ) -> int:
        """A user records a voice note (OGG/Opus, served as voice/file_N.oga like Telegram). Returns the message_id."""
        stored = self._store("voice", content, None, "audio/ogg")
        voice = stored.as_json() | {"duration": duration}
        message = self._user_message(chat_id, user_id, None, username) | {"voice": voice}
        self.push_update({"message": message})
        return int(message["message_id"])

    def push_audio(
        self, chat_id: int, user_id: int, file_name: str, content: bytes, caption: str | None = None, *,
        mime_type: str = "audio/mpeg", duration: int = 60, username: str = "alice",
    ) -> int:
        """A user sends an audio file (shown as music by Telegram). Returns the message_id."""
        stored = self._store("music", content, file_name, mime_type)
        audio = stored.as_json() | {"duration": duration}
        message = self._user_message(chat_id, user_id, None, username) | {"audio": audio}
        self.push_update({"message": message | ({"caption": caption} if caption else {})})
        return int(message["message_id"])

    def calls_to(self, method: str) -> list[Call]:
        """Every recorded call of `method`, answered or rejected, in order."""
        return [c for c in self.calls if c.method == method]

    def messages(self, chat_id: int) -> list[BotMessage]:
        """The bot's messages in a chat as the user sees them now (deleted ones flagged, not removed)."""
        return list(self._messages[chat_id])

    def drafts(self, chat_id: int) -> list[Draft]:
        """Every accepted draft frame in a chat, in order."""
        return list(self._drafts[chat_id])

    def file_content(self, file_id: str) -> bytes:
        """The bytes behind a file_id (user-sent or bot-uploaded)."""
        return self._files[file_id].content

    async def wait_for(
        self, method: str, predicate: Callable[[dict[str, Any]], bool] | None = None, *, timeout: float = 10.0,
        since: int = 0,
    ) -> Call:
        """The first call of `method` at index >= `since` whose params satisfy `predicate`, waiting if needed."""
        deadline = asyncio.get_running_loop().time() + timeout
        index = since
        while True:
            for call in self.calls[index:]:
                if call.method == method and (predicate is None or predicate(call.params)):
                    return call
            index = len(self.calls)
            if not await self._wait_change(deadline):
                seen = [c.method for c in self.calls[since:]]
                raise TimeoutError(f"no matching {method} call within {timeout}s; calls since {since}: {seen}")

    async def wait_polling(self, timeout: float = 10.0) -> None:
        """Return once a getUpdates long poll is parked on the server."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self._pollers == 0:
            if not await self._wait_change(deadline):
                raise TimeoutError("nobody is long-polling getUpdates")

    async def _handle_method(self, request: web.Request) -> web.Response:
        if not TOKEN_RE.fullmatch(request.match_info["token"]):
            return web.json_response(ApiError(401, "Unauthorized").body(), status=401)
        name = request.match_info["method"]
        method = next((m for m in self._methods if m.lower() == name.lower()), name)  # names are case-insensitive
        arrived, params = self._clock(), {}
        if arrived < self._down_until:
            self.calls.append(Call(method, {}, arrived, 502, "Bad Gateway"))
            self._notify()
            return web.Response(status=502, text="<html><body><h1>502 Bad Gateway</h1></body></html>")
        try:
            params = await self._read_params(request)
            if _has_lone_surrogate(params):
                raise bad_request("strings must be encoded in UTF-8")
            if method not in self._methods:
                raise bad_request("method not found")  # real server: 404, which PTB reports as InvalidToken
            if (held := self._held.get(method.lower())) is not None:
                await held.wait()
            if self._injected[method.lower()]:
                raise self._injected[method.lower()].popleft()
            tokens = self._check_limits(method, params, arrived)
            result = self._methods[method](params)
            if inspect.isawaitable(result):
                result = await result
            if tokens is not None:  # only what Telegram accepted counts
                self._buckets[params.get("chat_id")] = (tokens - 1.0, arrived)
                self._counted.append((arrived, params.get("chat_id")))
            call, response = Call(method, params, arrived), {"ok": True, "result": result}
        except (ValueError, TypeError, KeyError) as exc:  # malformed parameters, as Telegram answers them
            error = bad_request(f"invalid parameters: {exc}")
            call, response = Call(method, params, arrived, error.code, error.description), error.body()
        except ApiError as error:
            call, response = Call(method, params, arrived, error.code, error.description), error.body()
        self.calls.append(call)
        self._notify()
        return web.json_response(response, status=call.status)

    async def _handle_download(self, request: web.Request) -> web.Response:
        path = request.match_info["path"]
        stored = next((f for f in self._files.values() if f.file_path == path), None)
        self.calls.append(Call("download", {"file_path": path}, self._clock(), 200 if stored else 404))
        self._notify()
        if stored is None:
            return web.Response(status=404, text="Not Found")
        return web.Response(body=stored.content, content_type="application/octet-stream")

    @staticmethod
    async def _read_params(request: web.Request) -> dict[str, Any]:
        params: dict[str, Any] = {k: _decode_value(k, v) for k, v in request.query.items()}
        if request.content_type == "application/json":
            params |= json.loads((await request.read()).decode("utf-8", "surrogateescape"))
        elif request.content_type == "multipart/form-data":
            reader = await request.multipart()
            while (part := await reader.next()) is not None:
                if not isinstance(part, BodyPartReader) or part.name is None:
                    continue
                if part.filename is not None:
                    mime = part.headers.get("Content-Type", "application/octet-stream")
                    params[part.name] = UploadedFile(part.filename, bytes(await part.read()), mime)
                else:
                    value = bytes(await part.read()).decode("utf-8", "surrogateescape")
                    params[part.name] = _decode_value(part.name, value)
        else:
            body = (await request.read()).decode("utf-8", "surrogateescape")
            for key, value in parse_qsl(body, keep_blank_values=True, errors="surrogateescape"):
                params[key] = _decode_value(key, value)
        return params

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _wait_change(self, deadline: float) -> bool:
        """Wait for the next call/update/stop until `deadline`; False once the deadline has passed."""
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            return False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), remaining)
        return True

    def _check_limits(self, method: str, params: dict[str, Any], now: float) -> float | None:
        """The chat's bucket before a counted call that every limit allows (None: not counted); else a 429 with
        the wait the tightest limit needs."""
        limits = self._limits
        if limits is None or method not in COUNTED_METHODS:
            return None
        chat = params.get("chat_id")
        while self._counted and self._counted[0][0] <= now - 60:
            self._counted.popleft()
        tokens, when = self._buckets.get(chat, (float(limits.chat_burst), now))
        tokens = min(float(limits.chat_burst), tokens + (now - when) * limits.chat_per_second)
        waits = {"chat": (1.0 - tokens) / limits.chat_per_second if tokens < 1.0 else 0.0}
        in_group = [t for t, c in self._counted if c == chat] if int(str(chat)) < 0 else []
        if len(in_group) >= limits.group_per_minute:
            waits["group"] = in_group[-limits.group_per_minute] + 60 - now
        last_second = [t for t, _ in self._counted if t > now - 1]
        if len(last_second) >= limits.overall_per_second:
            waits["overall"] = last_second[-limits.overall_per_second] + 1 - now
        rule, wait = max(waits.items(), key=lambda item: item[1])
        if wait > 0:
            self.flood_rejections += 1
            self.flood_by_rule[rule] += 1
            seconds = max(1, math.ceil(wait))
            raise ApiError(429, f"Too Many Requests: retry after {seconds}", retry_after=seconds)
        return tokens

    async def _get_updates(self, p: dict[str, Any]) -> list[dict[str, Any]]:
        offset, limit, timeout = int(p.get("offset", 0)), int(p.get("limit", 100)), float(p.get("timeout", 0))
        if "allowed_updates" in p:  # Telegram remembers the last list given; [] means the default set
            self._allowed_updates = frozenset(p["allowed_updates"]) or None
        if offset < 0:  # "-N": only the last N updates; everything before is forgotten
            self._updates = self._updates[offset:]
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            if offset > 0:  # confirmed updates are dropped for good
                self._updates = [u for u in self._updates if u["update_id"] >= offset]
            ready = [u for u in self._updates if self._is_allowed(u)][:limit]
            if ready or self._closing:
                now = self._clock()
                for update in ready:
                    if isinstance(message := update.get("message"), dict):
                        self.handed_out.setdefault((message["chat"]["id"], message["message_id"]), now)
                return ready
            self._pollers += 1
            if self._pollers == 1:  # tell wait_polling; only on 0 -> 1, so parked pollers never wake each other
                self._notify()
            try:
                if not await self._wait_change(deadline):
                    return []
            finally:
                self._pollers -= 1

    def _is_allowed(self, update: dict[str, Any]) -> bool:
        kind = next((k for k in update if k != "update_id"), "")
        return kind in self._allowed_updates if self._allowed_updates else kind not in NOT_DEFAULT_UPDATES

    def _delete_webhook(self, p: dict[str, Any]) -> bool:
        if p.get("drop_pending_updates"):
            self._updates.clear()
        return True

    def _get_my_commands(self, p: dict[str, Any]) -> list[dict[str, Any]]:
        scope = p.get("scope") or {"type": "default"}
        scope = json.loads(scope) if isinstance(scope, str) else scope
        return self.chat_commands.get(self._chat_id(scope), []) if scope.get("type") == "chat" else self.commands

    def _set_my_commands(self, p: dict[str, Any]) -> bool:
        commands = p.get("commands") or []
        for command in commands:
            if not re.fullmatch(r"[a-z0-9_]{1,32}", str(command.get("command", ""))):
                raise bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", ""))) <= 256:
                raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
        scope = p.get("scope") or {"type": "default"}
        if isinstance(scope, str):
            scope = json.loads(scope)
        if scope.get("type") == "chat":  # a chat's own menu (there is no per-topic scope in the Bot API)
            self.chat_commands[self._chat_id(scope)] = list(commands)
        elif scope.get("type") == "default":
            self.commands = list(commands)
        else:
            raise bad_request("scope not supported by the fake")
        return True

    def _send_message(self, p: dict[str, Any]) -> dict[str, Any]:
        chat_id = self._chat_id(p)
        text, entities = formatted_text(p.get("text"), p.get("parse_mode"), p.get("entities"))
        return self._message_json(self._new_message(chat_id, text, entities, p.get("reply_markup"), self._thread(p)))

    def _edit_message_text(self, p: dict[str, Any]) -> dict[str, Any]:
        message = self._message_to("edit", p)
        text, entities = formatted_text(p.get("text"), p.get("parse_mode"), p.get("entities"))
        if message.text is None:
            raise bad_request("there is no text in the message to edit")
        markup = p.get("reply_markup")  # omitted markup removes the keyboard, as on Telegram
        if (text, entities, markup) == (message.text, message.entities, message.reply_markup):
            raise ApiError(400, NOT_MODIFIED)
        message.text, message.entities, message.reply_markup, message.edited = text, entities, markup, True
        return self._message_json(message)

    def _edit_message_reply_markup(self, p: dict[str, Any]) -> dict[str, Any]:
        message = self._message_to("edit", p)
        if p.get("reply_markup") == message.reply_markup:
            raise ApiError(400, NOT_MODIFIED)
        message.reply_markup, message.edited = p.get("reply_markup"), True
        return self._message_json(message)

    def _delete_message(self, p: dict[str, Any]) -> bool:
        self._message_to("delete", p).deleted = True
        return True

    def _send_message_draft(self, p: dict[str, Any]) -> bool:
        chat_id = self._chat_id(p)
        if chat_id <= 0:
            raise bad_request("drafts can be sent only to private chats")
        draft_id = int(p.get("draft_id") or 0)
        if draft_id == 0:
            raise bad_request("draft_id must be non-zero")
        text, entities = formatted_text(p.get("text"), p.get("parse_mode"), p.get("entities"), empty_error=None)
        self._thread(p)
        self._drafts[chat_id].append(Draft(chat_id, draft_id, text, entities, p))
        return True

    def _send_chat_action(self, p: dict[str, Any]) -> bool:
        self._chat_id(p)
        self._thread(p)
        if p.get("action") not in CHAT_ACTIONS:
            raise bad_request("wrong parameter action in request")
        return True

    def _get_file(self, p: dict[str, Any]) -> dict[str, Any]:
        stored = self._files.get(str(p.get("file_id")))
        if stored is None:
            raise bad_request("invalid file_id")
        if len(stored.content) > self.file_size_limit:
            raise bad_request("file is too big")
        return stored.as_json() | {"file_path": stored.file_path}

    def _send_media(self, p: dict[str, Any], kind: str) -> dict[str, Any]:
        chat_id = self._chat_id(p)
        caption, entities = formatted_text(
            p.get("caption"), p.get("parse_mode"), p.get("caption_entities"), limit=MAX_CAPTION,
            empty_error=None, long_error="message caption is too long")
        stored = self._upload(p.get(kind), f"{kind}s")
        message = self._new_message(chat_id, None, entities, p.get("reply_markup"), self._thread(p))
        message.caption = caption or None
        if kind == "document":
            message.document = stored
        else:
            message.photo = stored
        return self._message_json(message)

    def _create_forum_topic(self, p: dict[str, Any]) -> dict[str, Any]:
        chat_id = self._chat_id(p)
        chat = self._chat(chat_id)
        if not (chat.get("is_forum") or (chat["type"] == "private" and self.topics_enabled)):
            raise bad_request("the chat is not a forum")
        name = str(p.get("name") or "")
        if not 1 <= len(name) <= 128:
            raise bad_request("TOPIC_TITLE_EMPTY" if not name else "TOPIC_TITLE_TOO_LONG")
        thread_id = self.open_topic(chat_id, name)
        return {"message_thread_id": thread_id, "name": name, "icon_color": 0x6FB9F0}

    def _delete_forum_topic(self, p: dict[str, Any]) -> bool:
        if self.topics.pop((self._chat_id(p), int(p.get("message_thread_id") or 0)), None) is None:
            raise bad_request("message thread not found")
        return True

    def _thread(self, p: dict[str, Any]) -> int | None:
        """The message_thread_id of a send; a topic that does not exist is refused as Telegram does."""
        raw = p.get("message_thread_id")
        if raw in (None, ""):
            return None
        thread_id = int(raw)
        chat_id = self._chat_id(p)
        if (self._chat(chat_id).get("is_forum") or chat_id > 0) and (chat_id, thread_id) not in self.topics:
            raise bad_request("message thread not found")
        return thread_id

    def _in_topic(self, chat_id: int, thread_id: int | None) -> dict[str, Any]:
        """The fields of a user's message in a topic: its thread id and, as the reply, the topic's opening message."""
        if thread_id is None:
            return {}
        opening = {"message_id": thread_id, "date": 0, "chat": self._chat(chat_id), "message_thread_id": thread_id,
                   "forum_topic_created": {"name": self.topics[(chat_id, thread_id)], "icon_color": 0x6FB9F0}}
        return {"message_thread_id": thread_id, "is_topic_message": True, "reply_to_message": opening}

    def _answer_callback_query(self, p: dict[str, Any]) -> bool:
        query_id = str(p.get("callback_query_id"))
        if query_id not in self._open_queries:
            raise bad_request("query is too old and response timeout expired or query ID is invalid")
        self._open_queries.discard(query_id)
        return True

    def _chat_id(self, p: dict[str, Any]) -> int:
        if p.get("chat_id") in (None, ""):
            raise bad_request("chat_id is empty")
        try:
            return int(p["chat_id"])
        except (TypeError, ValueError):
            raise bad_request("chat not found") from None

    def _chat(self, chat_id: int) -> dict[str, Any]:
        if chat_id not in self._chats:
            kind = "private" if chat_id > 0 else "supergroup" if chat_id < -10**12 else "group"
            self._chats[chat_id] = self._chat_json(chat_id, kind)
        return self._chats[chat_id]

    @staticmethod
    def _chat_json(chat_id: int, kind: str) -> dict[str, Any]:
        if kind == "private":
            return {"id": chat_id, "type": kind, "first_name": "Alice"}
        return {"id": chat_id, "type": kind, "title": f"Test {kind}"}

    def _bot_user(self) -> dict[str, Any]:
        return {"id": self.bot_id, "is_bot": True, "first_name": self.first_name, "username": self.username,
                "can_join_groups": True, "can_read_all_group_messages": False, "supports_inline_queries": False,
                "has_topics_enabled": self.topics_enabled}

    @staticmethod
    def _user(user_id: int, username: str) -> dict[str, Any]:
        return {"id": user_id, "is_bot": False, "first_name": username.title(), "username": username}

    def _user_message(self, chat_id: int, user_id: int | None, chat_type: str | None, username: str) -> dict[str, Any]:
        if chat_type is not None:
            self._chats[chat_id] = self._chat_json(chat_id, chat_type)
        sender = user_id if user_id is not None else (chat_id if chat_id > 0 else 4242)
        return {"message_id": next(self._message_ids[chat_id]), "date": int(time.time()),
                "chat": self._chat(chat_id), "from": self._user(sender, username)}

    def _store(self, folder: str, content: bytes, file_name: str | None = None, mime: str | None = None) -> StoredFile:
        n = next(self._ids)
        default = {"photos": "jpg", "voice": "oga"}.get(folder, "bin")
        suffix = file_name.rsplit(".", 1)[-1] if file_name and "." in file_name else default
        stored = StoredFile(f"FILE{n:06d}", f"U{n:06d}", f"{folder}/file_{n}.{suffix}", content, file_name, mime)
        self._files[stored.file_id] = stored
        return stored

    def _upload(self, value: object, folder: str) -> StoredFile:
        if isinstance(value, UploadedFile):
            return self._store(folder, value.content, value.filename, value.mime_type)
        if isinstance(value, str) and value in self._files:
            return self._files[value]
        raise bad_request("wrong file identifier/HTTP URL specified")

    def _new_message(
        self, chat_id: int, text: str | None, entities: list[dict[str, Any]], markup: dict[str, Any] | None,
        thread_id: int | None = None,
    ) -> BotMessage:
        message = BotMessage(next(self._message_ids[chat_id]), chat_id, text, entities, markup, thread_id=thread_id)
        self._messages[chat_id].append(message)
        return message

    def _find_message(self, chat_id: int, message_id: int) -> BotMessage | None:
        return next((m for m in self._messages[chat_id] if m.message_id == message_id and not m.deleted), None)

    def _message_to(self, action: str, p: dict[str, Any]) -> BotMessage:
        if "inline_message_id" in p:
            raise bad_request("inline messages are not supported by the fake")
        message = self._find_message(self._chat_id(p), int(p.get("message_id") or 0))
        if message is None:
            raise bad_request(f"message to {action} not found")
        return message

    def _message_json(self, m: BotMessage) -> dict[str, Any]:
        out: dict[str, Any] = {"message_id": m.message_id, "date": int(time.time()), "chat": self._chat(m.chat_id),
                               "from": self._bot_user()}
        if m.text is not None:
            out |= {"text": m.text} | ({"entities": m.entities} if m.entities else {})
        if m.document is not None:
            out["document"] = m.document.as_json()
        if m.photo is not None:
            out["photo"] = [m.photo.as_json() | {"width": 1280, "height": 960}]
        if m.caption:
            out |= {"caption": m.caption} | ({"caption_entities": m.entities} if m.entities else {})
        if m.reply_markup:
            out["reply_markup"] = m.reply_markup
        if m.edited:
            out["edit_date"] = int(time.time())
        if m.thread_id is not None:
            out |= {"message_thread_id": m.thread_id, "is_topic_message": True}
        return out
