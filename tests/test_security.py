"""TLS, mTLS, tokens, and session isolation between identities on the control API."""

from __future__ import annotations

import datetime
import ipaddress
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc

from samplescout.app import EmbeddedPipeline, SessionManager, redact_url
from samplescout.cli import main
from samplescout.config import Settings
from samplescout.control.server import build_server
from samplescout.errors import InputError
from samplescout.security import TlsFiles, load_tokens
from samplescout.v1 import control_pb2, control_pb2_grpc


def _cert(name: str, issuer_key, issuer_name, *, ca: bool = False, key=None):
    key = key or ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name or subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    cert = builder.sign(issuer_key or key, hashes.SHA256())
    return key, cert


def _pem(obj) -> bytes:
    if isinstance(obj, x509.Certificate):
        return obj.public_bytes(serialization.Encoding.PEM)
    return obj.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("pki")
    ca_key, ca = _cert("samplescout test CA", None, None, ca=True)
    files: dict[str, Path] = {}
    (d / "ca.pem").write_bytes(_pem(ca))
    files["ca"] = d / "ca.pem"
    for name in ("server", "alice", "bob"):
        key, cert = _cert(name, ca_key, ca.subject)
        (d / f"{name}.pem").write_bytes(_pem(cert))
        (d / f"{name}.key").write_bytes(_pem(key))
        files[name] = d / f"{name}.pem"
        files[f"{name}.key"] = d / f"{name}.key"
    return files


@contextmanager
def _serve(tls: TlsFiles, tokens: dict[str, str] | None = None) -> Iterator[int]:
    runner = SessionManager(EmbeddedPipeline(settings=Settings()))
    server, port, _ = build_server(runner, "127.0.0.1:0", tls=tls, tokens=tokens)
    server.start()
    try:
        yield port
    finally:
        server.stop(None)


def _channel(port: int, pki: dict[str, Path], who: str | None = None) -> grpc.Channel:
    creds = grpc.ssl_channel_credentials(
        root_certificates=pki["ca"].read_bytes(),
        private_key=pki[f"{who}.key"].read_bytes() if who else None,
        certificate_chain=pki[who].read_bytes() if who else None,
    )
    return grpc.secure_channel(f"127.0.0.1:{port}", creds)


def _start(stub, bundle: Path, metadata=()) -> str:
    return stub.StartSession(
        control_pb2.StartSessionRequest(bundle_path=str(bundle)), timeout=30, metadata=metadata
    ).session_id


def _code(call) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code()


def test_tls_with_tokens_isolates_sessions(pki: dict[str, Path], easy_wide_slide: Path) -> None:
    tokens = {"t-alice": "alice", "t-bob": "bob"}
    with _serve(TlsFiles(pki["server"], pki["server.key"]), tokens) as port:
        ch = _channel(port, pki)
        stub = control_pb2_grpc.ControlServiceStub(ch)
        alice = [("authorization", "Bearer t-alice")]
        bob = [("authorization", "Bearer t-bob")]
        assert _code(lambda: _start(stub, easy_wide_slide)) == grpc.StatusCode.UNAUTHENTICATED
        wrong = [("authorization", "Bearer nope")]
        assert (
            _code(lambda: _start(stub, easy_wide_slide, wrong)) == grpc.StatusCode.UNAUTHENTICATED
        )
        sid = _start(stub, easy_wide_slide, alice)
        events = list(
            stub.WatchSession(
                control_pb2.WatchSessionRequest(session_id=sid), timeout=120, metadata=alice
            )
        )
        assert events[-1].event.kind == 6  # DONE
        get = control_pb2.GetResultRequest(session_id=sid)
        assert (
            stub.GetResult(get, timeout=10, metadata=alice).state == control_pb2.SESSION_STATE_DONE
        )
        denied = grpc.StatusCode.PERMISSION_DENIED
        assert _code(lambda: stub.GetResult(get, timeout=10, metadata=bob)) == denied
        watch = control_pb2.WatchSessionRequest(session_id=sid)
        assert _code(lambda: list(stub.WatchSession(watch, timeout=10, metadata=bob))) == denied
        cancel = control_pb2.CancelSessionRequest(session_id=sid)
        assert _code(lambda: stub.CancelSession(cancel, timeout=10, metadata=bob)) == denied
        # Probes need no credentials.
        health = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        ch.close()


def test_mtls_identity_from_client_certificate(pki: dict[str, Path], easy_wide_slide: Path) -> None:
    with _serve(TlsFiles(pki["server"], pki["server.key"], pki["ca"])) as port:
        alice = control_pb2_grpc.ControlServiceStub(_channel(port, pki, "alice"))
        bob = control_pb2_grpc.ControlServiceStub(_channel(port, pki, "bob"))
        sid = _start(alice, easy_wide_slide)
        list(alice.WatchSession(control_pb2.WatchSessionRequest(session_id=sid), timeout=120))
        get = control_pb2.GetResultRequest(session_id=sid)
        assert alice.GetResult(get, timeout=10).state == control_pb2.SESSION_STATE_DONE
        assert _code(lambda: bob.GetResult(get, timeout=10)) == grpc.StatusCode.PERMISSION_DENIED
        anonymous = control_pb2_grpc.ControlServiceStub(_channel(port, pki))
        assert _code(lambda: anonymous.GetResult(get, timeout=10)) == grpc.StatusCode.UNAVAILABLE


def test_plain_text_only_on_loopback_unless_asked(tmp_path: Path) -> None:
    runner = SessionManager(EmbeddedPipeline(settings=Settings()))
    with pytest.raises(InputError, match="not a loopback address"):
        build_server(runner, "0.0.0.0:0")
    server, port, _ = build_server(runner, "0.0.0.0:0", insecure=True)
    assert port > 0
    server.stop(None)
    assert main(["serve", "control", "--grpc", "0.0.0.0:0"]) == 2


def test_token_file_validation(tmp_path: Path) -> None:
    good = tmp_path / "tokens.json"
    good.write_text(json.dumps({"abc": "lab-a"}))
    assert load_tokens(good) == {"abc": "lab-a"}
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"abc": 3}))
    with pytest.raises(InputError, match="identity"):
        load_tokens(bad)


def test_secrets_never_in_messages() -> None:
    assert redact_url("redis://:s3cret@redis.example:6380/0") == "redis://:***@redis.example:6380/0"
    assert "s3cret" not in redact_url("rediss://user:s3cret@host/1")
    assert redact_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
