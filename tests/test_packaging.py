"""`pip install .` (a real wheel, not only editable) carries every stage and the stubs."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from conftest import ROOT


def test_wheel_contains_services_and_stubs(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("samplescout-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for module in (
        "samplescout/cli.py",
        "samplescout/py.typed",
        "samplescout/v1/control_pb2_grpc.py",
        "samplescout/v1/control_pb2.pyi",
        "samplescout/acquire/sources.py",
        "samplescout/select/worker.py",
        "samplescout/identify/worker.py",
        "samplescout/fuse/worker.py",
        "samplescout/control/servicer.py",
    ):
        assert module in names, module
    assert not any(n.startswith(("services/", "src/", "tests/")) for n in names)


def test_model_training_script_refuses_a_registry_that_holds_models(tmp_path: Path) -> None:
    script = str(ROOT / "scripts" / "train_models.sh")
    shipped = ROOT / "src" / "samplescout" / "models"
    before = sorted(p.name for p in shipped.rglob("*"))
    # PYTHON=false: should the guard let it through, nothing is trained either.
    env = {"PATH": "/usr/bin:/bin", "PYTHON": "false"}
    out = subprocess.run(["bash", script, str(shipped)], capture_output=True, text=True, env=env)
    assert out.returncode == 2 and "not empty" in out.stderr
    assert sorted(p.name for p in shipped.rglob("*")) == before
    out = subprocess.run(["bash", script], capture_output=True, text=True, env=env)
    assert out.returncode != 0 and "REGISTRY_DIR" in out.stderr
