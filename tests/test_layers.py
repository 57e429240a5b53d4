"""The layers hold: front ends → commands → sessions → process → protocol, and the package never imports a door.

The import-linter contracts in pyproject.toml are checked here on the real tree, and shown to catch a reverse
import, a function-local one that would dodge a cycle, and an import of a door, each in a scratch copy.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

pytestmark = pytest.mark.fast

LINT = Path(sys.executable).with_name("lint-imports")


def lint(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT), "--config", str(tree / "pyproject.toml")], cwd=tree, capture_output=True, text=True,
        timeout=120, env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
    )


def scratch_copy(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    tree.mkdir()
    shutil.copytree(ROOT / "claude_bridge", tree / "claude_bridge", ignore=shutil.ignore_patterns("__pycache__"))
    for door in ("bot.py", "session_manager.py", "claude_subprocess.py", "pyproject.toml"):
        shutil.copy(ROOT / door, tree / door)
    return tree


def test_the_contracts_hold_on_this_tree() -> None:
    run = lint(ROOT)

    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 broken" in run.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        ("protocol/events.py", "from claude_bridge.sessions import manager as _up", "not allowed to import"),
        ("sessions/store.py", "def _dodge() -> None:\n    from claude_bridge.telegram import app  # noqa", "telegram"),
        ("process/live.py", "import session_manager as _door  # noqa", "session_manager"),
    ],
)
def test_an_import_against_the_layers_fails_the_lint(tmp_path: Path, module: str, line: str, broken: str) -> None:
    tree = scratch_copy(tmp_path)
    with (tree / "claude_bridge" / module).open("a") as source:
        source.write(f"\n\n{line}\n")

    run = lint(tree)

    assert run.returncode != 0 and broken in run.stdout, run.stdout


MAX_FUNCTION_LINES = 60


def long_functions(root: Path) -> list[str]:
    """Every function of the package and its doors longer than MAX_FUNCTION_LINES, as "path:name (lines)"."""
    files = sorted(root.glob("claude_bridge/**/*.py")) + [root / door for door in ("bot.py", "session_manager.py",
                                                                                 "claude_subprocess.py")]
    found = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    found.append(f"{path.relative_to(root)}:{node.name} ({lines})")
    return found


def test_no_function_is_longer_than_sixty_lines() -> None:
    assert long_functions(ROOT) == []


def test_the_length_check_finds_a_long_function(tmp_path: Path) -> None:
    tree = scratch_copy(tmp_path)
    body = "".join(f"    x{n} = {n}\n" for n in range(MAX_FUNCTION_LINES))
    (tree / "claude_bridge" / "long.py").write_text(f"def too_long() -> None:\n{body}")

    assert f"claude_bridge/long.py:too_long ({MAX_FUNCTION_LINES + 1})" in long_functions(tree)


def test_every_module_on_a_messages_route_in_the_readme_exists() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    route = readme[readme.index("The route of a message") :].split("\n\n")[0]
    named = re.findall(r"`([\w/]+\.py)`", route)
    paths = [ROOT / (name if name.startswith("claude_bridge/") else f"claude_bridge/{name}") for name in named]

    assert len(named) >= 10 and [p for p in paths if not p.is_file()] == []
