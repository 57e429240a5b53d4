"""Project folders: which folder `/new <name> <folder>` may give a session's Claude, and why another is refused.

Paths only: a folder is allowed when it exists and lies inside one of PROJECT_ROOTS after symlinks are resolved.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from claude_bridge.errors import SessionError
from claude_bridge.sessions.file_policy import holds_the_bot


def looks_like_folder(arg: str) -> bool:
    """A /new argument that names a folder rather than a persona (persona names never hold '/', '~' or '.')."""
    return "/" in arg or arg.startswith(("~", "."))


def project_folder(
    folder: str, roots: Sequence[Path], home: Path, forbidden: Mapping[Path, str] | None = None
) -> Path:
    """The resolved folder for `folder` (absolute, `~/…`, or relative to the first root); SessionError says why not.

    `forbidden` are folders (and what each is) no project may be, lie in, or contain: the bot's own folder and
    SESSIONS_DIR hold its .env and every session's state, which Claude must not be able to read or change.
    """
    raw = folder.strip()
    if not roots:
        raise SessionError("No project folders are allowed: set PROJECT_ROOTS to the folders sessions may work in.")
    if not raw or "\0" in raw:
        raise SessionError(f"{folder!r} is not a folder name.")
    if raw == "~" or raw.startswith("~/"):
        path = home / raw[2:]
    elif raw.startswith("~"):
        raise SessionError(f"{raw}: only ~/… (your own home) is understood; give the full path instead.")
    else:
        path = Path(raw) if Path(raw).is_absolute() else roots[0] / raw
    try:
        real = path.resolve(strict=True)
    except FileNotFoundError:
        raise SessionError(f"There is no folder {path}.") from None
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop
        raise SessionError(f"Cannot use {path}: {exc}") from exc
    if not real.is_dir():
        raise SessionError(f"{path} is a file, not a folder.")
    allowed = [root.resolve() for root in roots]
    if not any(real.is_relative_to(root) for root in allowed):
        where = real if real != path else path
        raise SessionError(
            f"{where} is outside the project folders ({', '.join(map(str, allowed))}); "
            "PROJECT_ROOTS says which folders sessions may use."
        )
    why = holds_the_bot(real, {other.resolve(): what for other, what in (forbidden or {}).items()})
    if why:
        raise SessionError(f"{why}, which holds the bot's .env or its sessions' state; pick a project folder.")
    return real
