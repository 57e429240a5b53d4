"""Process-wide plumbing shared by the front ends: logging that never shows the token, one instance per folder.

It knows the operating system and the logging module, nothing of sessions, Claude or Telegram.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import logging
import os
import re
import sys
from pathlib import Path
from typing import IO
from urllib.parse import quote

logger = logging.getLogger(__name__)

PR_SET_DUMPABLE = 4  # <linux/prctl.h>
PR_SET_CHILD_SUBREAPER = 36
# The user-info part of a URL (`https://user:pass@host`): anything between "//" and the first "@" of the authority.
_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@?#]+@")


class RedactingFormatter(logging.Formatter):
    """Formats a record, traceback and stack included, then blanks every occurrence of the secret.

    The bot token is part of every Bot API URL, and PTB puts it in some exception texts ("The token `…` was
    rejected"): redacting the finished text covers messages, arguments and tracebacks alike.
    """

    def __init__(self, fmt: str, secret: str, *others: str) -> None:
        super().__init__(fmt)
        self.secret = secret
        self.others = others

    def format(self, record: logging.LogRecord) -> str:
        text = redact(super().format(record), self.secret)
        for other in self.others:
            text = redact(text, other, "<secret>")
        return text


def redact(text: str, secret: str, label: str = "<token>") -> str:
    """`text` with the secret (and its URL-encoded form) replaced by `label`, and no password of any URL."""
    text = redact_url_credentials(text)
    if not secret:
        return text
    for form in {secret, quote(secret, safe="")}:
        text = text.replace(form, label)
    return text


def redact_url_credentials(text: str) -> str:
    """`text` with the user and password of every URL in it (`https://user:pass@host`) replaced by `***`."""
    return _URL_CREDENTIALS.sub(r"\1***@", text)


def setup_logging(level: str, secret: str = "", *others: str) -> None:
    """Log to stderr (journald keeps it) through the redacting formatter; quiet the chatty libraries.

    `others`: more secrets (TRANSCRIBE_API_KEY) blanked as `<secret>`; URL passwords are always blanked.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter("%(levelname)s %(name)s: %(message)s", secret, *others))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


def protect_process() -> None:
    """Private files (umask 077) and a non-dumpable process.

    Tools Claude runs execute as the bot's user and could read /proc/<bot pid>/environ (the token) or attach a
    debugger; PR_SET_DUMPABLE=0 makes those root-only. The CLI children get the flag reset by execve.
    """
    os.umask(0o077)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
            logger.warning("could not make the bot process non-dumpable (errno %d)", ctypes.get_errno())
    except (OSError, AttributeError) as exc:  # not Linux
        logger.warning("could not make the bot process non-dumpable: %s", exc)


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


# The bot's children asyncio waits for (live CLIs, a reload's check of new code): never reaped by the subreaper's
# sweep, or asyncio loses their exit code, and never taken for a crashed CLI's orphans.
SPAWNED: set[int] = set()

_LIBC = _libc()  # loaded once: become_subreaper also runs in a forked child, where loading is not safe


def become_subreaper() -> bool:
    """Make this process the reaper of its orphaned descendants (Linux; False elsewhere or if refused).

    A tool that detaches (`setsid … &`) is then re-parented to us instead of init, so it stays findable and can be
    stopped; the attribute survives execve, so a CLI started with it keeps its tools' orphans in its own tree.
    """
    prctl = getattr(_LIBC, "prctl", None)
    return prctl is not None and prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


def take_instance_lock(sessions_dir: Path) -> IO[str] | None:
    """One bot per sessions directory: two pollers on one token fight (409 Conflict) and share processes."""
    sessions_dir.mkdir(parents=True, exist_ok=True)
    handle = open(sessions_dir / ".bot.lock", "a+")  # noqa: SIM115 - held open for the life of the process
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        owner = handle.read().strip() or "unknown"
        logger.error(
            "another instance of the bot (pid %s) is already running with sessions in %s; stop it first "
            "(two copies polling one token fail with 409 Conflict)",
            owner,
            sessions_dir,
        )
        handle.close()
        return None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def cannot_write(exc: OSError) -> str:
    """Why the bot could not write its own files, in words: a full disk, a read-only or forbidden folder."""
    where = f" ({exc.filename})" if exc.filename else ""
    if exc.errno == errno.ENOSPC:
        return f"the disk is full{where}"
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"the bot cannot write its state{where}: {exc.strerror}"
    return f"the bot could not write its state{where}: {exc.strerror or exc}"
