import json
from pathlib import Path

import pytest

from cli_install import cli_binary
from conftest import ROOT, makefile_version

PLATFORMS = {  # what the real 2.1.332 manifests say (os, cpu, libc)
    "linux-x64": (["linux"], ["x64"], ["glibc"]),
    "linux-arm64": (["linux"], ["arm64"], ["glibc"]),
    "linux-x64-musl": (["linux"], ["x64"], ["musl"]),
    "darwin-arm64": (["darwin"], ["arm64"], None),
    "darwin-x64": (["darwin"], ["x64"], None),
}


def write(path: Path, manifest: dict[str, object]) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / "package.json").write_text(json.dumps(manifest))


def npm_tree(prefix: Path, installed: str, *, nested: bool = False, postinstall: bool = True) -> Path:
    """What `npm install --prefix` leaves: the wrapper, and only the platform package that fits the machine."""
    wrapper = prefix / "node_modules/@anthropic-ai/claude-code"
    optional = {f"@anthropic-ai/claude-code-{key}": "2.1.332" for key in PLATFORMS}
    write(wrapper, {"name": "@anthropic-ai/claude-code", "bin": {"claude": "bin/claude.exe"},
                    "optionalDependencies": optional})
    (wrapper / "bin").mkdir()
    (wrapper / "bin/claude.exe").write_text("native copy" if postinstall else "placeholder stub")
    os_, cpu, libc = PLATFORMS[installed]
    base = wrapper / "node_modules" if nested else prefix / "node_modules"
    package = base / f"@anthropic-ai/claude-code-{installed}"
    write(package, {"name": f"@anthropic-ai/claude-code-{installed}", "os": os_, "cpu": cpu,
                    **({"libc": libc} if libc else {}), "files": ["claude", "README.md", "LICENSE.md"]})
    (package / "claude").write_text("native")
    return package / "claude"


@pytest.mark.parametrize(("installed", "machine"), [
    ("linux-x64", ("linux", "x64", "glibc")),
    ("linux-arm64", ("linux", "arm64", "glibc")),
    ("linux-x64-musl", ("linux", "x64", "musl")),
    ("darwin-arm64", ("darwin", "arm64", "")),
])
def test_the_binary_is_the_platform_package_npm_installed_for_the_machine(
    tmp_path: Path, installed: str, machine: tuple[str, str, str]
) -> None:
    expected = npm_tree(tmp_path, installed)

    assert cli_binary(tmp_path, machine) == expected


def test_a_platform_package_nested_under_the_wrapper_is_found(tmp_path: Path) -> None:
    expected = npm_tree(tmp_path, "linux-arm64", nested=True)

    assert cli_binary(tmp_path, ("linux", "arm64", "glibc")) == expected


def test_a_package_for_another_machine_is_not_used(tmp_path: Path) -> None:
    npm_tree(tmp_path, "darwin-arm64")  # e.g. a node_modules copied over from a Mac

    found = cli_binary(tmp_path, ("linux", "x64", "glibc"))

    assert found == tmp_path / "node_modules/@anthropic-ai/claude-code/bin/claude.exe"  # the wrapper's bin entry


def test_without_the_wrapper_package_it_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="@anthropic-ai/claude-code is not installed under"):
        cli_binary(tmp_path, ("linux", "x64", "glibc"))


def test_the_installed_pinned_cli_is_found_through_npms_layout() -> None:
    prefix = ROOT / f".tools/claude-code-{makefile_version('CLAUDE_CODE_VERSION')}"
    if not prefix.exists():
        pytest.skip("the pinned CLI is not installed here")

    found = cli_binary(prefix)

    assert found.is_file() and found.stat().st_size > 1_000_000  # the native binary, not a stub
