"""Progress bars, --quiet, --json, and the CLI's helpful one-line errors."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from samplescout.cli import build_parser, main
from samplescout.progress import progress, track, wanted


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_disabled_bar_draws_nothing_and_counts() -> None:
    stream = _Tty()
    with progress(3, "work", enabled=False, stream=stream) as bar:
        for _ in range(3):
            bar.advance()
        bar.describe("other")
    assert stream.getvalue() == ""
    assert getattr(bar, "done", None) == 3


def test_auto_mode_follows_the_terminal() -> None:
    assert wanted(None, io.StringIO()) is False
    assert wanted(None, _Tty()) is True
    assert wanted(True, io.StringIO()) is True and wanted(False, _Tty()) is False


@pytest.mark.parametrize("total", [4, None])
def test_enabled_bar_draws_on_the_stream(total: int | None) -> None:
    stream = _Tty()
    with progress(total, "frames", enabled=True, stream=stream) as bar:
        for _ in range(4):
            bar.advance()
    assert "frames" in stream.getvalue()


def test_track_advances_after_each_item() -> None:
    seen = list(track(iter(range(5)), 5, "items", enabled=False))
    assert seen == [0, 1, 2, 3, 4]


def test_quiet_and_json_flags() -> None:
    parser = build_parser()
    ns = parser.parse_args(["--quiet", "--json", "simulate", "x"])
    assert ns.quiet is True and ns.log_format == "json"
    ns = parser.parse_args(["simulate", "x"])
    assert ns.quiet is False and ns.log_format is None


def test_localize_not_on_a_terminal_has_no_bar(
    easy_wide_slide: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r.json"
    assert main(["localize", str(easy_wide_slide), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "localizing" not in captured.err and "\x1b[" not in captured.err
    assert json.loads(out.read_text())["stats"]["frames"] == 1


def test_localize_bar_counts_frames(
    easy_wide_slide: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import samplescout.progress as progress_mod

    stream = _Tty()
    monkeypatch.setattr(progress_mod.sys, "stderr", stream)
    assert main(["localize", str(easy_wide_slide), "--out", str(tmp_path / "r.json")]) == 0
    assert "localizing" in stream.getvalue() and "1/1" in stream.getvalue()
    stream.seek(0)
    stream.truncate()
    assert (
        main(["--quiet", "localize", str(easy_wide_slide), "--out", str(tmp_path / "q.json")]) == 0
    )
    assert stream.getvalue() == ""


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "samplescout", *args], capture_output=True, text=True, timeout=120
    )


def test_redis_unreachable_is_one_line_naming_url_and_embedded_mode() -> None:
    proc = _run("serve", "select", "--redis", "redis://127.0.0.1:1")
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("samplescout: error: cannot reach Redis at redis://127.0.0.1:1")
    assert "embedded" in lines[0]


def test_json_flag_logs_json_lines(easy_wide_slide: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    proc = _run(
        "--json", "--log-level", "info", "localize", str(easy_wide_slide), "--out", str(out)
    )
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stderr.splitlines() if line.strip()]
    assert any(e.get("event") == "session done" and e.get("session_id") for e in events), events
