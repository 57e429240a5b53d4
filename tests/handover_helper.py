#!/usr/bin/env python3
"""A stand-in bot for the hand-over tests: spawn a CLI, detach it mid-answer, exec itself, adopt it, finish.

`handover_helper.py start CONFIG` spawns the command CONFIG names with the product's LiveProcess, sends `message`,
waits for `detach_after` text deltas (or a permission prompt), detaches, writes the hand-over and execs itself as
`handover_helper.py adopt CONFIG`: the same pid runs fresh code that adopts the process and reads on to the
turn's result. Every step is one JSON line on stdout, so the test sees both images of the one process.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from claude_bridge.process.argv import ProcessOptions
from claude_bridge.process.handover import ProcessHandover, adopt, detach
from claude_bridge.process.live import LiveProcess
from claude_bridge.protocol import messages
from claude_bridge.protocol.events import ControlRequest, Event, TextDelta, TurnResult
from claude_bridge.reload import reexec


def report(**fields: Any) -> None:
    # flush: os.execv does not flush Python's buffers, and the next image must not repeat them either.
    print(json.dumps({"pid": os.getpid(), **fields}), flush=True)


def facts(pid: int) -> dict[str, Any]:
    """What the process table says of the CLI: its parent and its process group."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return {"cli_pid": pid, "cli_ppid": int(fields[1]), "cli_pgid": int(fields[2]), "cli_state": fields[0]}


class Watcher:
    """The callbacks of one image: reports every event and wakes the waiting step."""

    def __init__(self, image: str, config: dict[str, Any]) -> None:
        self.image, self.config = image, config
        self.deltas = 0
        self.enough = asyncio.Event()
        self.result = asyncio.Event()
        self.exited = asyncio.Event()

    def on_event(self, live: LiveProcess, event: Event) -> None:
        if isinstance(event, TextDelta):
            self.deltas += 1
            report(image=self.image, event="delta", text=event.text)
            if self.deltas >= self.config.get("detach_after", 0) > 0:
                self.enough.set()
        elif isinstance(event, TurnResult):
            report(image=self.image, event="result", text=event.text, is_error=event.is_error)
            self.result.set()

    def on_exit(self, live: LiveProcess) -> None:
        report(image=self.image, event="exit", code=live.returncode)
        self.exited.set()

    async def on_control_request(self, request: ControlRequest) -> dict[str, Any]:
        report(image=self.image, event="control_request", request_id=request.request_id, subtype=request.subtype)
        if self.image == "first":
            self.enough.set()
            await asyncio.Event().wait()  # the person has not answered yet when the reload comes
        return messages.allow(request.request.get("input") or {})


async def first_image(config: dict[str, Any], config_path: str) -> None:
    watcher = Watcher("first", config)
    options = ProcessOptions(claude_bin=Path(config["argv"][0]), cwd=Path(config["cwd"]), env=config["env"])
    live = await LiveProcess.spawn(
        options, config["argv"], config["env"], config["marker"],
        watcher.on_event, watcher.on_exit, watcher.on_control_request,
    )
    report(image="first", event="spawned", **facts(live.pid))
    if config.get("initialize", True):
        await live.request(messages.initialize(), timeout=60)
    await live.write(messages.user_message(config["message"]))
    async with asyncio.timeout(60):
        await watcher.enough.wait()
    record = await detach(live)
    with open(config["handover"], "w") as handover:  # noqa: ASYNC230 - one small file, the loop has no one else
        json.dump(record.to_json(), handover)
    report(image="first", event="detached", pending=len(record.pending_stdout), open=len(record.open_requests))
    reexec([sys.executable, __file__, "adopt", config_path])


async def second_image(config: dict[str, Any]) -> None:
    watcher = Watcher("second", config)
    with open(config["handover"]) as handover:  # noqa: ASYNC230 - read once before anything runs
        record = ProcessHandover.from_json(json.load(handover))
    live = await adopt(record, watcher.on_event, watcher.on_exit, watcher.on_control_request)
    blocked = signal.SIGHUP in signal.pthread_sigmask(signal.SIG_BLOCK, [])
    report(image="second", event="adopted", sighup_blocked=blocked, **facts(live.pid))
    if "after_adopt" in config:
        await live.write(config["after_adopt"])
    async with asyncio.timeout(60):
        await watcher.result.wait()
    await live.shutdown(graceful=True, timeout=10)
    report(image="second", event="stopped", code=live.returncode, stderr=live.stderr_tail[-300:])


def main() -> None:
    mode, config_path = sys.argv[1], sys.argv[2]
    config = json.loads(Path(config_path).read_text())
    asyncio.run(first_image(config, config_path) if mode == "start" else second_image(config))


if __name__ == "__main__":
    main()
