"""Agency identity over TLS (issue 19): the API served over HTTPS by the product's own uvicorn,
clients known by their certificate — a throwaway CA made here with ``cryptography`` issues
a good, an unknown and an expired certificate (and another CA one more)."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from services.bootstrap import Runtime
from services.core.config import Principal, Role
from services.core.settings import Settings
from services.entrypoints.http import create_app
from services.entrypoints.http_tls import TlsOptions
from services.entrypoints.serve import ApiServer
from tests.integration.conftest import auth, principals_config

NOW = datetime.datetime.now(datetime.UTC)
DAY = datetime.timedelta(days=1)


@dataclass
class Issued:
    cert: Path
    key: Path
    sha256: str


class Ca:
    """A certificate authority of the test's own: a key, a self-signed certificate."""

    def __init__(self, directory: Path, name: str) -> None:
        self.directory, self.key = directory, ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - DAY)
            .not_valid_after(NOW + 30 * DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.pem = directory / f"{name}.pem"
        self.pem.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(
        self,
        name: str,
        *,
        uri: str | None = None,
        ip: str | None = None,
        expired: bool = False,
    ) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        names: list[x509.GeneralName] = []
        if uri:
            names.append(x509.UniformResourceIdentifier(uri))
        if ip:
            names.append(x509.IPAddress(ipaddress.ip_address(ip)))
        until = NOW - DAY if expired else NOW + 10 * DAY
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - 10 * DAY)
            .not_valid_after(until)
        )
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        cert_path, key_path = self.directory / f"{name}.crt", self.directory / f"{name}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return Issued(cert_path, key_path, cert.fingerprint(hashes.SHA256()).hex())


@dataclass
class Setup:
    url: str
    ca: Ca
    certs: dict[str, Issued]


@pytest.fixture
async def served(redis_url: str, data_dir: Path, tmp_path: Path) -> AsyncIterator[Setup]:
    ca, other = Ca(tmp_path, "liaison-test-ca"), Ca(tmp_path, "someone-elses-ca")
    certs = {
        "server": ca.issue("api", ip="127.0.0.1"),
        "officer": ca.issue("gulistan-system", uri="urn:liaison:agency:gulistan"),
        "auditor": ca.issue("audit-system", uri="urn:liaison:agency:audit"),
        "unknown": ca.issue("stranger", uri="urn:liaison:agency:stranger"),
        "expired": ca.issue("old-gulistan", uri="urn:liaison:agency:gulistan", expired=True),
        "foreign": other.issue("forged-gulistan", uri="urn:liaison:agency:gulistan"),
    }
    by_certificate = (
        # pinned and named: both must match (a re-issued certificate needs a new pin)
        Principal(name="gulistan-system", role=Role.OFFICER, unit="IMT-GULISTAN",
                  client_cert_sha256=certs["officer"].sha256,
                  client_cert_uri="urn:liaison:agency:gulistan"),
        Principal(name="audit-system", role=Role.AUDITOR, client_cert_uri="urn:liaison:agency:audit"),
    )  # fmt: skip
    config = principals_config()
    config = config.model_copy(update={"principals": (*config.principals, *by_certificate)})
    settings = Settings(data_dir=data_dir, redis_url=redis_url, database_url=None, config=None)
    tls = TlsOptions(certs["server"].cert, certs["server"].key, ca.pem)
    async with Runtime(settings, config) as runtime:
        server = ApiServer(create_app(runtime.deps()), "127.0.0.1", 0, tls=tls)
        url = await server.start()
        try:
            yield Setup(url, ca, certs)
        finally:
            await server.stop()


def _client(setup: Setup, who: str | None) -> httpx.AsyncClient:
    context = ssl.create_default_context(cafile=str(setup.ca.pem))
    if who is not None:
        context.load_cert_chain(str(setup.certs[who].cert), str(setup.certs[who].key))
    return httpx.AsyncClient(base_url=setup.url, verify=context)


async def test_a_good_certificate_signs_in_as_its_principal(served: Setup) -> None:
    assert served.url.startswith("https://127.0.0.1:")
    async with _client(served, "officer") as api:
        own = await api.get("/v1/units/IMT-GULISTAN/alerts")
        assert own.status_code == 200  # no Authorization header: the certificate is who
        other = await api.get("/v1/units/IMT-TASHKENT/alerts")
        assert other.status_code == 403
        assert other.json()["detail"] == "gulistan-system may not read the inbox of IMT-TASHKENT"
    async with _client(served, "auditor") as api:  # known by its SAN URI alone
        assert (await api.get("/v1/ledger/verify")).status_code == 200


async def test_an_unknown_certificate_of_the_ca_is_refused(served: Setup) -> None:
    async with _client(served, "unknown") as api:
        refused = await api.get("/v1/units/IMT-GULISTAN/alerts", headers=auth("gulistan"))
    assert refused.status_code == 401  # a bearer token beside it does not help
    assert served.certs["unknown"].sha256 in refused.json()["detail"]


@pytest.mark.parametrize("who", ["expired", "foreign"])
async def test_an_expired_or_foreign_certificate_fails_the_handshake(
    served: Setup, who: str
) -> None:
    async with _client(served, who) as api:
        with pytest.raises(httpx.TransportError):
            await api.get("/v1/units/IMT-GULISTAN/alerts")


async def test_without_a_certificate_a_bearer_token_still_works(served: Setup) -> None:
    async with _client(served, None) as api:
        assert (await api.get("/healthz")).status_code == 200
        assert (await api.get("/v1/units/IMT-GULISTAN/alerts")).status_code == 401
        token = await api.get("/v1/units/IMT-GULISTAN/alerts", headers=auth("gulistan"))
        assert token.status_code == 200


async def test_a_forwarded_certificate_header_is_not_believed(served: Setup) -> None:
    """Only the TLS connection this process accepted says which certificate the client holds:
    a header claiming one (as a proxy would send) is ignored."""
    pem = served.certs["officer"].cert.read_text()
    headers = {
        "x-forwarded-client-cert": f"Hash={served.certs['officer'].sha256}",
        "x-ssl-client-cert": pem.replace("\n", "%0A"),
    }
    async with _client(served, None) as api:
        assert (await api.get("/v1/units/IMT-GULISTAN/alerts", headers=headers)).status_code == 401
