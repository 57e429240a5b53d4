"""Where npm put the Claude Code binary under a `npm install --prefix <prefix>`, read from the packages' own manifests.

`@anthropic-ai/claude-code` names its command in `bin` and lists one native package per platform in
`optionalDependencies` (`…-linux-x64`, `…-darwin-arm64`, …; each says its `os`/`cpu` and ships the binary in `files`).
npm installs only the one matching this machine; its postinstall then copies that binary over the `bin` entry.
Stdlib only: the Makefile runs it before any venv exists (`python3 tests/cli_install.py <prefix>`).
"""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

WRAPPER = "@anthropic-ai/claude-code"
NODE_OS = {"linux": "linux", "darwin": "darwin", "win32": "win32"}  # sys.platform -> npm's `os`
NODE_CPU = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}  # platform.machine() -> `cpu`


def this_platform() -> tuple[str, str, str]:
    """(os, cpu, libc) as npm names them, for this machine."""
    libc = "glibc" if platform.libc_ver()[0] == "glibc" else "musl" if sys.platform == "linux" else ""
    return NODE_OS.get(sys.platform, sys.platform), NODE_CPU.get(platform.machine().lower(), platform.machine()), libc


def _manifest(package: Path) -> dict[str, object]:
    loaded = json.loads((package / "package.json").read_text())
    return loaded if isinstance(loaded, dict) else {}


def _fits(manifest: dict[str, object], os_: str, cpu: str, libc: str) -> bool:
    """npm's own test: the package's `os`, `cpu` (and `libc`, where it says one) include this machine's."""
    wants = {"os": os_, "cpu": cpu, "libc": libc}
    return all(value in manifest.get(key, [value]) for key, value in wants.items() if value)  # type: ignore[operator]


def _installed(name: str, wrapper: Path, node_modules: Path) -> Path | None:
    """Node's lookup: nested under the wrapper first, then hoisted to the top node_modules."""
    for base in (wrapper / "node_modules", node_modules):
        if (base / name / "package.json").is_file():
            return base / name
    return None


def cli_binary(prefix: Path, machine: tuple[str, str, str] | None = None) -> Path:
    """The native `claude` binary npm installed under `prefix` for `machine` (default: this one)."""
    os_, cpu, libc = machine or this_platform()
    node_modules = prefix / "node_modules"
    wrapper = node_modules / WRAPPER
    if not (wrapper / "package.json").is_file():
        raise FileNotFoundError(f"{WRAPPER} is not installed under {prefix} (no {wrapper}/package.json)")
    manifest = _manifest(wrapper)
    looked = []
    for name in manifest.get("optionalDependencies", {}):  # type: ignore[union-attr]
        package = _installed(str(name), wrapper, node_modules)
        if package is None or not _fits(platform_manifest := _manifest(package), os_, cpu, libc):
            continue
        for shipped in platform_manifest.get("files", []):  # type: ignore[union-attr]
            if Path(str(shipped)).stem == "claude" and (package / str(shipped)).is_file():
                return package / str(shipped)
        looked.append(str(package))
    # No platform package (an unlisted platform): the wrapper's `bin` entry, which its postinstall made the binary.
    bins = manifest.get("bin")
    entry = bins.get("claude") if isinstance(bins, dict) else bins
    if isinstance(entry, str) and (wrapper / entry).is_file():
        return wrapper / entry
    raise FileNotFoundError(
        f"no Claude Code binary for {os_}-{cpu} under {prefix} (looked in {looked or 'no platform package'} "
        f"and the bin entry {entry!r})"
    )


if __name__ == "__main__":
    try:
        print(cli_binary(Path(sys.argv[1]).absolute()))
    except (FileNotFoundError, IndexError, ValueError) as exc:
        sys.exit(f"npm did not install the CLI binary: {exc}")
