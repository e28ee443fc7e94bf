"""The posereg command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from posereg import __version__
from posereg.cli import main


def test_version(capsys):
    assert main(["version"]) == 0
    assert __version__ in capsys.readouterr().out


def test_demo_prints_a_table_with_tiny_round_trip_errors(capsys):
    assert main(["demo", "--count", "5", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line[:3].strip().isdigit()]
    assert len(rows) == 5
    errors = [float(line.split()[-2]) for line in rows]
    assert max(errors) < 1e-12
    assert "edge cases" in out


def test_demo_rejects_bad_count(capsys):
    assert main(["demo", "--count", "0"]) == 2
    assert "--count" in capsys.readouterr().err


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "demo" in capsys.readouterr().out


SCRIPT = Path(sys.executable).parent / "posereg"


@pytest.mark.skipif(not SCRIPT.exists(), reason="console script not installed (run `make test`)")
def test_console_script_help():
    out = subprocess.run([str(SCRIPT), "demo", "--help"], capture_output=True, text=True, check=True).stdout
    assert "--count" in out
