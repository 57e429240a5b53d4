"""The session commands, implemented once for every front end: a command line in, a Reply out.

It knows sessions (through SessionManager) and words; not Telegram, not the terminal. Errors stay exceptions
(BridgeError), which each front end shows in its one place for them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial

from claude_bridge.commands import asks, catalog, menu
from claude_bridge.commands import schedules as scheduled
from claude_bridge.commands.limit_wording import usage_text
from claude_bridge.commands.permissions import permissions
from claude_bridge.commands.reply import Choice, Reply
from claude_bridge.commands.wording import (
    ago,
    claude_schedule_line,
    conversation_line,
    session_line,
    status_text,
    task_line,
)
from claude_bridge.sessions.manager import MODEL_ALIASES, SessionManager
from claude_bridge.sessions.place import Author, Place, Where
from claude_bridge.sessions.projects import looks_like_folder
from claude_bridge.sessions.schedules import Schedules
from claude_bridge.sessions.when import ScheduleError

logger = logging.getLogger(__name__)

Handler = Callable[[Where, list[str]], Awaitable[Reply]]
MAX_CALLBACK_BYTES = 64  # Telegram's limit for a button's callback_data
MAX_SESSION_CHOICES = 30  # a longer keyboard is unusable; /switch <name> still reaches the rest
CONFIRM = "confirm"
SCHEDULE_KINDS = ("every", "at", "cron")  # their args are the rest of the line as typed (quotes, line breaks)


def parse(line: str) -> tuple[str, list[str]]:
    """`/Name@bot a b` → ("name", ["a", "b"]); the bot suffix is Telegram's way to address a bot in a group."""
    word, *args = line.strip().split() or [""]
    return word.removeprefix("/").partition("@")[0].lower(), args


class Commands:
    """Runs /commands for a chat against the SessionManager."""

    def __init__(
        self,
        manager: SessionManager,
        *,
        clock: Callable[[], float] = time.time,
        extra: tuple[catalog.CommandSpec, ...] = (),
        schedules: Schedules | None = None,
    ) -> None:
        self.manager = manager
        self.schedules = schedules
        self._clock = clock
        self._help = catalog.help_text(extra)
        self._handlers: dict[str, Handler] = {
            "start": self.start,
            "help": self.help,
            "new": self.new,
            "switch": self.switch,
            "sessions": self.sessions,
            "model": self.model,
            "persona": self.persona,
            "stop": self.stop,
            "status": self.status,
            "tasks": self.tasks,
            "delete": self.delete,
            "resume": self.resume,
            "cancel": self.cancel,
            "answer": lambda chat_id, args: asks.answer(self.manager, args, chat_id),
            "mode": self.mode,
            "permissions": self.permissions,
            **{kind: self._schedule_adder(kind) for kind in SCHEDULE_KINDS},
            "schedules": self.listing,
            "usage": self.usage,
            "limit": self.limit,
        }

    def knows(self, name: str) -> bool:
        """Whether `name` (without the slash) is a command this layer runs."""
        return name in self._handlers

    async def run(self, chat_id: Where, line: str, *, by: Author | None = None) -> Reply:
        """Run one command line (`/model haiku`, or a choice's command) for the chat; `by` who typed it (a schedule
        keeps its maker)."""
        name, args = parse(line)
        handler = self._handlers.get(name)
        if handler is None:
            return Reply(catalog.unknown(name))
        logger.debug("chat %s: /%s %s", chat_id, name, args)
        if name in SCHEDULE_KINDS:
            rest = line.strip().split(maxsplit=1)[1:]
            return await self._add_schedule(name, chat_id, rest[0].strip() if rest else "", by)
        return await handler(chat_id, args)

    def claude_line(self, where: Where, line: str) -> str | None:
        """A typed `/name args` that is not ours, as the active session's Claude command (`/hello_world` →
        `/hello-world`); None if that session does not offer it, or never started (its commands are not known)."""
        name = self.manager.active_session(where)
        known = self.manager.claude_commands(name) if name is not None else None
        return menu.build(known).claude_line(line) if known is not None else None

    def _active(self, chat_id: Where) -> tuple[str, str]:
        """The active session (the default one on a fresh chat) and a line saying so if it was just made."""
        name, notice = self.manager.ensure_active(chat_id)
        return name, f"ℹ️ {notice}\n" if notice else ""

    async def start(self, chat_id: Where, args: list[str]) -> Reply:
        """/start: the greeting and the help."""
        return Reply(f"{catalog.GREETING}\n\n{self._help}")

    async def help(self, chat_id: Where, args: list[str]) -> Reply:
        """/help: the commands."""
        return Reply(self._help)

    async def new(self, chat_id: Where, args: list[str]) -> Reply:
        """/new [name] [folder] [persona]: create a session (in a project folder) and make it active.

        A second word with '/', or starting with '~' or '.', is a folder (the words up to a persona name, so a
        folder may hold spaces); otherwise it is the persona, as before.
        """
        planned = self._new_plan(args)
        if isinstance(planned, Reply):
            return planned
        name, folder, persona = planned
        self.manager.create(name, persona, folder, home=chat_id)
        info = self.manager.switch(chat_id, name)
        text = f"✨ New session “{name}” (persona {info.persona}) is now active."
        if folder is not None:
            text += f"\n📁 Claude works in {info.workspace}, in a new conversation; /resume lists the earlier ones."
        return Reply(text)

    def refusal(self, line: str) -> Reply | None:
        """The answer a command line would get without doing anything (a /new with an unknown persona), else None.

        Lets a front end check before its own side effects, e.g. opening a forum topic for the new session."""
        name, args = parse(line)
        if name != "new":
            return None
        planned = self._new_plan(args)
        return planned if isinstance(planned, Reply) else None

    def _new_plan(self, args: list[str]) -> tuple[str, str | None, str] | Reply:
        """/new's arguments as (name, folder, persona), or the Reply refusing them."""
        name = args[0].lower() if args else self._free_name()
        rest, folder, persona = args[1:], None, "default"
        if rest and looks_like_folder(rest[0]):
            if len(rest) > 1 and rest[-1].lower() in self.manager.personas:
                persona = rest.pop().lower()
            folder = " ".join(rest)
        elif len(rest) == 1:
            persona = rest[0].lower()
            if persona not in self.manager.personas:
                known = ", ".join(sorted(self.manager.personas))
                return Reply(f"Unknown persona {rest[0]!r} (personas: {known}). {catalog.FOLDER_HINT}")
        elif rest:
            return Reply(catalog.usage("new"))
        return name, folder, persona

    def _free_name(self) -> str:
        taken = {info.name for info in self.manager.list_sessions()}
        return next(f"s{n}" for n in range(1, len(taken) + 2) if f"s{n}" not in taken)

    async def switch(self, chat_id: Where, args: list[str]) -> Reply:
        """/switch [name]: change the active session; without a name, offer the sessions to pick from."""
        if len(args) > 1:
            return Reply(catalog.usage("switch"))
        if args:
            info = self.manager.switch(chat_id, args[0].lower())
            return Reply(f"➡️ Active session: “{info.name}” ({info.state}, persona {info.persona}).")
        current, notice = self._active(chat_id)
        choices = tuple(
            Choice(("• " if info.name == current else "") + info.name, f"/switch {info.name}")
            for info in self.manager.list_sessions(chat_id)[:MAX_SESSION_CHOICES]
        )
        return Reply(f"{notice}Switch to which session?", choices)

    async def sessions(self, chat_id: Where, args: list[str]) -> Reply:
        """/sessions: every session with its state, the active one marked."""
        current, notice = self._active(chat_id)
        now = self._clock()
        lines = [session_line(info, info.name == current, now) for info in self.manager.list_sessions(chat_id)]
        return Reply("\n".join([f"{notice}Sessions:", *lines]))

    async def model(self, chat_id: Where, args: list[str]) -> Reply:
        """/model [name]: show the active session's model with the aliases to pick, or set it."""
        if len(args) > 1:
            return Reply(catalog.usage("model"))
        name, notice = self._active(chat_id)
        if args:
            model = args[0]
            info = await self.manager.set_model(name, None if model == "default" else model)
            return Reply(f"{notice}🧠 Model of “{name}” is now {info.model}.")
        info = self.manager.status(name)
        source = "session override" if info.model_override else "persona / CLI default"
        choices = tuple(Choice(alias, f"/model {alias}") for alias in (*MODEL_ALIASES, "default"))
        text = f"{notice}Model of “{name}”: {info.model} ({source}). Pick one or /model <full model id>."
        return Reply(text, choices)

    async def persona(self, chat_id: Where, args: list[str]) -> Reply:
        """/persona [name]: show the personas to pick from, or set the active session's."""
        if len(args) > 1:
            return Reply(catalog.usage("persona"))
        name, notice = self._active(chat_id)
        if args:
            info = await self.manager.set_persona(name, args[0].lower())
            return Reply(f"{notice}🎭 Persona of “{name}” is now {info.persona}; it applies from the next message.")
        current = self.manager.status(name).persona
        personas = self.manager.personas
        lines = [f"{notice}Persona of “{name}”: {current}. Available:"]
        lines += [f"• {p.name} — {p.description}" for p in personas.values()]
        return Reply("\n".join(lines), tuple(Choice(p, f"/persona {p}") for p in sorted(personas)))

    async def mode(self, chat_id: Where, args: list[str]) -> Reply:
        """/mode [mode]: the active session's permission mode (ask first, accept edits, plan, skip prompts)."""
        name, notice = self._active(chat_id)
        return await asks.mode(self.manager, name, notice, args, chat_id)

    async def permissions(self, chat_id: Where, args: list[str]) -> Reply:
        """/permissions: the rules kept for the active session's project, a Remove choice each."""
        name, notice = self._active(chat_id)
        return await permissions(self.manager, name, notice, args)

    async def stop(self, chat_id: Where, args: list[str]) -> Reply:
        """/stop [name]: interrupt the running answer of the active (or named) session; its queue lives on."""
        if len(args) > 1:
            return Reply(catalog.usage("stop"))
        name, notice = (self.manager.own(chat_id, args[0].lower()), "") if args else self._active(chat_id)
        if await self.manager.interrupt(name):
            return Reply(f"{notice}⏹ Stopping “{name}”…")
        return Reply(f"{notice}Nothing is running in “{name}”.")

    async def status(self, chat_id: Where, args: list[str]) -> Reply:
        """/status: what the active session is doing."""
        name, notice = self._active(chat_id)
        return Reply(notice + status_text(self.manager.status(name), self._clock()))

    async def usage(self, chat_id: Where, args: list[str]) -> Reply:
        """/usage: each of the place's sessions' last turn and today's total, and the plan's last known limit state
        (one account for all places)."""
        book = self.manager.usage_book()
        mine = partial(self.manager.belongs, where=chat_id)
        return Reply(usage_text(book, self._clock(), book.zone, mine))

    async def limit(self, chat_id: Where, args: list[str]) -> Reply:
        """/limit cancel (the limit message's button): this place's held messages are not resent by themselves after
        the reset (other places' are)."""
        if args != ["cancel"]:
            return Reply(catalog.usage("limit"))
        if not await self.manager.limits.cancel(Place.of(chat_id)):
            return Reply("Nothing here is waiting for the usage limit.")
        return Reply("Cancelled: nothing is sent by itself. Your waiting messages go to Claude when you write again.")

    async def tasks(self, chat_id: Where, args: list[str]) -> Reply:
        """/tasks: the active session's running background tasks, a Stop choice each; /tasks stop <id> stops one."""
        if args and (len(args) != 2 or args[0] != "stop"):
            return Reply(catalog.usage("tasks"))
        name, notice = self._active(chat_id)
        if args:
            task = await self.manager.stop_task(name, args[1])
            return Reply(f"{notice}⏹ Stopped background task {task_line(task)} in “{name}”.")
        info = self.manager.status(name)
        running, own = info.tasks, info.claude_schedules
        if not running and not own:
            return Reply(f"{notice}No background tasks are running in “{name}”.")
        lines = [notice.rstrip("\n")] if notice else []
        if running:
            lines += [f"Background tasks in “{name}”:", *(f"• {task_line(task)}" for task in running)]
        if own:
            lines += [f"Claude's own schedules in “{name}”:", *(f"• {claude_schedule_line(s)}" for s in own)]
        return Reply("\n".join(lines), tuple(_stop_choice(task.task_id, task.description) for task in running))

    async def delete(self, chat_id: Where, args: list[str]) -> Reply:
        """/delete <name>: ask first; the confirming choice (`/delete <name> confirm <instance>`) deletes.

        The instance id names this very session, so a button left from an earlier session of that name deletes
        nothing. `/delete <name> confirm` without it just asks again.
        """
        if not args or len(args) > 3 or (len(args) >= 2 and args[1] != CONFIRM):
            return Reply(catalog.usage("delete"))
        name = self.manager.own(chat_id, args[0].lower())
        if len(args) == 3:
            await self.manager.delete(name, instance=args[2])
            dropped = await self._drop_schedules(name, Place.of(chat_id))
            return Reply(f"🗑 Deleted session “{name}”.{dropped}")
        info = self.manager.status(name)  # an unknown name raises SessionError, which the front end shows
        confirm = f"/delete {name} {CONFIRM} {info.instance}"  # ≤ 8 + 32 + 9 + 8 bytes: within callback_data's 64
        choices = (Choice(f"🗑 Delete {name}", confirm), Choice("Cancel", "/cancel"))
        if info.project:
            question = f"Delete session “{name}”? Its project folder {info.workspace} is left as it is."
        else:
            question = f"Delete session “{name}” with its folder and files? This cannot be undone."
        return Reply(question, choices)

    async def resume(self, chat_id: Where, args: list[str]) -> Reply:
        """/resume [id]: the earlier conversations of the active session's folder to pick from, or continue one."""
        if len(args) > 1:
            return Reply(catalog.usage("resume"))
        name, notice = self._active(chat_id)
        if args:
            await self.manager.resume(name, args[0])
            return Reply(f"{notice}↩️ “{name}” continues conversation {args[0].lower()} from your next message.")
        info = self.manager.status(name)
        conversations = await self.manager.conversations(name)
        if not conversations:
            return Reply(f"{notice}No earlier conversations in {info.workspace}.")
        now = self._clock()
        lines = [f"{notice}Conversations in {info.workspace}, newest first; pick one to continue it:"]
        choices = []
        for number, conversation in enumerate(conversations, 1):
            current = conversation.session_id == info.claude_session_id
            lines.append(conversation_line(number, conversation, current, now))
            label = f"{'▶️' if current else f'{number}.'} {conversation.title[:40]} · {ago(now - conversation.modified)}"
            choices.append(Choice(label, f"/resume {conversation.session_id}"))  # 8 + 36 bytes
        return Reply("\n".join(lines), tuple(choices))

    # -- prompts on a schedule --

    def _schedule_adder(self, kind: str) -> Handler:
        async def add(chat_id: Where, args: list[str]) -> Reply:
            return await self._add_schedule(kind, chat_id, args[0] if args else "", None)

        return add

    async def _add_schedule(self, kind: str, chat_id: Where, typed: str, by: Author | None) -> Reply:
        """/every, /at, /cron: a prompt for the active session, on a schedule kept across restarts, made `by`."""
        if self.schedules is None:
            return Reply(scheduled.UNAVAILABLE)
        try:
            self.schedules.parse(kind, typed)  # bad input makes nothing, not even the chat's first session
        except ScheduleError as exc:
            return Reply(f"⚠️ {exc}")
        name, notice = self._active(chat_id)
        made = scheduled.add(self.schedules, Place.of(chat_id), name, kind, typed, by)
        return Reply(notice + made.text, made.choices)

    async def listing(self, chat_id: Where, args: list[str]) -> Reply:
        """/schedules: this place's scheduled prompts, a Delete button each; /schedules delete <id> deletes one."""
        if self.schedules is None:
            return Reply(scheduled.UNAVAILABLE)
        if args and (len(args) != 2 or args[0] != "delete"):
            return Reply(catalog.usage("schedules"))
        if args:
            return scheduled.delete(self.schedules, Place.of(chat_id), args[1])
        return scheduled.listing(self.schedules, Place.of(chat_id))

    async def _drop_schedules(self, name: str, here: Place) -> str:
        """A deleted session's schedules go too; other places that had one are told, this one reads it here."""
        if self.schedules is None:
            return ""
        dropped = self.schedules.drop_session(name)
        for place in dict.fromkeys(s.place for s in dropped if s.place != here):
            theirs = [s for s in dropped if s.place == place]
            await self.manager.front_end.notify(place, scheduled.dropped_text(name, theirs))
        mine = [s for s in dropped if s.place == here]
        return "\n" + scheduled.dropped_text(name, mine) if mine else ""

    async def cancel(self, chat_id: Where, args: list[str]) -> Reply:
        """/cancel: the answer to a question's Cancel choice."""
        return Reply("Cancelled.")


def _stop_choice(task_id: str, description: str) -> Choice:
    """A Stop button for one task; a long id is cut to a prefix, which /tasks stop also accepts."""
    command = f"/tasks stop {task_id}"
    while len(command.encode()) > MAX_CALLBACK_BYTES:
        command = command[:-1]
    label = description if len(description) <= 24 else description[:23] + "…"
    return Choice(f"⏹ Stop {label or task_id}", command)
