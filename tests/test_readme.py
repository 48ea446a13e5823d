"""Every command in the README parses, and the main ones run, so the README cannot rot."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from samplescout.cli import build_parser

from conftest import ROOT

README = (ROOT / "README.md").read_text()


def _commands() -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", README, re.S)
    lines: list[str] = []
    for block in blocks:
        joined = block.replace("\\\n", " ")
        lines += [ln.split("  #")[0].strip() for ln in joined.splitlines()]
    return [ln.rstrip("&").strip() for ln in lines if ln.startswith(("samplescout ", "make "))]


COMMANDS = _commands()


def test_readme_has_the_two_commands_first() -> None:
    assert COMMANDS[:2] == ["make demo", "make test"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci


def test_make_targets_exist() -> None:
    for target in ("demo", "test"):
        proc = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("line", [c for c in COMMANDS if c.startswith("samplescout ")])
def test_every_readme_command_parses(line: str) -> None:
    ns = build_parser().parse_args(shlex.split(line)[1:])
    assert ns.command


def test_main_readme_commands_run(tmp_path: Path) -> None:
    """The simulate -> localize -> plan path exactly as written (smaller frames)."""
    wanted = ("samplescout simulate", "samplescout localize run42", "samplescout plan")
    for line in COMMANDS:
        if not line.startswith(wanted):
            continue
        args = shlex.split(line)[1:]
        if args[0] == "simulate":
            args += ["--frame-scale", "0.3"]
        proc = subprocess.run(
            [sys.executable, "-m", "samplescout", "-q", *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, (line, proc.stderr)
    for name in ("result.json", "overlay.png", "report.html", "baseline.json", "plan.json"):
        assert (tmp_path / name).stat().st_size > 0, name
