"""Serving the API over TLS, with agencies' client certificates (mutual TLS).

uvicorn terminates TLS itself (``ssl_certfile``/``ssl_keyfile``, and with
``ssl_ca_certs`` it asks for and verifies a client certificate), but — up to 0.55 at least —
does not tell the application which certificate the peer presented: the ASGI TLS extension
(``scope["extensions"]["tls"]``) is only proposed there. :func:`peer_certificate_protocol`
adds it: the protocol class (uvicorn's h11 one, with our limits) reads the peer's
certificate from the connection's ``ssl_object`` once the handshake is done, and hands it to
every request of that connection as ``scope["extensions"]["tls"]["client_cert_chain"]``
(PEM), as the ASGI TLS extension specifies. Only a TLS connection this process accepted
puts it there; nothing a client sends (no header) can.

The client certificate is requested but optional (``CERT_OPTIONAL``): one that is presented
must chain to ``TLS_CLIENT_CA`` and be valid now, or the handshake fails; a connection
without one can still use a bearer token (health probes, principals without a certificate).
Which principal a certificate is, is the authenticator's (:mod:`services.core.auth`): its
SHA-256 pin or its SAN URI, configured per principal.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from uvicorn.protocols.http.h11_impl import H11Protocol

from services.core.config import ConfigError
from services.core.settings import Settings


@dataclass(frozen=True, slots=True)
class TlsOptions:
    """The API's TLS: its certificate and key, and the CA its clients' certificates chain to."""

    cert: Path
    key: Path
    client_ca: Path | None = None

    @classmethod
    def of(cls, settings: Settings) -> TlsOptions | None:
        """``LIAISON_TLS_CERT``/``_KEY``/``_CLIENT_CA``; None when the API speaks plain HTTP."""
        cert, key, client_ca = settings.tls_cert, settings.tls_key, settings.tls_client_ca
        if cert is None and key is None and client_ca is None:
            return None
        if cert is None or key is None:
            raise ConfigError(
                "LIAISON_TLS_CERT and LIAISON_TLS_KEY go together (and TLS_CLIENT_CA needs both)"
            )
        for name, path in (("TLS_CERT", cert), ("TLS_KEY", key), ("TLS_CLIENT_CA", client_ca)):
            if path is not None and not path.is_file():
                raise ConfigError(f"LIAISON_{name}: {path} is not a readable file")
        return cls(cert, key, client_ca)

    def uvicorn_options(self) -> dict[str, Any]:
        """``uvicorn.Config`` keyword arguments."""
        options: dict[str, Any] = {"ssl_certfile": str(self.cert), "ssl_keyfile": str(self.key)}
        if self.client_ca is not None:
            options |= {"ssl_ca_certs": str(self.client_ca), "ssl_cert_reqs": ssl.CERT_OPTIONAL}
        return options


def peer_certificate_protocol(base: type[H11Protocol]) -> type[H11Protocol]:
    """``base`` (a uvicorn h11 protocol) that gives each request its peer's certificate."""
    if not issubclass(base, H11Protocol):
        raise TypeError("the peer certificate is read by uvicorn's h11 protocol only")

    class WithPeerCertificate(base):  # type: ignore[valid-type,misc]
        def connection_made(self, transport: asyncio.Transport) -> None:
            super().connection_made(transport)
            tls = _tls_extension(transport)
            if tls is None:
                return
            app = cast(Any, self).app  # uvicorn's, loaded by its config

            async def with_certificate(scope: Any, receive: Any, send: Any) -> None:
                scope.setdefault("extensions", {})["tls"] = tls
                await app(scope, receive, send)

            self.app = with_certificate

    return WithPeerCertificate


def _tls_extension(transport: asyncio.BaseTransport) -> dict[str, Any] | None:
    """The ASGI TLS extension's fields for this connection (None: not TLS)."""
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    return {
        "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)] if der else [],
        "tls_version": ssl_object.version(),
        "client_cert_error": None,
    }
