"""Bearer-token principals: who is calling, and what they may do."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from services.core.config import Principal, Role
from services.core.problems import Problem

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="liaison"'}


def token_digest(token: str) -> str:
    """The SHA-256 hex digest under which a token is configured."""
    return hashlib.sha256(token.encode()).hexdigest()


def holds_token(digest: str | None, authorization: str | None) -> bool:
    """Whether ``authorization`` is ``Bearer <token>`` of the token whose SHA-256 is ``digest``
    (compared in constant time; never when no digest is configured)."""
    scheme, _, token = (authorization or "").partition(" ")
    if digest is None or scheme.lower() != "bearer" or not token.strip():
        return False
    return hmac.compare_digest(digest, token_digest(token.strip()))


class Authenticator:
    """Resolves ``Authorization: Bearer <token>`` to a configured principal."""

    def __init__(self, principals: Iterable[Principal]) -> None:
        self._principals = tuple(principals)

    def authenticate(self, authorization: str | None) -> Principal:
        """The caller, or a 401 problem."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Problem(
                401, "Unauthorized", "send Authorization: Bearer <token>", headers=_CHALLENGE
            )
        found = self.by_digest(token_digest(token.strip()))
        if found is None:
            raise Problem(401, "Unauthorized", "unknown token", headers=_CHALLENGE)
        return found

    def by_digest(self, digest: str) -> Principal | None:
        """The principal whose token has this SHA-256 digest, if any (the console's sessions
        keep the digest, never the token)."""
        found = None
        for principal in self._principals:  # compare with every one, in constant time
            if principal.token_sha256 is not None and hmac.compare_digest(
                principal.token_sha256, digest
            ):
                found = principal
        return found

    def by_certificate(self, pem: str) -> Principal:
        """The principal a verified TLS client certificate identifies (mutual TLS), or 401.

        The TLS layer has checked that it chains to ``TLS_CLIENT_CA`` and is valid now;
        here it must also be one a principal names: by the SHA-256 of its DER form, by a URI
        of its subjectAltName, or both (then both must match). Several principals matching
        is a configuration mistake: 401 rather than a guess.
        """
        certificate = x509.load_pem_x509_certificate(pem.encode())
        pin = certificate.fingerprint(hashes.SHA256()).hex()
        uris = _san_uris(certificate)
        found = [
            p
            for p in self._principals
            if p.by_certificate
            and (p.client_cert_sha256 is None or hmac.compare_digest(p.client_cert_sha256, pin))
            and (p.client_cert_uri is None or p.client_cert_uri in uris)
        ]
        if len(found) != 1:
            raise Problem(
                401,
                "Unauthorized",
                f"no principal is configured for this client certificate (SHA-256 {pin})",
            )
        return found[0]


def _san_uris(certificate: x509.Certificate) -> list[str]:
    try:
        extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return list(extension.value.get_values_for_type(x509.UniformResourceIdentifier))


def require(principal: Principal, *roles: Role) -> None:
    """403 unless the principal has one of the roles."""
    if principal.role not in roles:
        allowed = " or ".join(r.value for r in roles)
        raise Problem(
            403, "Forbidden", f"{principal.name} is a {principal.role.value}, not {allowed}"
        )


def require_unit_reader(principal: Principal, unit: str) -> None:
    """An officer of the unit, or an auditor."""
    if principal.role is Role.AUDITOR:
        return
    if principal.role is Role.OFFICER and principal.unit == unit:
        return
    raise Problem(403, "Forbidden", f"{principal.name} may not read the inbox of {unit}")


def require_officer_of(principal: Principal, unit: str) -> None:
    """Only an officer of this very unit."""
    if principal.role is not Role.OFFICER or principal.unit != unit:
        raise Problem(403, "Forbidden", f"only an officer of {unit} may do this")
