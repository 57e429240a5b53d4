"""Forum topics end to end (real PTB over the fake Bot API, real CLI): each topic has its own session and history,
every answer goes to its topic, /new in the General topic opens a topic, and Claude's own turns find their topic."""

from __future__ import annotations

from typing import Any

import pytest
from test_bot_claude_turns import background

from bot_harness import OWNER, RunningBot, running_bot
from fake_anthropic import Text
from fake_telegram import FakeBotAPI
from processes import long_command

pytestmark = pytest.mark.real_cli
FORUM = -100777
SENDS = ("sendMessage", "sendChatAction", "sendDocument", "sendPhoto", "sendMessageDraft")


async def ask(bot: RunningBot, chat_id: int, thread_id: int | None, text: str, expect: str) -> dict[str, Any]:
    """Send `text` in a topic (or the General topic) and wait for the bot's message there containing `expect`."""
    since = len(bot.tg.calls)
    bot.tg.push_text(chat_id, text, user_id=OWNER, thread_id=thread_id)
    call = await bot.tg.wait_for(
        "sendMessage",
        lambda p: p["chat_id"] == chat_id and expect in p.get("text", ""),
        since=since,
        timeout=60,
    )
    return call.params


def sends_to(tg: FakeBotAPI, chat_id: int) -> list[dict[str, Any]]:
    return [c.params for c in tg.calls if c.method in SENDS and c.ok and c.params.get("chat_id") == chat_id]


async def test_two_topics_keep_separate_histories_and_each_answer_carries_its_topics_thread(tmp_path, tg, api):
    tg.make_forum(FORUM)
    alpha, beta = tg.open_topic(FORUM, "Alpha plans"), tg.open_topic(FORUM, "Beta")
    async with running_bot(tmp_path, tg, api, ALLOWED_CHAT_IDS=str(FORUM)) as bot:
        first = await ask(bot, FORUM, alpha, "remember apples", "echo: remember apples")
        await ask(bot, FORUM, beta, "remember pears", "echo: remember pears")
        again_alpha = await ask(bot, FORUM, alpha, "what was it, alpha?", "echo: what was it, alpha?")
        again_beta = await ask(bot, FORUM, beta, "what was it, beta?", "echo: what was it, beta?")

        assert bot.manager.active_session(FORUM) is None  # nobody wrote in the General topic
        assert {info.name for info in bot.manager.list_sessions()} == {"alpha-plans", "beta"}

    assert (first["message_thread_id"], again_alpha["message_thread_id"]) == (alpha, alpha)
    assert again_beta["message_thread_id"] == beta
    notices = [p["text"] for p in sends_to(tg, FORUM) if "for this topic" in p.get("text", "")]
    assert len(notices) == 2 and "alpha-plans" in notices[0]
    # Every message and "typing…" went to a topic: none leaked into the General topic.
    assert all(p.get("message_thread_id") in (alpha, beta) for p in sends_to(tg, FORUM))
    asked = {r.last_user_text: r.user_texts for r in api.requests if not r.is_side}
    assert "remember apples" in asked["what was it, alpha?"]
    assert all("pears" not in text for text in asked["what was it, alpha?"])
    assert "remember pears" in asked["what was it, beta?"]
    assert all("apples" not in text for text in asked["what was it, beta?"])


async def test_new_in_the_general_topic_opens_a_topic_for_the_new_session(tmp_path, tg, api):
    tg.make_forum(FORUM)
    async with running_bot(tmp_path, tg, api, ALLOWED_CHAT_IDS=str(FORUM)) as bot:
        said = await ask(bot, FORUM, None, "/new research", "Opened the topic “research”")

        [created] = [c for c in tg.calls_to("createForumTopic") if c.ok]
        assert created.params["name"] == "research"
        [topic] = [thread for (chat, thread), name in tg.topics.items() if chat == FORUM and name == "research"]
        assert "message_thread_id" not in said  # the answer to /new, where it was asked
        there = await bot.reply_containing("New session “research”", chat_id=FORUM)
        assert there["message_thread_id"] == topic

        answer = await ask(bot, FORUM, topic, "first research question", "echo: first research question")
        assert answer["message_thread_id"] == topic
        assert bot.manager.active_session(FORUM) is None  # the General topic stays as it was
        assert {info.name for info in bot.manager.list_sessions()} == {"research"}

        # Where Telegram refuses a topic (no right to manage topics), /new works as before and says so.
        tg.fail_next("createForumTopic", 400, "Bad Request: not enough rights to create a topic")
        await ask(bot, FORUM, None, "/new plain", "Could not open a topic")
        await bot.reply_containing("New session “plain”", chat_id=FORUM)
        assert bot.manager.active_session(FORUM) == "plain"


async def test_claudes_own_turn_goes_to_its_topic_in_a_private_chat_with_topics(tmp_path, tg, api):
    tg.topics_enabled = True
    notes, chatter = tg.open_topic(OWNER, "Notes"), tg.open_topic(OWNER, "Chatter")
    api.enqueue(background(long_command(10), "short nap"), Text("started it"))
    async with running_bot(tmp_path, tg, api) as bot:
        await ask(bot, OWNER, notes, "/mode bypassPermissions confirm", "is now bypassPermissions")  # tools run unasked
        await ask(bot, OWNER, notes, "nap in the background", "started it")
        await ask(bot, OWNER, chatter, "meanwhile, hello", "echo: meanwhile, hello")  # the last to talk, elsewhere
        api.enqueue(Text("the nap is over"))

        header = await bot.reply_containing("Background task finished: short nap", timeout=60)
        follow_up = await bot.reply_containing("the nap is over", timeout=60)

    assert header["message_thread_id"] == notes and follow_up["message_thread_id"] == notes
    drafts = tg.drafts(OWNER)
    assert drafts and {d.params.get("message_thread_id") for d in drafts} <= {notes, chatter}
    assert all(p.get("message_thread_id") in (notes, chatter) for p in sends_to(tg, OWNER))


async def test_a_refused_new_in_the_general_topic_leaves_no_topic_behind(tmp_path, tg, api):
    tg.make_forum(FORUM)
    async with running_bot(tmp_path, tg, api, ALLOWED_CHAT_IDS=str(FORUM)) as bot:
        unknown = await ask(bot, FORUM, None, "/new research nosuchpersona", "Unknown persona 'nosuchpersona'")
        wrong = await ask(bot, FORUM, None, "/new a b c", "Usage:")

        assert not tg.calls_to("createForumTopic") and not tg.topics
        assert "message_thread_id" not in unknown and "message_thread_id" not in wrong
        assert bot.manager.list_sessions() == []
