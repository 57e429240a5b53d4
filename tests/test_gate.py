"""Who gets through the gate: allowed users in private chats and listed groups; nobody else, whatever the update."""

from __future__ import annotations

from typing import Any

import pytest
from telegram import Update

from claude_bridge.errors import ConfigError
from claude_bridge.settings import Settings, load_settings
from claude_bridge.telegram.gate import ALLOWED_UPDATES, Refusals, verdict

pytestmark = pytest.mark.fast

OWNER, STRANGER, LISTED, UNLISTED = 111, 999, -1001234567890, -100555
SETTINGS = Settings(telegram_token="1:x", allowed_user_ids=frozenset({OWNER}), allowed_chat_ids=frozenset({LISTED}))


def chat(chat_id: int) -> dict[str, Any]:
    kind = "private" if chat_id > 0 else "supergroup"
    return {"id": chat_id, "type": kind} | ({"first_name": "a"} if kind == "private" else {"title": "team"})


def message(chat_id: int, user_id: int, **extra: Any) -> dict[str, Any]:
    sender = {"id": user_id, "is_bot": False, "first_name": "u"}
    return {"message_id": 1, "date": 0, "chat": chat(chat_id), "from": sender, "text": "hi"} | extra


def update(**kinds: Any) -> Update:
    return Update.de_json({"update_id": 1, **kinds}, None)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"message": message(OWNER, OWNER)}, "ok"),
        ({"edited_message": message(OWNER, OWNER)}, "ok"),
        ({"message": message(STRANGER, STRANGER)}, "stranger"),
        ({"message": message(LISTED, OWNER)}, "ok"),
        ({"message": message(UNLISTED, OWNER)}, "unlisted-chat"),
        ({"message": message(LISTED, STRANGER)}, "stranger"),
        ({"message": message(OWNER, OWNER, business_connection_id="bc1")}, "ignore"),
        ({"business_message": message(OWNER, OWNER, business_connection_id="bc1")}, "ignore"),
        ({"channel_post": message(LISTED, OWNER)}, "ignore"),
        ({"stopped_message_generation": {"chat": chat(OWNER), "draft_id": 5}}, "ok"),
        ({"stopped_message_generation": {"chat": chat(STRANGER), "draft_id": 5}}, "ignore"),
    ],
)
def test_the_gate_lets_through_only_allowed_users_in_allowed_chats(raw: dict[str, Any], expected: str) -> None:
    assert verdict(update(**raw), SETTINGS) == expected


def test_a_private_chat_must_be_the_senders_own() -> None:
    assert verdict(update(message=message(STRANGER, OWNER)), SETTINGS) == "ignore"


def test_business_and_channel_updates_are_not_subscribed_to() -> None:
    assert not {"business_message", "business_connection", "channel_post", "edited_channel_post"} & set(ALLOWED_UPDATES)


def test_refusal_times_are_remembered_once_a_minute_and_bounded() -> None:
    now = [0.0]
    refusals = Refusals(clock=lambda: now[0], size=3)
    assert refusals.due(1) and not refusals.due(1)
    now[0] = 61.0
    assert refusals.due(1)
    for stranger in range(100, 200):
        refusals.due(stranger)
    assert len(refusals) == 3


@pytest.mark.parametrize("bad", ["-5", "0", "12a", "²", "1.5", "0x10", "١٢٣"])
def test_allowed_user_ids_are_ascii_digits_above_zero(bad: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"TELEGRAM_BOT_TOKEN": "1:x", "ALLOWED_USER_IDS": f"111,{bad}"}, dotenv_path=None)
    assert f"ALLOWED_USER_IDS: {bad!r}" in str(caught.value)


def test_allowed_chat_ids_take_group_ids() -> None:
    env = {"TELEGRAM_BOT_TOKEN": "1:x", "ALLOWED_USER_IDS": "111", "ALLOWED_CHAT_IDS": "-1001234567890, -42"}
    assert load_settings(env, dotenv_path=None).allowed_chat_ids == {-1001234567890, -42}
    with pytest.raises(ConfigError, match="ALLOWED_CHAT_IDS: 'team'"):
        load_settings(env | {"ALLOWED_CHAT_IDS": "team"}, dotenv_path=None)


def test_the_time_zone_is_tz_else_this_machines_and_a_bad_name_is_refused() -> None:
    env = {"TELEGRAM_BOT_TOKEN": "1:x", "ALLOWED_USER_IDS": "111"}
    assert str(load_settings(env | {"TZ": "Europe/Berlin"}, dotenv_path=None).time_zone) == "Europe/Berlin"
    assert load_settings(env, dotenv_path=None).time_zone is not None
    with pytest.raises(ConfigError, match="TZ='Mars/Olympus'"):
        load_settings(env | {"TZ": "Mars/Olympus"}, dotenv_path=None)
