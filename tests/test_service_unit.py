"""The systemd user unit: it parses, has what a long-running bot needs, and systemd itself accepts it."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT


def rendered_unit(tmp_path: Path) -> Path:
    """The unit as `make install-service` writes it."""
    text = (ROOT / "telegram-bot.service").read_text()
    text = text.replace("@PROJECT_DIR@", str(ROOT)).replace("@HOME@", str(Path.home()))
    path = tmp_path / "telegram-bot.service"
    path.write_text(text)
    return path


def test_the_unit_has_every_key_a_graceful_long_running_user_service_needs(tmp_path):
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(rendered_unit(tmp_path))
    service = unit["Service"]

    assert service["WorkingDirectory"] == str(ROOT)
    assert service["ExecStart"] == f"{ROOT}/.venv/bin/python {ROOT}/bot.py"
    assert service["EnvironmentFile"].endswith("/.env")
    assert "/.local/bin" in service["Environment"] and "/usr/local/bin" in service["Environment"]
    assert service["Restart"] == "on-failure"
    assert service["KillMode"] == "mixed"
    assert int(service["TimeoutStopSec"]) >= 30  # close_all() takes up to ~20 s
    assert "StartLimitBurst" in unit["Unit"]
    assert "User" not in service  # a user unit runs as its user, never root
    assert service["UMask"] == "0077"
    assert unit["Install"]["WantedBy"] == "default.target"


def test_systemd_accepts_the_unit(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed; the key-by-key check above still runs")
    result = subprocess.run([analyze, "verify", str(rendered_unit(tmp_path))], capture_output=True, text=True)
    output = result.stdout + result.stderr

    assert result.returncode == 0, output
    assert "Unknown" not in output and "Invalid" not in output, output


def test_make_install_service_refuses_root_and_the_makefile_has_both_targets():
    makefile = (ROOT / "Makefile").read_text()
    assert "install-service:" in makefile and "uninstall-service:" in makefile
    assert "enable-linger" in makefile and "systemctl --user" in makefile
