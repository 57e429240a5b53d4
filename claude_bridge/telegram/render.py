"""Claude's Markdown → Telegram text + entities, split to Telegram's UTF-16 limits; the tool-progress body.

Knows telegramify-markdown and Telegram's text rules only: nothing here sends, edits or talks to PTB's Application.
Slightly over 500 lines: the splitter and the live tail share the UTF-16 index and the entity spans.
"""

from __future__ import annotations

import itertools
import logging
import re
import unicodedata
from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import pyromark
import telegramify_markdown
from telegram import MessageEntity
from telegramify_markdown.converter import STANDARD_OPTIONS

logger = logging.getLogger(__name__)

MAX_UNITS = 4096  # sendMessage/editMessageText text limit, counted in UTF-16 code units
MAX_ENTITIES = 100  # Telegram ignores or rejects entities past the 100th
DOCUMENT_AFTER_CHUNKS = 6
# A code block longer than about three messages reads better as a file than as a wall of parts.
HUGE_CODE_UNITS = 12_000

_ELLIPSIS = "…"
_TAIL_MARKER = "…\n"
_LINK_SCHEMES = ("http://", "https://", "tg://")


@dataclass(frozen=True)
class Chunk:
    """One Telegram message: text plus entities with UTF-16 offsets, sent with parse_mode=None."""

    text: str
    entities: tuple[MessageEntity, ...] = ()


class _Span(NamedTuple):
    """An entity in UTF-16 units, before it is clipped into a chunk."""

    type: str
    offset: int
    length: int
    url: str | None = None
    language: str | None = None
    custom_emoji_id: str | None = None

    @property
    def end(self) -> int:
        return self.offset + self.length


class _Spans:
    """Entities sorted by offset, with a running maximum of their ends to skip past finished ones quickly."""

    def __init__(self, spans: list[_Span]) -> None:
        self.items = sorted(spans, key=lambda s: (s.offset, -s.length))
        self._max_ends = list(itertools.accumulate((s.end for s in self.items), max))

    def overlapping(self, low: int) -> Iterator[_Span]:
        """Spans that end after `low`, in offset order."""
        for span in itertools.islice(self.items, bisect_right(self._max_ends, low), None):
            if span.end > low:
                yield span


_NO_SPANS = _Spans([])


def utf16_len(s: str) -> int:
    """Length of `s` in UTF-16 code units, the unit of Telegram's limits and entity offsets."""
    if s.isascii():
        return len(s)
    return len(s.encode("utf-16-le", "surrogatepass")) // 2


def utf16_slice(s: str, start: int, stop: int | None = None) -> str:
    """`s` between two UTF-16 offsets, rounded inwards so a surrogate pair is never cut."""
    units = _Units(s)
    first = units.index_at_or_after(max(start, 0))
    last = len(s) if stop is None else units.index_at_or_before(stop)
    return s[first:last] if last > first else ""


def render_markdown(md: str, limit: int = MAX_UNITS) -> list[Chunk]:
    """Render GitHub-flavoured Markdown into Telegram chunks of at most `limit` UTF-16 units each."""
    _check_limit(limit)
    md = _clean(md)
    if not md.strip():
        return []
    try:
        text, spans = _convert(md)
    except Exception:
        logger.warning("telegramify-markdown failed; sending the answer as plain text", exc_info=True)
        return plain_chunks(md, limit)
    if not text.strip():
        return plain_chunks(md, limit)
    return _split(text, spans, limit)


def plain_chunks(text: str, limit: int = MAX_UNITS) -> list[Chunk]:
    """Split plain text into entity-free chunks of at most `limit` UTF-16 units, at newlines where possible."""
    _check_limit(limit)
    text = _clean(text)
    if not text.strip():
        return []
    return _split(text, _NO_SPANS, limit)


def chunk_plain_text(chunk: Chunk) -> Chunk:
    """The same chunk without formatting, for resending after Telegram rejected its entities."""
    return Chunk(chunk.text, ())


def needs_document(md: str, chunks: list[Chunk]) -> bool:
    """Whether the answer is better sent as a Markdown document: too many messages or one huge code block."""
    return len(chunks) > DOCUMENT_AFTER_CHUNKS or _largest_code_block(_clean(md)) > HUGE_CODE_UNITS


def document_preview(md: str, limit: int = 1000) -> Chunk:
    """The rendered opening of a long answer, cut at a paragraph or line and marked with "…"."""
    _check_limit(limit)
    md = _clean(md)
    if not md.strip():
        return Chunk("", ())
    # Render a bounded prefix, cut at a line end: the preview never needs the rest of a 100 KB answer.
    head = md[: _line_end(md, limit * 4)]
    text, spans = _convert_or_plain(head)
    cut_source = len(head) < len(md.rstrip())
    if not cut_source and utf16_len(text) <= limit:
        return _make_chunk(text, _Units(text), spans, 0, len(text)) or Chunk("", ())
    ellipsis = limit >= 4
    room = limit - 2 if ellipsis else limit  # space for "\n…"
    units = _Units(text)
    start, end = next(_ranges(text, units, spans, room), (0, 0))
    chunk = _make_chunk(text, units, spans, start, end)
    if chunk is None:
        return Chunk(_ELLIPSIS, ())
    if not ellipsis:
        return chunk
    separator = "\n" if end > 0 and text[end - 1] == "\n" else " "
    return Chunk(chunk.text + separator + _ELLIPSIS, chunk.entities)


def render_tail(md: str, limit: int = MAX_UNITS) -> Chunk:
    """The rendered last window of a growing answer that fits in `limit` units, prefixed with "…\\n" when cut."""
    _check_limit(limit)
    md = _clean(md)
    if not md.strip():
        return Chunk("", ())
    marker = _TAIL_MARKER if limit > 2 * utf16_len(_TAIL_MARKER) else ""
    room = limit - utf16_len(marker)
    # Render only a suffix of the Markdown so a draft of a 100 KB answer costs the same as a short one;
    # widen it when markup made the rendered window come out short.
    budget = 2 * limit + 1024
    while True:
        source, cut_source = _markdown_suffix(md, budget)
        text, spans = _convert_or_plain(source)
        units = _Units(text)
        if not cut_source or units.total >= room or budget >= 8 * limit:
            break
        budget *= 2
    if not cut_source and units.total <= limit:
        return _make_chunk(text, units, spans, 0, len(text)) or Chunk("", ())
    start = _tail_start(text, units, spans, room)
    return _make_chunk(text, units, spans, start, len(text), prefix=marker) or Chunk("", ())


def progress_text(lines: list[str], limit: int = MAX_UNITS) -> str:
    """The tool-progress message body; the oldest lines give way to "… N earlier steps" when it is too long."""
    _check_limit(limit)
    lines = [_clean(line) for line in lines]
    body = "\n".join(lines)
    if utf16_len(body) <= limit:
        return body
    # Keep the newest lines that fit under a "… N earlier steps" header.
    kept = used = 0
    while kept < len(lines):
        line_units = utf16_len(lines[-1 - kept]) + (1 if kept else 0)
        header_units = utf16_len(_earlier_steps(len(lines) - kept - 1)) + 1
        if header_units + used + line_units > limit:
            break
        used += line_units
        kept += 1
    if kept == 0:
        return _fit(_earlier_steps(len(lines) - 1) + "\n" + lines[-1], limit)
    return _earlier_steps(len(lines) - kept) + "\n" + "\n".join(lines[-kept:])


def _earlier_steps(count: int) -> str:
    return f"{_ELLIPSIS} {count} earlier step" + ("" if count == 1 else "s")


def _fit(text: str, limit: int) -> str:
    if utf16_len(text) <= limit:
        return text
    return utf16_slice(text, 0, limit - 1) + _ELLIPSIS


def _check_limit(limit: int) -> None:
    if limit < 2:
        raise ValueError(f"limit must be at least 2 UTF-16 units (one surrogate pair), got {limit}")


_SURROGATE = re.compile("[\ud800-\udfff]")


def _clean(text: str) -> str:
    """Replace lone surrogates, which Telegram rejects as invalid UTF-8, with U+FFFD."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
    return text


def _render_config() -> Any:
    config = telegramify_markdown.RenderConfig.isolated()
    symbols = config.markdown_symbol
    symbols.heading_level_1 = "📌"
    symbols.heading_level_2 = "🔹"
    symbols.heading_level_3 = "🔸"
    symbols.heading_level_4 = "▪"
    symbols.heading_level_5 = ""
    symbols.heading_level_6 = ""
    symbols.task_completed = "✅"
    symbols.task_uncompleted = "☐"
    symbols.unordered_list_item = "•"
    return config


# Isolated, so nothing else in the process that touches telegramify's global config changes our output.
_CONFIG = _render_config()


def _convert(md: str) -> tuple[str, _Spans]:
    # latex_escape=False: telegramify rewrites \(...\) and \[...\] before parsing, code blocks included,
    # and code must reach the chat untouched.
    text, entities = telegramify_markdown.convert(_escape_raw_html(md), latex_escape=False, config=_CONFIG)
    spans = [
        _Span(e.type, e.offset, e.length, e.url, e.language, e.custom_emoji_id)
        for e in entities
        if e.length > 0 and _link_ok(e.type, e.url)
    ]
    return text, _Spans(_drop_nested_quotes(sorted(spans, key=lambda s: (s.offset, -s.length))))


def _convert_or_plain(md: str) -> tuple[str, _Spans]:
    try:
        return _convert(md)
    except Exception:
        logger.warning("telegramify-markdown failed; rendering as plain text", exc_info=True)
        return md, _NO_SPANS


def _link_ok(entity_type: str, url: str | None) -> bool:
    # Relative links ("src/x.py"), bare emails and odd schemes become a "Wrong URL" 400 for the whole
    # message; the link text stays visible without them.
    return entity_type != "text_link" or (url is not None and url.lower().startswith(_LINK_SCHEMES))


def _drop_nested_quotes(spans: list[_Span]) -> list[_Span]:
    """Telegram forbids a blockquote inside another; keep the outer one of `> > nested` quotes."""
    quotes = ("blockquote", "expandable_blockquote")
    kept: list[_Span] = []
    quote_end = -1
    for span in spans:
        if span.type in quotes:
            if span.offset < quote_end:
                continue
            quote_end = span.end
        kept.append(span)
    return kept


def _escape_raw_html(md: str) -> str:
    """Backslash-escape the `<` that starts raw HTML: telegramify 1.4.1 silently drops HTML (`List<String>`).

    Only what the parser itself reads as HTML (or as a non-web autolink such as `<std::string>`) is touched,
    so code spans, fences, `a < b` and `<https://…>` autolinks stay as they are. Escaping can turn an HTML
    block back into Markdown with new inline HTML in it, hence the few rounds.
    """
    for _ in range(4):
        if "<" not in md:
            return md
        raw = md.encode("utf-8")
        targets: list[int] = []
        for payload, where in pyromark.events_with_range(md, options=STANDARD_OPTIONS):
            if not isinstance(payload, dict):
                continue
            if "Html" in payload or "InlineHtml" in payload:
                targets.extend(i for i in range(where["start"], where["end"]) if raw[i] == 0x3C)
            elif _is_foreign_autolink(payload):
                targets.append(where["start"])
        if not targets:
            return md
        bounds = [0, *sorted(set(targets)), len(raw)]
        md = b"\\".join(raw[a:b] for a, b in itertools.pairwise(bounds)).decode("utf-8")
    return md


def _is_foreign_autolink(payload: Mapping[str, object]) -> bool:
    start = payload.get("Start")
    link = start.get("Link") if isinstance(start, dict) else None
    if not isinstance(link, dict) or link.get("link_type") != "Autolink":
        return False
    return not str(link.get("dest_url", "")).lower().startswith(_LINK_SCHEMES)


_ASTRAL = re.compile("[\U00010000-\U0010ffff]")


class _Units:
    """Python string index ↔ UTF-16 offset for one text; only its astral characters (two units each) are stored."""

    def __init__(self, text: str) -> None:
        self._length = len(text)
        self._astral = [] if text.isascii() else [m.start() for m in _ASTRAL.finditer(text)]
        # UTF-16 offset just past each astral character, to count the ones that end at or before an offset.
        self._astral_ends = [index + k + 2 for k, index in enumerate(self._astral)]
        self.total = self._length + len(self._astral)

    def at(self, index: int) -> int:
        """UTF-16 offset of the character at `index`."""
        return index + bisect_left(self._astral, index)

    def index_at_or_before(self, unit: int) -> int:
        """The largest index whose offset is ≤ `unit`."""
        index = max(0, min(unit - bisect_right(self._astral_ends, unit), self._length))
        return index - 1 if index > 0 and self.at(index) > unit else index

    def index_at_or_after(self, unit: int) -> int:
        """The smallest index whose offset is ≥ `unit`."""
        index = max(0, min(unit - bisect_right(self._astral_ends, unit), self._length))
        return index + 1 if index < self._length and self.at(index) < unit else index


def _split(text: str, spans: _Spans, limit: int) -> list[Chunk]:
    units = _Units(text)
    chunks = (_make_chunk(text, units, spans, start, end) for start, end in _ranges(text, units, spans, limit))
    return [chunk for chunk in chunks if chunk is not None]


def _ranges(text: str, units: _Units, spans: _Spans, limit: int) -> Iterator[tuple[int, int]]:
    """Successive (start, end) slices of `text`, each within `limit` units and MAX_ENTITIES entities."""
    pos = 0
    while True:
        while pos < len(text) and text[pos] in "\r\n":
            pos += 1
        if pos >= len(text):
            return
        hard = min(units.index_at_or_before(units.at(pos) + limit), len(text))
        cap = _entity_cap(spans, units.at(pos))
        if cap is not None and cap > units.at(pos):
            hard = min(hard, units.index_at_or_before(cap))
        end = len(text) if hard >= len(text) else _break_before(text, pos, hard)
        yield pos, end
        pos = end


def _entity_cap(spans: _Spans, start: int) -> int | None:
    """Where the 101st entity overlapping a chunk from `start` begins: the chunk must end before it."""
    for count, span in enumerate(spans.overlapping(start), start=1):
        if count > MAX_ENTITIES:
            return max(span.offset, start)
    return None


def _break_before(text: str, pos: int, hard: int) -> int:
    """The best cut in (pos, hard]: a blank line, a newline, a space, else a grapheme boundary."""
    floor = pos + (hard - pos) // 2
    for separator, low in (("\n\n", floor), ("\n", floor), (" ", floor), ("\n", pos), (" ", pos)):
        found = text.rfind(separator, low, hard)
        if found >= pos and found + len(separator) > pos:
            return found + len(separator)
    return _grapheme_cut(text, pos, hard)


def _grapheme_cut(text: str, pos: int, hard: int) -> int:
    """Back off a few characters from `hard` rather than split an emoji sequence or a combining mark."""
    cut = hard
    while cut > pos + 1 and hard - cut < 16 and _inside_cluster(text, cut):
        cut -= 1
    return hard if _inside_cluster(text, cut) else cut


def _inside_cluster(text: str, i: int) -> bool:
    if i <= 0 or i >= len(text):
        return False
    before, after = text[i - 1], text[i]
    if before == "\u200d" or after == "\u200d" or after == "\u20e3":
        return True
    code = ord(after)
    if 0xFE00 <= code <= 0xFE0F or 0x1F3FB <= code <= 0x1F3FF or 0xE0020 <= code <= 0xE007F:
        return True
    if unicodedata.combining(after):
        return True
    if _is_regional(after) and _is_regional(before):
        run = 0
        j = i - 1
        while j >= 0 and _is_regional(text[j]):
            run += 1
            j -= 1
        return run % 2 == 1
    return False


def _is_regional(ch: str) -> bool:
    return 0x1F1E6 <= ord(ch) <= 0x1F1FF


def _make_chunk(text: str, units: _Units, spans: _Spans, start: int, end: int, prefix: str = "") -> Chunk | None:
    """Slice `text`, trim the blank edges Telegram would trim anyway, and clip the entities into it."""
    while start < end and text[start] in "\r\n":
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if start >= end:
        return None
    low, high = units.at(start), units.at(end)
    shift = utf16_len(prefix)
    entities: list[MessageEntity] = []
    for span in spans.overlapping(low):
        if span.offset >= high:
            break
        offset, stop = max(span.offset, low), min(span.end, high)
        entities.append(
            MessageEntity(
                type=span.type,
                offset=offset - low + shift,
                length=stop - offset,
                url=span.url,
                language=span.language,
                custom_emoji_id=span.custom_emoji_id,
            )
        )
        if len(entities) == MAX_ENTITIES:
            break
    return Chunk(prefix + text[start:end], tuple(entities))


def _tail_start(text: str, units: _Units, spans: _Spans, room: int) -> int:
    """Index where the last window of `text` within `room` units and MAX_ENTITIES entities begins."""
    start_unit = max(0, units.total - room)
    ends = sorted((span.end for span in spans.overlapping(start_unit)), reverse=True)
    if len(ends) > MAX_ENTITIES:
        start_unit = ends[MAX_ENTITIES]
    start = units.index_at_or_after(start_unit)
    # Start on a whole line when one begins soon enough, so the window does not open mid-word.
    newline = text.find("\n", start, start + max(room // 4, 1))
    if newline != -1 and start > 0 and text[start - 1] != "\n":
        start = newline + 1
    return start


_FENCE = re.compile(r"^[ \t>]*(`{3,}|~{3,})(.*)$", re.MULTILINE)


def _markdown_suffix(md: str, budget: int) -> tuple[str, bool]:
    """About the last `budget` characters of `md`, starting on a line, with an open code fence reopened."""
    if len(md) <= budget:
        return md, False
    start = md.find("\n", len(md) - budget)
    if start == -1:
        return md[len(md) - budget :], True
    start += 1
    blank = md.find("\n\n", start, start + budget // 4)
    if blank != -1:
        start = blank + 2
    fence = _open_fence(md, start)
    return (fence + "\n" if fence else "") + md[start:], True


def _open_fence(md: str, end: int) -> str:
    """The opening line of the fenced code block still open at `end`, or ""."""
    opener: tuple[str, str] | None = None
    for match in _FENCE.finditer(md, 0, end):
        marker, rest = match.group(1), match.group(2)
        if opener is None:
            if not (marker[0] == "`" and "`" in rest):
                opener = (marker, rest.strip())
        elif marker[0] == opener[0][0] and len(marker) >= len(opener[0]) and not rest.strip():
            opener = None
    return "" if opener is None else f"{opener[0]}{opener[1]}"


def _line_end(md: str, at_least: int) -> int:
    if len(md) <= at_least:
        return len(md)
    newline = md.find("\n", at_least)
    return len(md) if newline == -1 else newline


def _largest_code_block(md: str) -> int:
    """UTF-16 length of the longest code block in `md`."""
    largest = current = 0
    inside = False
    try:
        for payload, _ in pyromark.events_with_range(md, options=STANDARD_OPTIONS):
            if not isinstance(payload, dict):
                continue
            start = payload.get("Start")
            if isinstance(start, dict) and "CodeBlock" in start:
                inside, current = True, 0
            elif payload.get("End") == "CodeBlock":
                inside, largest = False, max(largest, current)
            elif inside and "Text" in payload:
                current += utf16_len(payload["Text"])
    except Exception:
        logger.warning("could not measure code blocks", exc_info=True)
    return max(largest, current)
