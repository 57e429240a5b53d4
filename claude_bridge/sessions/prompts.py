"""Claude asking the human: tool approvals, AskUserQuestion and ExitPlanMode as Prompts that wait for an answer.

A Prompt holds what is asked and the CLI's pending answer; the PromptBoard keeps the waiting ones by short id,
tells the front end about every change, reminds once and (if set) denies after a timeout. No Telegram here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from claude_bridge.protocol.events import PermissionRequest, ToolUse
from claude_bridge.protocol.messages import allow, deny
from claude_bridge.protocol.permissions import parse_suggestions, update_json
from claude_bridge.sessions.approvals import Action, Offer, offer_for, offers
from claude_bridge.sessions.place import Place, Where

logger = logging.getLogger(__name__)

ASK_TOOL = "AskUserQuestion"
PLAN_TOOL = "ExitPlanMode"
DENIED = "The user denied this tool use."  # from Telegram or the console: the prompt does not know which
KEEP_PLANNING = "The user wants to keep planning: do not start yet, refine the plan."
REMEMBERED_TOOL_USES = 64


class PromptKind(StrEnum):
    TOOL = "tool"
    QUESTION = "question"
    PLAN = "plan"


class PromptState(StrEnum):
    WAITING = "waiting"
    ANSWERED = "answered"
    CANCELLED = "cancelled"  # /stop, the CLI withdrew it, the session stopped
    TIMED_OUT = "timed out"


@dataclass(frozen=True)
class Question:
    """One AskUserQuestion question: its options' labels (and descriptions)."""

    text: str
    header: str
    options: tuple[str, ...]
    descriptions: tuple[str, ...]
    multi: bool

    @classmethod
    def of(cls, raw: Mapping[str, Any]) -> Question:
        options = [o for o in raw.get("options") or [] if isinstance(o, Mapping)]
        return cls(
            text=str(raw.get("question", "")),
            header=str(raw.get("header", "")),
            options=tuple(str(o.get("label", "")) for o in options),
            descriptions=tuple(str(o.get("description", "")) for o in options),
            multi=bool(raw.get("multiSelect")),
        )


@dataclass
class Prompt:
    """One question of Claude's process waiting for the human; `outcome` says in words what was decided."""

    id: str
    session: str
    chat_id: int
    kind: PromptKind
    request: PermissionRequest
    offers: tuple[Offer, ...] = ()  # a tool approval's answers (Allow, Always <rule>, all edits, …, Deny)
    chosen: Offer | None = None  # the offer taken, once answered
    plan: str = ""
    questions: tuple[Question, ...] = ()
    state: PromptState = PromptState.WAITING
    outcome: str = ""
    reminded: bool = False
    answers: dict[int, str] = field(default_factory=dict)
    thread_id: int | None = None  # the forum topic it is shown in
    toggled: dict[int, set[int]] = field(default_factory=dict)
    answer: asyncio.Future[dict[str, Any]] = field(default_factory=lambda: asyncio.get_running_loop().create_future())

    @property
    def waiting(self) -> bool:
        return self.state == PromptState.WAITING

    @property
    def place(self) -> Place:
        """Where the prompt is shown, and the only place it is answered from."""
        return Place(self.chat_id, self.thread_id)

    @property
    def current_question(self) -> int:
        """The first question without an answer (questions are answered in order)."""
        return next((i for i in range(len(self.questions)) if i not in self.answers), len(self.questions))

    def _close(self, state: PromptState, outcome: str, response: dict[str, Any] | None) -> None:
        self.state = state
        self.outcome = outcome
        if response is not None and not self.answer.done():
            self.answer.set_result(response)

    # -- what the human can do; each returns False when the prompt no longer waits --

    def allow(self) -> bool:
        if not self.waiting:
            return False
        if self.kind == PromptKind.PLAN:
            self._close(PromptState.ANSWERED, "✅ Plan approved", allow(self.request.input))
        else:
            self._close(PromptState.ANSWERED, "✅ Allowed", allow(self.request.input))
        return True

    def take(self, action: str) -> bool:
        """A tool approval's offer beyond Allow/Deny: it sends only the permission updates that offer names."""
        offer = offer_for(action, self.offers) if self.waiting else None
        if offer is None or offer.action in (Action.ALLOW, Action.DENY):
            return False
        self.chosen = offer
        updates: list[Mapping[str, Any]] = [update_json(update) for update in offer.updates]
        self._close(PromptState.ANSWERED, _outcome(offer), allow(self.request.input, updates))
        return True

    def deny(self, message: str = "") -> bool:
        """Deny; `message` (a typed reply) reaches Claude as the reason."""
        if not self.waiting:
            return False
        if self.kind == PromptKind.PLAN:
            outcome = f"📝 Sent back with feedback: {message}" if message else "📝 Keep planning"
            self._close(PromptState.ANSWERED, outcome, deny(message or KEEP_PLANNING))
        else:
            outcome = f"🚫 Denied: {message}" if message else "🚫 Denied"
            self._close(PromptState.ANSWERED, outcome, deny(message or DENIED))
        return True

    def choose(self, question: int, option: int) -> bool:
        """Pick an option: a single-choice question is answered, a multi-select one toggles it."""
        if not self._asks(question) or not 0 <= option < len(self.questions[question].options):
            return False
        if self.questions[question].multi:
            picked = self.toggled.setdefault(question, set())
            picked.symmetric_difference_update({option})
            return True
        return self._answered(question, self.questions[question].options[option])

    def done(self, question: int) -> bool:
        """Finish a multi-select question with the toggled options."""
        if not self._asks(question):
            return False
        labels = self.questions[question].options
        return self._answered(question, ", ".join(labels[i] for i in sorted(self.toggled.get(question, ()))))

    def _asks(self, question: int) -> bool:
        """The prompt waits for this question's answer now (a tool or plan prompt asks none)."""
        return self.waiting and question == self.current_question < len(self.questions)

    def typed(self, text: str) -> bool:
        """A typed reply: a question's "Other" answer, a plan's feedback, a tool's denial with the reason."""
        if not self.waiting:
            return False
        if self.kind == PromptKind.QUESTION:
            return self._answered(self.current_question, text)
        return self.deny(text)

    def _answered(self, question: int, text: str) -> bool:
        self.answers[question] = text
        if len(self.answers) < len(self.questions):
            return True
        answers = {self.questions[i].text: self.answers[i] for i in range(len(self.questions))}
        summary = "; ".join(f"{q.text} → {answers[q.text]}" for q in self.questions)
        self._close(PromptState.ANSWERED, f"✅ Answered: {summary}", allow({**self.request.input, "answers": answers}))
        return True

    def cancel(self, why: str) -> bool:
        """Nobody waits for this any more (/stop, the CLI withdrew it): deny, in case the CLI still listens."""
        if not self.waiting:
            return False
        # With interrupt the CLI ends the turn at once; a plain denial would reach the model, whose answer to it
        # would then be taken for the answer to the next message (measured on 2.1.197 and 2.1.332).
        self._close(PromptState.CANCELLED, f"⏹ Cancelled ({why})", deny(f"Cancelled: {why}", interrupt=True))
        return True

    def time_out(self, minutes: float) -> bool:
        if not self.waiting:
            return False
        text = f"No answer within {minutes:g} minutes"
        answer = deny(f"{text}; the user did not answer.", interrupt=True)  # the turn ends here, as with /stop
        self._close(PromptState.TIMED_OUT, f"⌛ {text}: denied, the turn stopped", answer)
        return True


def _outcome(offer: Offer) -> str:
    if offer.action == Action.ALWAYS:
        rules = ", ".join(rule.text for rule in offer.rules)
        return f"✅ Always allowed {rules} in this project (/permissions lists and removes rules)"
    if offer.action == Action.EDITS:
        return f"✅ Allowed; file edits run unasked in this session from now on (/mode: {offer.mode})"
    return f"✅ Allowed, with {', '.join(offer.directories)} for this session"


Listener = Callable[[Prompt], None]


class PromptBoard:
    """Every waiting prompt of every session, by short id; the front end's `listener` hears each change."""

    def __init__(
        self, listener: Listener | None = None, *, remind_after: float = 600.0, timeout: float | None = None
    ) -> None:
        self.remind_after = remind_after
        self.timeout = timeout  # seconds; None = wait for ever
        self.listener = listener
        self._prompts: dict[str, Prompt] = {}
        self._tool_uses: dict[str, ToolUse] = {}
        self._seen = asyncio.Condition()
        self._frozen = False  # a reload hands the waiting prompts over: a cancel then is not the prompt's end
        self._reattach: dict[str, str] = {}  # after a reload: the CLI's request id → the id its prompt had

    # -- what Claude asked: the plan text lives in the assistant's tool_use block (§16.3) --

    async def saw(self, event: ToolUse) -> None:
        """Remember a tool_use block (a few dozen, newest last) so a request can find its input."""
        async with self._seen:
            self._tool_uses[event.id] = event
            while len(self._tool_uses) > REMEMBERED_TOOL_USES:
                del self._tool_uses[next(iter(self._tool_uses))]
            self._seen.notify_all()

    async def tool_use(self, tool_use_id: str, wait: float = 2.0) -> ToolUse | None:
        """The tool_use block with this id; its line comes before the request, but our reader may lag a little."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait), self._seen:
                await self._seen.wait_for(lambda: tool_use_id in self._tool_uses)
        return self._tool_uses.get(tool_use_id)

    async def prompt_for(self, request: PermissionRequest, session: str, where: Where) -> Prompt:
        """The Prompt for one permission request of the CLI's."""
        place = Place.of(where)

        def prompt(kind: PromptKind, **fields: Any) -> Prompt:
            prompt_id = self._reattach.pop(request.request_id, None) or self._new_id()
            return Prompt(prompt_id, session, place.chat_id, kind, request, thread_id=place.thread_id, **fields)

        if request.tool_name == ASK_TOOL:
            questions = tuple(Question.of(q) for q in request.input.get("questions") or [] if isinstance(q, Mapping))
            return prompt(PromptKind.QUESTION, questions=questions)
        if request.tool_name == PLAN_TOOL:
            plan = str(request.input.get("plan") or "")
            if not plan and request.tool_use_id:
                seen = await self.tool_use(request.tool_use_id)
                plan = str(seen.input.get("plan") or "") if seen else ""
            return prompt(PromptKind.PLAN, plan=plan or "(no plan text)")
        return prompt(PromptKind.TOOL, offers=offers(request.tool_name, parse_suggestions(request.suggestions)))

    def _new_id(self) -> str:
        # Random, not counted: a button from before a restart must never hit a new prompt.
        while (prompt_id := secrets.token_urlsafe(6)) in self._prompts:
            pass
        return prompt_id

    # -- waiting --

    async def ask(self, prompt: Prompt) -> dict[str, Any]:
        """Show the prompt and wait for its answer; a cancel (control_cancel_request, shutdown) marks it cancelled."""
        self._prompts[prompt.id] = prompt
        logger.info("session %s: prompt %s (%s %s)", prompt.session, prompt.id, prompt.kind, prompt.request.tool_name)
        self.changed(prompt)
        try:
            return await self._wait(prompt)
        except asyncio.CancelledError:
            if not self._frozen and prompt.cancel("Claude no longer waits for it"):
                self.changed(prompt)
            raise
        finally:
            self._prompts.pop(prompt.id, None)

    async def _wait(self, prompt: Prompt) -> dict[str, Any]:
        waited = 0.0
        if self.timeout is None or self.remind_after < self.timeout:
            with contextlib.suppress(TimeoutError):
                return await asyncio.wait_for(asyncio.shield(prompt.answer), self.remind_after)
            waited = self.remind_after
            if prompt.waiting:
                prompt.reminded = True
                self.changed(prompt)
        if self.timeout is None:
            return await prompt.answer
        with contextlib.suppress(TimeoutError):
            return await asyncio.wait_for(asyncio.shield(prompt.answer), max(0.0, self.timeout - waited))
        if prompt.time_out(self.timeout / 60):
            self.changed(prompt)
        return await prompt.answer

    def changed(self, prompt: Prompt) -> None:
        if self.listener is None:
            return
        try:
            self.listener(prompt)
        except Exception:
            logger.exception("showing prompt %s failed", prompt.id)

    # -- a reload --

    def freeze(self) -> list[Prompt]:
        """The bot reloads: the waiting prompts stay open (the next image serves their requests again)."""
        self._frozen = True
        return [prompt for prompt in self._prompts.values() if prompt.waiting]

    def reattach(self, request_id: str, prompt_id: str) -> None:
        """After a reload: the CLI's request `request_id`, served again, is the prompt `prompt_id` (its buttons)."""
        self._reattach[request_id] = prompt_id

    # -- what the front end and the manager ask --

    def get(self, prompt_id: str) -> Prompt | None:
        """A prompt that still waits (None: answered, cancelled, or from before a restart)."""
        prompt = self._prompts.get(prompt_id)
        return prompt if prompt is not None and prompt.waiting else None

    def waiting(self, session: str) -> list[Prompt]:
        """The session's waiting prompts, oldest first."""
        return [p for p in self._prompts.values() if p.session == session and p.waiting]

    def typed(self, session: str, text: str, place: Place) -> Prompt | None:
        """Give a typed message to the session's oldest prompt waiting in `place` (a prompt is answered only where
        it is shown); None if none waits there."""
        for prompt in self.waiting(session):
            if prompt.place == place and prompt.typed(text):
                self.changed(prompt)
                return prompt
        return None

    def cancel_session(self, session: str, why: str) -> int:
        """Cancel every prompt of the session (/stop); returns how many."""
        cancelled = [p for p in self.waiting(session) if p.cancel(why)]
        for prompt in cancelled:
            self.changed(prompt)
        return len(cancelled)

    def press(self, prompt_id: str, action: str) -> bool:
        """A button (`allow`, `always`, `edits`, `dirs`, `deny`, `pick <q> <o>`, `done <q>`); False: no longer waits."""
        prompt = self.get(prompt_id)
        if prompt is None:
            return False
        verb, *numbers = action.split()
        try:
            args = [int(n) for n in numbers]
        except ValueError:
            return False
        if verb == "allow":
            taken = prompt.allow()
        elif verb in (Action.ALWAYS, Action.EDITS, Action.DIRECTORIES):
            taken = prompt.take(verb)
        elif verb == "deny":
            taken = prompt.deny()
        elif verb == "pick" and len(args) == 2:
            taken = prompt.choose(*args)
        elif verb == "done" and len(args) == 1:
            taken = prompt.done(*args)
        else:
            taken = False
        if taken:
            self.changed(prompt)
        return taken
