"""A tool approval shows the change before the human decides (real CLI, real PTB, fake APIs): an Edit's diff in
a private chat, and a long Write in a forum topic with the whole diff attached there."""

from __future__ import annotations

import pytest
from test_asks_e2e import edited_to, press, prompt, warm_up

from bot_harness import OWNER, running_bot
from fake_anthropic import ToolUse as ScriptedTool

pytestmark = pytest.mark.real_cli
FORUM = -100555


def entity_text(text: str, entity: dict[str, object]) -> str:
    units = text.encode("utf-16-le")
    offset, length = int(entity["offset"]), int(entity["length"])  # type: ignore[call-overload]
    return units[offset * 2 : (offset + length) * 2].decode("utf-16-le")


async def test_an_edit_prompt_shows_the_diff_against_the_file_and_keeps_the_approved_diff(tmp_path, tg, api):
    async with running_bot(tmp_path, tg, api) as bot:
        workspace = await warm_up(bot)
        target = workspace / "app.py"
        target.write_text("def main():\n    print('<hi>')  # ``` fence\n    return 0\n")
        api.enqueue(
            ScriptedTool("Read", {"file_path": str(target)}),
            ScriptedTool("Edit", {"file_path": str(target), "old_string": "'<hi>'", "new_string": "'<bye> 🎉'"}),
        )
        tg.push_text(OWNER, "edit app.py")
        message = await prompt(bot, "Claude wants to use Edit")

        [call] = [c for c in tg.calls_to("sendMessage") if "Claude wants to use Edit" in str(c.params.get("text"))]
        [pre] = [e for e in call.params["entities"] if e["type"] == "pre"]
        diff = entity_text(call.params["text"], pre)
        assert pre.get("language") == "diff"
        assert "-    print('<hi>')  # ``` fence\n+    print('<bye> 🎉')  # ``` fence\n     return 0" in diff
        assert f"edit {target} (+1 −1)" in (message.text or "")

        target.write_text(target.read_text().replace("return 0", "return 0  # touched meanwhile"))
        await press(bot, message, "Allow")
        edit = await edited_to(bot, "✅ Allowed")
        # The message keeps the diff the person approved, not one against the file as it is after the press.
        assert diff in edit["text"] and "touched meanwhile" not in edit["text"]
        await bot.reply_containing("tool said:", timeout=60)


async def test_a_long_write_in_a_forum_topic_is_cut_there_and_the_whole_diff_attached_there(tmp_path, tg, api):
    tg.make_forum(FORUM)
    topic = tg.open_topic(FORUM, "Build")
    async with running_bot(tmp_path, tg, api, ALLOWED_CHAT_IDS=str(FORUM)) as bot:
        tg.push_text(FORUM, "hello", user_id=OWNER, thread_id=topic)
        await bot.reply_containing("echo: hello", chat_id=FORUM, timeout=60)
        [info] = bot.manager.list_sessions()
        target = bot.settings.sessions_dir / info.name / "big.txt"
        content = "".join(f"line {n} <x>\n" for n in range(300))
        api.enqueue(ScriptedTool("Write", {"file_path": str(target), "content": content}))
        tg.push_text(FORUM, "write big", user_id=OWNER, thread_id=topic)

        document = await tg.wait_for("sendDocument", timeout=60)
        shown = await bot.reply_containing("Claude wants to use Write", chat_id=FORUM)
        assert "(3.7 KB, 300 lines)" in shown["text"] and "line 299" not in shown["text"]
        assert shown["message_thread_id"] == topic and document.params.get("message_thread_id") == topic
        [sent] = [m.document for m in tg.messages(FORUM) if m.document is not None]
        assert document.ok and sent.file_name == "big.txt.diff"
        assert "+line 299 <x>" in sent.content.decode()
