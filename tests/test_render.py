from __future__ import annotations

import time

import pytest
import telegramify_markdown
from hypothesis import given, settings
from hypothesis import strategies as st

from claude_bridge.commands.describe import tool_line
from claude_bridge.telegram.render import (
    MAX_UNITS,
    Chunk,
    chunk_plain_text,
    document_preview,
    needs_document,
    plain_chunks,
    progress_text,
    render_markdown,
    render_tail,
    utf16_len,
    utf16_slice,
)

pytestmark = pytest.mark.fast

EMOJI = ["😀", "🇩🇪", "🇯🇵", "👨‍👩‍👧‍👦", "👍🏽", "❤️"]


def assert_sendable(chunks: list[Chunk], limit: int = MAX_UNITS) -> None:
    """Every chunk is what Telegram accepts: short enough, valid UTF-8, entities inside the text."""
    for chunk in chunks:
        size = utf16_len(chunk.text)
        assert 0 < size <= limit
        chunk.text.encode("utf-8")  # a lone surrogate would raise here
        assert chunk.text.encode("utf-16-le").decode("utf-16-le") == chunk.text
        assert len(chunk.entities) <= 100
        starts = char_boundaries(chunk.text)
        for entity in chunk.entities:
            assert entity.length > 0
            assert entity.offset >= 0 and entity.offset + entity.length <= size
            assert entity.offset in starts and entity.offset + entity.length in starts


def char_boundaries(text: str) -> set[int]:
    """UTF-16 offsets that fall between characters (never inside a surrogate pair)."""
    offsets, unit = {0}, 0
    for ch in text:
        unit += utf16_len(ch)
        offsets.add(unit)
    return offsets


def entity_text(chunk: Chunk, index: int) -> str:
    entity = chunk.entities[index]
    return utf16_slice(chunk.text, entity.offset, entity.offset + entity.length)


def squeeze(text: str) -> str:
    return "".join(text.split())


def test_generics_and_comparisons_survive_in_prose() -> None:
    [chunk] = render_markdown("Use List<String> here: a < b && c > d, and Vec<u8> & Option<T>.")

    assert chunk.text == "Use List<String> here: a < b && c > d, and Vec<u8> & Option<T>."


def test_html_looking_lines_and_already_escaped_brackets_stay_visible() -> None:
    [chunk] = render_markdown("<details>\nsummary text\n</details>\n\nkeep \\<b> and <std::string> too")

    assert "<details>" in chunk.text and "</details>" in chunk.text
    assert "keep <b> and <std::string> too" in chunk.text


def test_code_spans_and_fences_keep_their_content_untouched() -> None:
    md = 'Inline `<spawn> & "quote"` here.\n\n```python\nspawn("<spawn> & \\"quote\\"")\nx = a<b>c\n```\n'

    [chunk] = render_markdown(md)

    code, pre = chunk.entities
    assert (code.type, entity_text(chunk, 0)) == ("code", '<spawn> & "quote"')
    assert (pre.type, pre.language) == ("pre", "python")
    assert entity_text(chunk, 1) == 'spawn("<spawn> & \\"quote\\"")\nx = a<b>c'


def test_latex_lookalikes_in_code_are_not_turned_into_math() -> None:
    md = 'Inline `\\(\\alpha\\)` here.\n\n```python\npattern = r"\\(\\alpha|\\beta\\)"\n```'

    [chunk] = render_markdown(md)

    assert entity_text(chunk, 0) == "\\(\\alpha\\)"
    assert entity_text(chunk, 1) == 'pattern = r"\\(\\alpha|\\beta\\)"'


def test_web_autolinks_still_link_but_relative_links_keep_only_their_text() -> None:
    [chunk] = render_markdown("See <https://example.com/docs> and [the file](src/render.py).")

    assert chunk.text == "See https://example.com/docs and the file."
    [link] = chunk.entities
    assert (link.type, link.url) == ("text_link", "https://example.com/docs")


def test_task_lists_and_headings_read_as_symbols() -> None:
    [chunk] = render_markdown("## Plan\n\n- [ ] write tests\n- [x] write code\n- plain item")

    assert chunk.text.splitlines() == ["🔹 Plan", "", "☐ write tests", "✅ write code", "• plain item"]
    assert {e.type for e in chunk.entities} == {"bold", "underline"}


def test_whitespace_only_answers_render_to_nothing() -> None:
    assert render_markdown("") == []
    assert render_markdown(" \n\t\n ") == []
    assert plain_chunks("\n\n") == []


def long_answer() -> tuple[str, list[str], list[str]]:
    """About 10,000 characters: emoji-laden prose around a 150-line Python block."""
    prose = [
        f"Step {i}: the session {EMOJI[i % len(EMOJI)]} resumes with {EMOJI[(i + 1) % len(EMOJI)]} history and "
        f"keeps its queue of prompts in order while the bot streams every answer back to the chat {i}."
        for i in range(36)
    ]
    code = [f"    value_{i} = compute({i}, '<tag>')  # {EMOJI[i % len(EMOJI)]} step {i}" for i in range(150)]
    md = "\n\n".join(prose[:18]) + "\n\n```python\ndef main():\n" + "\n".join(code) + "\n```\n\n"
    md += "\n\n".join(prose[18:])
    return md, prose, code


def test_a_long_answer_splits_into_sendable_chunks_and_keeps_every_line() -> None:
    md, prose, code = long_answer()
    assert len(md) >= 10_000

    chunks = render_markdown(md)

    assert len(chunks) >= 3
    assert_sendable(chunks)
    everything = squeeze("".join(chunk.text for chunk in chunks))
    for line in prose + code:
        assert squeeze(line) in everything


def test_a_code_block_cut_across_chunks_continues_as_python_code() -> None:
    md, _, _ = long_answer()

    chunks = render_markdown(md)

    first = next(i for i, chunk in enumerate(chunks) if "value_0 =" in chunk.text)
    last = next(i for i, chunk in enumerate(chunks) if "value_149 =" in chunk.text)
    assert last > first
    for chunk in chunks[first + 1 : last + 1]:
        pre = chunk.entities[0]
        assert (pre.type, pre.language, pre.offset) == ("pre", "python", 0)
        assert "value_" in entity_text(chunk, 0)


def test_more_than_100_entities_are_spread_over_several_messages() -> None:
    md = " ".join(f"**w{i}**" for i in range(250))

    chunks = render_markdown(md)

    assert len(chunks) >= 3
    assert_sendable(chunks)
    assert sum(len(chunk.entities) for chunk in chunks) == 250


def test_plain_chunks_split_at_newlines_and_never_inside_an_emoji() -> None:
    lines = [f"line {i} " + "😀" * 30 for i in range(200)]

    chunks = plain_chunks("\n".join(lines))

    assert_sendable(chunks)
    assert all(chunk.entities == () for chunk in chunks)
    assert [line for chunk in chunks for line in chunk.text.split("\n")] == lines


def test_one_enormous_line_of_flags_is_cut_between_flags() -> None:
    chunks = plain_chunks("🇩🇪" * 3000, limit=102)

    assert_sendable(chunks, limit=102)
    assert all(len(chunk.text) % 2 == 0 for chunk in chunks)
    assert "".join(chunk.text for chunk in chunks) == "🇩🇪" * 3000


def test_a_chunk_without_formatting_keeps_its_text() -> None:
    [chunk] = render_markdown("**bold** and `code`")

    assert chunk_plain_text(chunk) == Chunk("bold and code", ())


def test_a_converter_crash_still_delivers_the_answer_as_plain_text(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_convert(*args: object, **kwargs: object) -> None:
        raise RuntimeError("converter bug")

    monkeypatch.setattr(telegramify_markdown, "convert", broken_convert)

    chunks = render_markdown("**still** here\n\n" + "x" * 150, limit=100)

    assert chunks[0] == Chunk("**still** here", ())
    assert_sendable(chunks, limit=100)


MARKDOWNISH = st.lists(
    st.one_of(
        st.sampled_from(
            [*"*_`~|#>-+[]()!<>&\\$\n \t.1x", "```", "```py\n", "\n\n", "- [ ] ", "1. ", "> ", "| a | b |\n|---|---|\n"]
        ),
        st.sampled_from(EMOJI),
        st.characters(exclude_categories=["Cs"]),
    ),
    max_size=300,
).map("".join)


@settings(max_examples=150, deadline=None)
@given(md=st.one_of(st.text(), MARKDOWNISH), limit=st.integers(min_value=50, max_value=200))
def test_any_text_renders_into_sendable_chunks(md: str, limit: int) -> None:
    assert_sendable(render_markdown(md, limit), limit)


@settings(max_examples=150, deadline=None)
@given(text=st.one_of(st.text(), MARKDOWNISH), limit=st.integers(min_value=50, max_value=200))
def test_plain_chunks_keep_every_visible_character(text: str, limit: int) -> None:
    chunks = plain_chunks(text, limit)

    assert_sendable(chunks, limit)
    assert squeeze("".join(chunk.text for chunk in chunks)) == squeeze(text)


@settings(max_examples=50, deadline=None)
@given(words=st.lists(st.text(alphabet="abcdefghij0123456789", min_size=1, max_size=30), min_size=1, max_size=200))
def test_plain_words_survive_rendering_and_splitting(words: list[str]) -> None:
    md = "\n".join(" ".join(words[i : i + 7]) for i in range(0, len(words), 7))

    chunks = render_markdown(md, limit=60)

    assert squeeze("".join(chunk.text for chunk in chunks)) == "".join(words)


def test_long_answers_and_huge_code_blocks_go_out_as_documents() -> None:
    long_prose = "\n\n".join(f"Paragraph {i} " + "words " * 40 for i in range(160))
    huge_code = "```python\n" + "\n".join(f"x_{i} = {i} * 2" for i in range(1000)) + "\n```"
    short = "A short answer with `code`."
    assert len(long_prose) >= 40_000 and len(huge_code) >= 12_500

    assert needs_document(long_prose, render_markdown(long_prose))
    assert needs_document(huge_code, render_markdown(huge_code))
    assert not needs_document(short, render_markdown(short))


def test_a_medium_code_block_stays_in_the_chat() -> None:
    code = "```python\n" + "\n".join(f"x_{i} = {i}" for i in range(200)) + "\n```"

    assert not needs_document(code, render_markdown(code))


def test_document_preview_shows_the_first_paragraphs_cut_cleanly() -> None:
    md = "# Summary\n\nThe **fix** is in `render.py`.\n\n" + "\n\n".join("More detail. " * 20 for _ in range(50))

    preview = document_preview(md, limit=500)

    assert_sendable([preview], limit=500)
    assert preview.text.startswith("📌 Summary\n\nThe fix is in render.py.")
    assert preview.text.endswith("\n…")
    assert "More detail. More" in preview.text


def test_document_preview_of_a_short_answer_is_the_whole_answer() -> None:
    assert document_preview("Done: **3** files changed.") == render_markdown("Done: **3** files changed.")[0]


def hundred_kb_answer() -> str:
    para = "Some **bold** prose with `code`, a [link](https://example.com) and 😀 emoji. " * 3
    block = "```python\n" + "\n".join(f"def f{i}(x):\n    return x * {i}" for i in range(30)) + "\n```"
    parts: list[str] = []
    while sum(map(len, parts)) < 100_000:
        parts += [para, para, block]
    return "\n\n".join(parts) + "\n\nAnd these are the final words of the answer."


def test_the_tail_of_a_huge_answer_fits_one_message_and_ends_with_its_last_words() -> None:
    md = hundred_kb_answer()

    tail = render_tail(md)

    assert_sendable([tail])
    assert tail.text.startswith("…\n")
    assert tail.text.endswith("And these are the final words of the answer.")


def test_the_tail_is_cheap_enough_to_redraw_several_times_a_second() -> None:
    md = hundred_kb_answer()

    started = time.perf_counter()
    for cut in range(40):
        render_tail(md[: len(md) - cut * 37])

    assert time.perf_counter() - started < 1.0


def test_a_tail_that_starts_inside_a_code_block_still_shows_code() -> None:
    md = "Intro\n\n```rust\n" + "\n".join(f"let v{i} = Vec::<u8>::new();" for i in range(500))

    tail = render_tail(md, limit=300)

    assert_sendable([tail], limit=300)
    assert tail.text.endswith("let v499 = Vec::<u8>::new();")
    pre = tail.entities[-1]
    assert (pre.type, pre.language) == ("pre", "rust")


def test_a_short_answer_is_its_own_tail() -> None:
    assert render_tail("Hello **there**") == render_markdown("Hello **there**")[0]
    assert render_tail("") == Chunk("", ())


def test_tool_lines_name_the_tool_and_what_it_touches() -> None:
    assert tool_line("Bash", {"command": "pytest -q\necho done", "description": "run tests"}) == "🖥 Bash: pytest -q …"
    assert tool_line("Read", {"file_path": "/work/main/render.py"}) == "📖 Read: /work/main/render.py"
    assert tool_line("Edit", {"file_path": "bot.py", "old_string": "a", "new_string": "b"}) == "✏️ Edit: bot.py"
    assert tool_line("mcp__db__query", {"limit": 5, "sql": "select 1"}) == "🔧 mcp__db__query: select 1"
    assert tool_line("Mystery", {}) == "🔧 Mystery"


def test_long_tool_inputs_are_shortened_keeping_file_names() -> None:
    command = tool_line("Bash", {"command": "grep -rn " + "x" * 200})
    path = tool_line("Write", {"file_path": "/very/" + "deep/" * 40 + "module.py"})

    assert command.endswith("…") and len(command) <= 90
    assert path.endswith("/module.py") and "…" in path and len(path) <= 90


def test_progress_keeps_the_newest_steps_under_the_limit() -> None:
    lines = [tool_line("Read", {"file_path": f"src/file_{i}.py"}) for i in range(200)]

    text = progress_text(lines, limit=500)

    assert utf16_len(text) <= 500
    header, *shown = text.split("\n")
    assert header == f"… {200 - len(shown)} earlier steps"
    assert shown == lines[-len(shown) :]
    assert utf16_len("\n".join([header, lines[-len(shown) - 1], *shown])) > 500


def test_progress_that_fits_is_left_alone() -> None:
    lines = ["🖥 Bash: ls", "📖 Read: a.py"]

    assert progress_text(lines) == "🖥 Bash: ls\n📖 Read: a.py"
