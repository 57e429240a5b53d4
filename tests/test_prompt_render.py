"""A tool approval as one Telegram message (telegram/prompts.py): the preview in a `pre` entity, never broken."""

from __future__ import annotations

import pytest

from claude_bridge.commands.preview import ToolPreview
from claude_bridge.telegram.prompts import CUT_MARK, MESSAGE_LIMIT, prompt_chunk
from claude_bridge.telegram.render import utf16_len

pytestmark = pytest.mark.fast


def entity_text(text: str, offset: int, length: int) -> str:
    units = text.encode("utf-16-le")
    return units[offset * 2 : (offset + length) * 2].decode("utf-16-le")


def test_the_block_is_one_pre_entity_whatever_it_holds():
    block = "```\n</pre><b>x</b> & 𝄞 emoji 🎉\n\\`end"
    preview = ToolPreview("✏️ edit /a/𝄞.md (+1 −1)", block, "diff", ("Why: fix 🐛",))
    chunk, cut = prompt_chunk("🔐 Claude wants to use Edit in “w”:", preview, "Or type a reply.")

    [entity] = chunk.entities
    assert (entity.type, entity.language) == ("pre", "diff")
    assert entity_text(chunk.text, entity.offset, entity.length) == block
    assert chunk.text.endswith("\nWhy: fix 🐛\nOr type a reply.") and not cut


def test_a_block_too_long_for_one_message_is_cut_at_a_line_and_says_the_whole_is_attached():
    block = "\n".join("+" + "𝄞" * 30 + str(n) for n in range(400))
    chunk, cut = prompt_chunk("intro", ToolPreview("heading", block, "diff"), "footer")

    [entity] = chunk.entities
    shown = entity_text(chunk.text, entity.offset, entity.length)
    assert cut and utf16_len(chunk.text) <= MESSAGE_LIMIT
    assert shown.endswith("\n" + CUT_MARK)
    assert all(line.endswith(tuple("0123456789")) for line in shown.splitlines()[:-1])  # whole lines only
    assert chunk.text.endswith("footer")


def test_a_preview_cut_earlier_still_counts_as_cut_and_no_block_means_no_entity():
    assert prompt_chunk("i", ToolPreview("h", "x\n… 3 more lines", full="x\ny\nz\nw"), "f")[1]
    chunk, cut = prompt_chunk("i", ToolPreview("🌐 fetch https://e.com"), "f")
    assert chunk.entities == () and chunk.text == "i\n🌐 fetch https://e.com\nf" and not cut


def test_a_huge_heading_or_lone_surrogate_cannot_break_the_message():
    chunk, _ = prompt_chunk("i", ToolPreview("📝 new file /" + "a" * 9000, "ok\ud800"), "f")
    assert utf16_len(chunk.text) <= MESSAGE_LIMIT and "\ud800" not in chunk.text
    chunk.text.encode("utf-8")
