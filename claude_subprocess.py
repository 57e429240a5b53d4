"""The door of the CLI-process component: `ClaudeSubprocess`, one persistent Claude Code CLI speaking stream-json.

Its parts live in `claude_bridge/process/` (spawning, framing, lifecycle, reaping) over the CLI's protocol in
`claude_bridge/protocol/` (typed events and the messages we write).
"""

from claude_bridge.process.argv import ProcessOptions
from claude_bridge.process.state import State
from claude_bridge.process.subprocess import ClaudeSubprocess
from claude_bridge.process.turns import Turn

__all__ = ["ClaudeSubprocess", "ProcessOptions", "State", "Turn"]
