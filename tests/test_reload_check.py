"""A reload is refused when the code on disk would not start: checked in a child process, in a copy of the tree."""

from __future__ import annotations

import shutil
from pathlib import Path

from claude_bridge.reload import check_new_code
from conftest import ROOT

ENV = "TELEGRAM_BOT_TOKEN=123:fake\nALLOWED_USER_IDS=42\n"


def tree_copy(tmp_path: Path, dotenv: str = ENV) -> Path:
    tree = tmp_path / "tree"
    shutil.copytree(ROOT / "claude_bridge", tree / "claude_bridge", ignore=shutil.ignore_patterns("__pycache__"))
    for door in ("bot.py", "session_manager.py", "claude_subprocess.py"):
        shutil.copy(ROOT / door, tree / door)
    (tree / ".env").write_text(dotenv)
    return tree


async def test_the_code_as_it_is_may_replace_the_running_bot(tmp_path, monkeypatch):
    monkeypatch.delenv("TELEGRAM_BOT_TOKEN", raising=False)
    assert (await check_new_code(tree_copy(tmp_path))).ok


async def test_a_syntax_error_in_a_module_imported_late_refuses_the_reload(tmp_path):
    tree = tree_copy(tmp_path)
    with (tree / "claude_bridge" / "process" / "handover.py").open("a") as source:
        source.write("\ndef broken(:\n")

    check = await check_new_code(tree)

    assert not check.ok
    assert "SyntaxError" in check.reason and "handover.py" in check.reason


async def test_settings_that_do_not_load_refuse_the_reload(tmp_path, monkeypatch):
    monkeypatch.delenv("ALLOWED_USER_IDS", raising=False)

    check = await check_new_code(tree_copy(tmp_path, ENV.replace("42", "not-a-number")))

    assert not check.ok and "ConfigError" in check.reason and "not-a-number" in check.reason


async def test_code_that_hangs_on_import_refuses_the_reload(tmp_path):
    tree = tree_copy(tmp_path)
    with (tree / "bot.py").open("a") as source:
        source.write("\nimport time\ntime.sleep(600)\n")

    check = await check_new_code(tree, timeout=3)

    assert not check.ok and "did not import within 3 s" in check.reason
