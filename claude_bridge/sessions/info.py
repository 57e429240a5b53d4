"""What a session is, as facts for the front ends: SessionInfo, which the command layer puts into words."""

from __future__ import annotations

from dataclasses import dataclass

from claude_bridge.protocol.claude_schedules import ClaudeSchedule
from claude_bridge.protocol.events import TaskInfo
from claude_bridge.sessions.session import Session, SessionState


@dataclass(frozen=True)
class SessionInfo:
    """The facts about a session; the command layer words them for /sessions and /status."""

    name: str
    state: SessionState
    queued: int
    persona: str
    model: str
    model_override: str | None
    permission_mode: str
    last_active: float
    turns: int
    total_cost_usd: float
    claude_session_id: str
    last_timings: dict[str, float | None]
    pid: int | None
    damage: str | None = None  # "damaged: <file>: <reason>" when its state cannot be read
    instance: str = ""  # tells this session apart from an earlier one of the same name
    tasks: tuple[TaskInfo, ...] = ()  # background tasks running now
    claude_schedules: tuple[ClaudeSchedule, ...] = ()  # Claude's own crons and wakeups still to fire
    workspace: str = ""  # the folder Claude works in
    project: bool = False  # the workspace is the user's own folder (never removed), not one the bot made


def info_of(session: Session) -> SessionInfo:
    """The facts about one session now."""
    meta = session.meta
    return SessionInfo(
        name=meta.name,
        state=session.state,
        queued=session.worker.queued,
        persona=meta.persona,
        model=session.effective_model() or "CLI default",
        model_override=meta.model,
        permission_mode=session.permission_mode(),
        last_active=meta.last_active,
        turns=meta.turns,
        total_cost_usd=meta.total_cost_usd,
        claude_session_id=meta.claude_session_id if meta.claude_session_id != "unknown" else "",
        last_timings=dict(meta.last_timings),
        pid=session.process.pid if session.process is not None and session.live else None,
        damage=session.damage,
        instance=meta.instance,
        tasks=session.running_tasks,
        claude_schedules=session.claude_schedules,
        workspace=str(session.directory),
        project=not meta.created_workspace and not session.damage,
    )
