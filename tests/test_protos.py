"""The committed stubs are what scripts/gen_protos.py makes, and the protos follow buf STANDARD."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from conftest import ROOT

GENERATED = ROOT / "src" / "samplescout" / "v1"


def _gen_module():
    spec = importlib.util.spec_from_file_location("gen_protos", ROOT / "scripts" / "gen_protos.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_stubs_are_not_stale(tmp_path: Path) -> None:
    fresh = _gen_module().generate(tmp_path)
    assert fresh, "generator produced nothing"
    names = {p.name for p in fresh}
    committed = {p.name for p in GENERATED.glob("*_pb2*.py*")}
    assert names == committed, "stub set differs: run `make protos`"
    for path in fresh:
        old = (GENERATED / path.name).read_text()
        assert path.read_text() == old, f"{path.name} is stale: run `make protos`"


def test_buf_standard_conventions() -> None:
    protos = sorted((ROOT / "protos" / "samplescout" / "v1").glob("*.proto"))
    assert protos
    for proto in protos:
        text = proto.read_text()
        assert "package samplescout.v1;" in text
        for enum, body in re.findall(r"enum (\w+) \{(.*?)\}", text, re.S):
            prefix = re.sub(r"(?<!^)(?=[A-Z])", "_", enum).upper() + "_"
            values = re.findall(r"(\w+) = (\d+);", body)
            assert values[0] == (prefix + "UNSPECIFIED", "0"), enum
            assert all(v.startswith(prefix) for v, _ in values), enum
        for service in re.findall(r"service (\w+) \{", text):
            assert service.endswith("Service")
        for rpc, req, resp in re.findall(r"rpc (\w+)\((\w+)\) returns \((?:stream )?(\w+)\)", text):
            assert req == f"{rpc}Request" and resp == f"{rpc}Response", rpc


def test_generated_modules_import() -> None:
    from samplescout.v1 import control_pb2_grpc, microscope_pb2_grpc

    assert hasattr(control_pb2_grpc, "ControlServiceStub")
    assert hasattr(microscope_pb2_grpc, "MicroscopeServiceStub")


def _minimum(requirements: list[str], package: str) -> tuple[int, ...]:
    for req in requirements:
        m = re.fullmatch(rf"{re.escape(package)}>=([\d.]+)(,.*)?", req.strip())
        if m:
            return tuple(int(v) for v in m.group(1).split("."))
    raise AssertionError(f"no minimum version of {package} declared")


def test_declared_runtimes_are_new_enough_for_the_stubs() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for reqs in (project["dependencies"], project["optional-dependencies"]["driver"]):
        grpc_min, proto_min = _minimum(reqs, "grpcio"), _minimum(reqs, "protobuf")
        for path in GENERATED.glob("*_pb2_grpc.py"):
            m = re.search(r"GRPC_GENERATED_VERSION = '([\d.]+)'", path.read_text())
            assert m, path.name
            assert grpc_min >= tuple(int(v) for v in m.group(1).split(".")), path.name
        for path in GENERATED.glob("*_pb2.py"):
            m = re.search(
                r"ValidateProtobufRuntimeVersion\(\s*\S+,\s*(\d+),\s*(\d+),\s*(\d+),",
                path.read_text(),
            )
            assert m, path.name
            assert proto_min >= tuple(int(v) for v in m.groups()), path.name
