"""The pid file of a live CLI: pid, start time (from /proc/<pid>/stat) and marker, so a reused pid is never killed.

The process layer writes the pid file on every spawn (live.py); reaping (the sessions layer at start-up)
compares both facts before killing.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from claude_bridge.process.argv import MARKER_ENV


@dataclass(frozen=True)
class PidRecord:
    """What a pid file says; start_time and marker are None in a file of the older `<pid>` form."""

    pid: int
    start_time: int | None = None
    marker: str | None = None


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/<pid>/stat), or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces: split after its last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[19])


def marker_of(pid: int) -> str | None:
    """The bot's marker in the process's environment, or None."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    prefix = MARKER_ENV.encode() + b"="
    return next((e[len(prefix) :].decode("utf-8", "replace") for e in environ if e.startswith(prefix)), None)


def write(path: Path, pid: int, marker: str | None = None) -> PidRecord:
    """Record a live CLI: atomically (temp file + rename), raising OSError (ENOSPC, EROFS…) to the caller."""
    record = PidRecord(pid, start_time(pid), marker if marker is not None else marker_of(pid))
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps({"pid": record.pid, "start_time": record.start_time, "marker": record.marker}))
    os.replace(tmp, path)
    return record


def read(path: Path) -> PidRecord | None:
    """The record in a pid file (either form), or None if it is missing or unreadable."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    if text.isdigit():
        return PidRecord(int(text))
    try:
        raw = json.loads(text)
        pid, started, marker = raw["pid"], raw.get("start_time"), raw.get("marker")
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    if not isinstance(pid, int) or pid <= 0:
        return None
    return PidRecord(pid, started if isinstance(started, int) else None, marker if isinstance(marker, str) else None)


def still_ours(record: PidRecord) -> bool:
    """True only if the pid still runs the very process recorded: same start time and same marker.

    A record of the older form (pid only) cannot be checked here; the caller falls back to its cmdline check.
    """
    if record.start_time is None or record.marker is None:
        return True
    return start_time(record.pid) == record.start_time and marker_of(record.pid) == record.marker
