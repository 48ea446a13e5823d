"""Transport security and caller identity for the gRPC front door.

TLS (and mutual TLS with a client CA) protects the channel; every call is then
attributed to an *identity*: the common name of a verified client certificate, or
the name a bearer token maps to. :class:`AuthInterceptor` rejects calls without one
(``UNAUTHENTICATED``); the servicer lets each identity see only its own sessions
(``PERMISSION_DENIED``).
"""

from __future__ import annotations

import contextvars
import hmac
import ipaddress
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from samplescout.errors import InputError

#: The identity of the call being served (``None``: authentication is off).
current_identity: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "samplescout_identity", default=None
)

NO_IDENTITY = "a client certificate or bearer token is required"

#: Calls that probes and tooling make without credentials.
PUBLIC_METHOD_PREFIXES = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """PEM files: the server's certificate and key, and optionally a client CA (mTLS)."""

    cert: Path
    key: Path
    client_ca: Path | None = None

    def server_credentials(self) -> grpc.ServerCredentials:
        try:
            key, cert = self.key.read_bytes(), self.cert.read_bytes()
            ca = self.client_ca.read_bytes() if self.client_ca else None
        except OSError as exc:
            raise InputError("tls", str(exc.filename), f"cannot read ({exc.strerror})") from None
        return grpc.ssl_server_credentials(
            [(key, cert)], root_certificates=ca, require_client_auth=ca is not None
        )


def load_tokens(path: Path) -> dict[str, str]:
    """Read ``{"<token>": "<identity>", ...}``; the file is a secret and never logged."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(str(path), "", f"cannot read token file ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise InputError(str(path), "", f"token file is not JSON ({exc.msg})") from None
    if not isinstance(raw, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and k and v for k, v in raw.items()
    ):
        raise InputError(str(path), "", "token file must map token strings to identity strings")
    return dict(raw)


def is_loopback(address: str) -> bool:
    """Whether a ``host:port`` listen address only accepts local connections."""
    host = address.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class AuthInterceptor(grpc.ServerInterceptor):
    """Attributes every non-public call to an identity or rejects it.

    Identity sources, in order: a verified client certificate's common name (mTLS),
    then ``authorization: Bearer <token>`` metadata looked up in ``tokens``.
    """

    def __init__(self, tokens: Mapping[str, str] | None = None, *, mtls: bool = False) -> None:
        self._tokens = dict(tokens or {})
        self._mtls = mtls

    def _identity(self, context: grpc.ServicerContext) -> str | None:
        if self._mtls:
            names = context.auth_context().get("x509_common_name") or []
            if names:
                return bytes(names[0]).decode()
        for key, value in context.invocation_metadata():
            if key == "authorization" and isinstance(value, str):
                scheme, _, token = value.partition(" ")
                if scheme.lower() == "bearer":
                    for known, identity in self._tokens.items():
                        if hmac.compare_digest(known.encode(), token.strip().encode()):
                            return identity
        return None

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method.startswith(PUBLIC_METHOD_PREFIXES):
            return handler
        return _wrap(handler, self._identity)


def _wrap(
    handler: grpc.RpcMethodHandler, identify: Callable[[grpc.ServicerContext], str | None]
) -> grpc.RpcMethodHandler:
    def guard(behaviour: Callable[..., Any], streaming_response: bool) -> Callable[..., Any]:
        def unary(request: Any, context: grpc.ServicerContext) -> Any:
            identity = identify(context)
            if identity is None:
                context.abort(
                    grpc.StatusCode.UNAUTHENTICATED, "a client certificate or token is required"
                )
            token = current_identity.set(identity)
            try:
                return behaviour(request, context)
            finally:
                current_identity.reset(token)

        def stream(request: Any, context: grpc.ServicerContext) -> Any:
            identity = identify(context)
            if identity is None:
                context.abort(
                    grpc.StatusCode.UNAUTHENTICATED, "a client certificate or token is required"
                )
            token = current_identity.set(identity)
            try:
                yield from behaviour(request, context)
            finally:
                current_identity.reset(token)

        return stream if streaming_response else unary

    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(
            guard(handler.unary_unary, False),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(
            guard(handler.unary_stream, True),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(
            guard(handler.stream_unary, False),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    return grpc.stream_stream_rpc_method_handler(
        guard(handler.stream_stream, True),
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )
