"""Abuse and damage: strangers, hostile names and uploads, a broken persona, a damaged state file, a disk that
refuses writes."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot_harness import OWNER, STRANGER, running_bot
from claude_bridge.sessions.inbox import Inbox
from conftest import ROOT
from fake_anthropic import FakeAnthropic
from fake_telegram import FakeBotAPI
from faults.conftest import FAULTS, Case
from faults.helpers import say, unanswered

pytestmark = FAULTS
GROUP = -100321


async def test_strangers_on_every_update_type(
    tmp_path: Path, fakes: tuple[FakeBotAPI, FakeAnthropic], case: Case
) -> None:
    """A stranger sends every kind of update (text, command, edit, button, file, photo, voice, audio, group)."""
    tg, api = fakes
    async with running_bot(tmp_path, tg, api) as bot:
        await say(bot, "owner first", "echo: owner first")
        sent = tg.push_text(STRANGER, "secret-text please", user_id=STRANGER)
        tg.push_text(STRANGER, "/new secret-session", user_id=STRANGER)
        tg.push_edited_text(STRANGER, sent, "secret-edit", user_id=STRANGER)
        tg.push_callback(STRANGER, STRANGER, "/delete default confirm", message_id=1)
        tg.push_callback(OWNER, STRANGER, "/delete default confirm", message_id=1)  # a stranger's button in our chat
        tg.push_document(STRANGER, STRANGER, "secret-file.sh", b"rm -rf /", caption="secret-caption")
        tg.push_photo(STRANGER, STRANGER, b"\xff\xd8secret-photo")
        tg.push_voice(STRANGER, STRANGER, b"OggSsecret-voice")
        tg.push_audio(STRANGER, STRANGER, "secret-song.mp3", b"ID3secret-audio")
        tg.push_text(GROUP, "secret-group @fake_bot", user_id=STRANGER, chat_type="supergroup")
        tg.push_text(OWNER, "secret-in-owner-chat", user_id=STRANGER)  # a forged private chat: not the sender's own
        tg.push_update({"channel_post": {"message_id": 1, "date": 0, "text": "secret-channel",
                                         "chat": {"id": -100999, "type": "channel", "title": "c"}}})
        await say(bot, "owner last", "echo: owner last")
        case.seen([t for t in bot.texts(STRANGER)] + [f"(owner) {t}" for t in bot.texts()])
    leaks = [f"Claude saw {r.last_user_text!r}" for r in api.requests if any("secret" in t for t in r.user_texts)]
    leaks += [f"file written: {p}" for p in (tmp_path / "sessions").rglob("*secret*")]
    leaks += [f"message to the group: {t}" for t in bot.texts(GROUP)]
    refusals = bot.texts(STRANGER)
    leaks += [] if len(refusals) <= 1 else [f"{len(refusals)} refusals (spam)"]
    assert bot.manager.exists("default") and refusals and "private bot" in refusals[0]
    case.measured(leaks + unanswered(bot.texts(), ["owner first", "owner last"]),
                  "12 updates from user 999: private, group, forged chat, channel, callbacks, media")


BAD_NAMES = ["../escape", "a/b", ".bot", ".", "..", "x" * 300, "-rf", "con\u202eexe", "new\nline", "/etc", "~root"]


def payloads_outside(root: Path, files_dir: Path) -> list[Path]:
    """Uploaded files (by their content) anywhere under `root` but not in `files_dir`."""
    return [p for p in root.rglob("*") if p.is_file() and p.read_bytes().startswith(b"payload for")
            and files_dir not in p.parents]


async def test_bad_session_names_paths_and_uploads(
    tmp_path: Path, fakes: tuple[FakeBotAPI, FakeAnthropic], case: Case
) -> None:
    """Hostile session names in /new, /switch, /delete, and uploads with hostile file names."""
    tg, api = fakes
    silent: list[str] = []
    async with running_bot(tmp_path, tg, api) as bot:
        await say(bot, "hello", "echo: hello")
        for verb in ("/new", "/switch", "/delete"):
            for name in BAD_NAMES:
                since = len(tg.calls)
                tg.push_text(OWNER, f"{verb} {name}")
                try:
                    await tg.wait_for("sendMessage", lambda p: p["chat_id"] == OWNER, since=since, timeout=15)
                except TimeoutError:
                    silent.append(f"{verb} {name!r} got no reply")
        uploads = ["../../escape-upload.sh", "/etc/escape-abs.conf", "..", ".bashrc", "a\\..\\b.txt", "y" * 300]
        for file_name in uploads:
            since = len(tg.calls)
            tg.push_document(OWNER, OWNER, file_name, b"payload for " + file_name.encode(), caption="upload")
            try:
                await tg.wait_for("sendMessage", lambda p: p["chat_id"] == OWNER and "Queued" not in str(p.get("text"))
                                  and "echo:" in str(p.get("text")), since=since, timeout=60)
            except TimeoutError:
                silent.append(f"upload {file_name[:40]!r} got no answer")
        case.seen(bot.texts())
        sessions = {s.name for s in bot.manager.list_sessions()}
    files_dir = tmp_path / "sessions/default/files"
    lost = silent + [f"escaped the files folder: {p}" for p in payloads_outside(tmp_path, files_dir)]
    lost += [f"odd session created: {n!r}" for n in sessions - {"default"}]
    assert len(payloads_outside(tmp_path, tmp_path / "elsewhere")) == len(uploads)  # each upload saved once
    case.measured(lost, f"{len(BAD_NAMES)} names × /new /switch /delete; {len(uploads)} hostile upload names")


def broken_personas(personas: Path) -> Path:
    """The shipped personas plus four broken files."""
    shutil.copytree(ROOT / "personas", personas)
    (personas / "broken.json").write_text('{"name": "broken", "system_prompt": ')
    (personas / "binary.json").write_bytes(b"\xff\xfe\x00garbage")
    (personas / "types.json").write_text('{"name": 5, "system_prompt": ["x"]}')
    (personas / "nul.json").write_text('{"name": "nul", "description": "d", "system_prompt": "be\\u0000 nice"}')
    return personas


async def test_a_broken_persona_file(tmp_path: Path, fakes: tuple[FakeBotAPI, FakeAnthropic], case: Case) -> None:
    """The personas folder holds broken files: not JSON, binary, wrong types, a NUL in the prompt."""
    tg, api = fakes
    personas = broken_personas(tmp_path / "personas")
    async with running_bot(tmp_path, tg, api, PERSONAS_DIR=str(personas)) as bot:
        await say(bot, "hello", "echo: hello")
        await say(bot, "/new p1 broken", "broken")
        await say(bot, "/new p2 nul", "")
        reply = await say(bot, "after the nul persona", "")  # the first thing the bot says to it
        await say(bot, "/switch default", "default")
        await say(bot, "still fine", "echo: still fine")
        case.seen(bot.texts())
    lost = unanswered(bot.texts(), ["hello", "still fine"])
    lost += [] if "NUL byte" in reply else [f"the NUL persona: the message got {reply!r}, not why Claude cannot start"]
    case.measured(lost, "PERSONAS_DIR with broken.json (torn), binary.json, types.json, nul.json")


def damage(path: Path) -> None:
    path.write_bytes(b"\x00garbage{{{")


async def test_a_damaged_state_file(tmp_path: Path, fakes: tuple[FakeBotAPI, FakeAnthropic], case: Case) -> None:
    """The active session's metadata.json is garbage when the bot starts."""
    tg, api = fakes
    async with running_bot(tmp_path, tg, api) as bot:
        await say(bot, "/new work", "work")
        await say(bot, "before the damage", "echo: before the damage")
    damage(tmp_path / "sessions/.bot/sessions/work/metadata.json")
    async with running_bot(tmp_path, tg, api) as bot:
        since = len(tg.calls)
        tg.push_text(OWNER, "to the damaged session")
        reply = await tg.wait_for("sendMessage", lambda p: p["chat_id"] == OWNER, since=since, timeout=30)
        listing = await say(bot, "/sessions", "work")
        await say(bot, "/new fresh", "fresh")
        await say(bot, "after the damage", "echo: after the damage")
        case.seen(bot.texts())
    told = "metadata.json" in str(reply.params["text"]) or "damaged" in str(reply.params["text"]).lower()
    lost = [] if told or "echo: to the damaged" in str(reply.params["text"]) else [
        f"'to the damaged session': answered {reply.params['text']!r}"]
    assert "damaged" in listing.lower() or "metadata.json" in listing, listing
    case.measured(lost + unanswered(bot.texts(), ["after the damage"]),
                  "sessions/.bot/sessions/work/metadata.json overwritten with garbage between two runs")


def can_mount() -> bool:
    """Whether this process may really mount a tmpfs (root in a container often may not): try one."""
    if shutil.which("mount") is None:
        return False
    with tempfile.TemporaryDirectory() as probe:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", probe], capture_output=True)
        if mounted.returncode != 0:
            return False
        subprocess.run(["umount", probe], check=True)
    return True


def refuses_writes(folder: Path) -> bool:
    """Whether the fault took effect: a new 4 KiB file in `folder` is refused."""
    try:
        with (folder / "probe").open("wb") as handle:
            handle.write(b"\0" * 4096)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError:
        return True
    (folder / "probe").unlink()
    return False


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[None]:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def remount(path: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(path)], check=True)


def fill(filler: Path) -> None:
    """Write zeros until the file system says it is full."""
    with contextlib.suppress(OSError), filler.open("wb") as handle:
        while True:
            handle.write(b"\0" * 65536)
            handle.flush()


@pytest.mark.parametrize("fault", ["read-only", "full"])
async def test_a_read_only_or_full_sessions_folder(
    tmp_path: Path, fakes: tuple[FakeBotAPI, FakeAnthropic], case: Case, fault: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sessions folder becomes read-only / full while the bot runs; then it is fixed."""
    tg, api = fakes
    case.title = f"The sessions folder becomes {fault} while the bot runs; then it is fixed."
    sessions = tmp_path / "sessions"
    real = can_mount()
    with tmpfs(sessions, "4m") if real else contextlib.nullcontext():
        async with running_bot(tmp_path, tg, api) as bot:
            await say(bot, "before", "echo: before")
            filler = sessions / "filler"
            refusals: list[str] = []
            if real and fault == "read-only":
                remount(sessions, "ro")
            elif real:
                fill(filler)
            else:
                code = errno.EROFS if fault == "read-only" else errno.ENOSPC

                def refuse(self: Inbox, record: object) -> None:
                    refusals.append(str(self.path))
                    raise OSError(code, os.strerror(code), str(self.path))

                monkeypatch.setattr(Inbox, "_append", refuse)
            took_effect = refuses_writes(sessions) if real else None
            refused = await say(bot, "while it is broken", "")
            took_effect = took_effect if real else bool(refusals)
            if real and fault == "read-only":
                remount(sessions, "rw")
            elif real:
                filler.unlink(missing_ok=True)
            else:
                monkeypatch.undo()
            await say(bot, "after the fix", "echo: after the fix")
            case.seen(bot.texts())
    assert took_effect, f"the {fault} fault never took effect: the sessions folder still took writes"
    lost = unanswered(bot.texts(), ["before", "after the fix"])
    # The user must learn that this message was not kept and must be sent again (not a bare "internal error"). On a
    # full disk the inbox may still take it in the room left in its last block: then it is kept and answered.
    answered = refused.startswith("echo:") and "while it is broken" in refused
    if not answered and ("not saved" not in refused or "send it again" not in refused.lower()):
        lost.append(f"'while it is broken': the user saw only {refused!r}")
    how = "a 4 MB tmpfs " + ("remounted ro" if fault == "read-only" else "filled up") if real else \
        f"injected OSError({'EROFS' if fault == 'read-only' else 'ENOSPC'}) at the inbox write (no mount here)"
    case.measured(lost, how)
