"""Publisher signatures (issue 19): the CloudEvents Verifiability extension as Liaison profiles
it, checked against independent implementations (``rfc8785`` for JCS, ``securesystemslib``
for DSSE) and the spec's own test vector; the registry's refusals (pure: no I/O)."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from hypothesis import given
from hypothesis import strategies as st
from securesystemslib import dsse as sslib_dsse
from securesystemslib.signer import SSlibKey

from schemas.events import CloudEvent
from schemas.vocabulary import View
from services.core import dsse
from services.core.config import Principal
from services.core.dsse import SignatureInvalid
from services.core.jcs import canonical
from services.core.keyring import Registry
from services.entrypoints.keys_cli import sign_event
from services.notifier.handlers import view_of

EXAMPLES = Path(__file__).parents[2] / "examples" / "events"
KEY = Ed25519PrivateKey.generate()
OTHER = Ed25519PrivateKey.generate()
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
KEYID = "uz-customs/k1"


def _publisher(signatures: str = "required", **key: Any) -> Principal:
    return Principal.model_validate(
        {
            "name": "uz-customs",
            "role": "publisher",
            "token_sha256": "0" * 64,
            "units": ["BLO-OYBEK", "IMT-GULISTAN"],
            "signatures": signatures,
            "keys": [{"id": "k1", "public_key": dsse.raw_b64(KEY.public_key()), **key}],
        }
    )


def _alert() -> dict[str, Any]:
    raw: dict[str, Any] = json.loads((EXAMPLES / "alert.raised.json").read_text())
    return raw


def _signed(key: Ed25519PrivateKey = KEY, keyid: str = KEYID) -> dict[str, Any]:
    return sign_event(_alert(), key, keyid)


REGISTRY = Registry.of_principals([_publisher()])


def test_a_signed_event_verifies_and_names_its_key() -> None:
    event = _signed()
    assert REGISTRY.check(event, NOW, "uz-customs") == KEYID
    assert REGISTRY.check(event, NOW) == KEYID  # offline: no caller, the unit decides
    assert CloudEvent.model_validate(event).dssematerial == event["dssematerial"]


def test_the_signature_survives_reserialisation() -> None:
    event = _signed()
    # what the ledger stores and replays: the model's canonical text, parsed again
    stored = json.loads(CloudEvent.model_validate(event).to_json())
    assert REGISTRY.check(stored, NOW) == KEYID
    # floats written otherwise (20 vs 20.0), keys in another order: the same JCS bytes
    seizure = sign_event(json.loads((EXAMPLES / "seizure.reported.json").read_text()), KEY, KEYID)
    shuffled = json.loads(json.dumps(seizure, sort_keys=False, indent=2))
    for drug in shuffled["data"]["drugs"]:
        if float(drug["quantity"]).is_integer():
            drug["quantity"] = int(drug["quantity"])
    assert REGISTRY.check(dict(reversed(list(shuffled.items()))), NOW) == KEYID


def test_the_non_nominal_view_of_a_signed_alert_still_verifies() -> None:
    event = CloudEvent.model_validate(_signed())
    copy_abroad = view_of(event, View.NON_NOMINAL)
    assert "persons" not in copy_abroad["data"]
    assert "piidisclosures" not in copy_abroad  # the salts would confirm a guessed name
    assert copy_abroad["data"]["persons_count"] == 1
    assert not any("Example Driver" in json.dumps(v) for v in copy_abroad.values())
    assert REGISTRY.check(copy_abroad, NOW) == KEYID
    # and a recipient's copy whose count or digests were altered does not
    fewer = copy.deepcopy(copy_abroad)
    fewer["piidigests"] = fewer["piidigests"] + "~" + fewer["piidigests"]
    fewer["data"]["persons_count"] = 2
    with pytest.raises(SignatureInvalid, match="bad signature"):
        REGISTRY.check(fewer, NOW)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda e: e["data"].update(severity="routine"), "data"),
        (lambda e: e.update(tlp="clear"), "tlp"),
        (lambda e: e.update(releasableto="UZ,TJ,KZ,AF"), "tlp"),
        (lambda e: e.update(piireleasableto="TJ"), "tlp"),
        (lambda e: e.update(time="2024-03-15T07:40:01+05:00"), "data"),
        (lambda e: e["data"]["persons"][0].update(name="Someone Else"), "data.persons.0"),
    ],
    ids=["data", "tlp", "releasableto", "piireleasableto", "time", "person"],
)
def test_a_changed_event_is_refused_where_it_changed(change: Any, field: str) -> None:
    event = _signed()
    event.setdefault("piireleasableto", "UZ")
    event = _signed_as(event)
    change(event)
    with pytest.raises(SignatureInvalid) as refused:
        REGISTRY.check(event, NOW, "uz-customs")
    assert refused.value.field == field


def _signed_as(event: dict[str, Any]) -> dict[str, Any]:
    return sign_event(event, KEY, KEYID)


def test_each_refusal_says_why() -> None:
    unsigned = json.loads(CloudEvent.model_validate(_alert()).to_json())
    with pytest.raises(SignatureInvalid, match="signature required: uz-customs"):
        REGISTRY.check(unsigned, NOW, "uz-customs")
    optional = Registry.of_principals([_publisher("optional")])
    assert optional.check(unsigned, NOW, "uz-customs") is None
    with pytest.raises(SignatureInvalid, match="unknown key uz-customs/k2"):
        REGISTRY.check(_signed(keyid="uz-customs/k2"), NOW, "uz-customs")
    with pytest.raises(SignatureInvalid, match="bad signature: not made by key uz-customs/k1"):
        REGISTRY.check(_signed(OTHER), NOW, "uz-customs")
    window = Registry.of_principals([_publisher(not_after=NOW - timedelta(days=1))])
    with pytest.raises(SignatureInvalid, match="expired at 2026-02-28T12:00:00Z"):
        window.check(_signed(), NOW, "uz-customs")
    early = Registry.of_principals([_publisher(not_before=NOW + timedelta(days=1))])
    with pytest.raises(SignatureInvalid, match="valid only from"):
        early.check(_signed(), NOW, "uz-customs")
    broken = {**_signed(), "dssematerial": base64.b64encode(b'{"payloadType":"x"}').decode()}
    with pytest.raises(SignatureInvalid, match="payloadType"):
        REGISTRY.check(broken, NOW, "uz-customs")


def test_a_key_revoked_at_t_refuses_from_t_on_and_not_before() -> None:
    revoked = Registry.of_principals([_publisher(revoked_at=NOW)])
    event = _signed()
    assert revoked.check(event, NOW - timedelta(microseconds=1)) == KEYID
    with pytest.raises(SignatureInvalid, match="revoked at 2026-03-01T12:00:00Z"):
        revoked.check(event, NOW)


def test_another_publisher_s_key_does_not_sign_for_a_unit_it_does_not_hold() -> None:
    event = {**_signed(), "source": "/units/BLO-AYRITOM"}
    with pytest.raises(SignatureInvalid, match="may not sign for BLO-AYRITOM"):
        REGISTRY.check(event, NOW)


def test_the_handling_attributes_must_be_signed() -> None:
    event = json.loads(CloudEvent.model_validate(_alert()).to_json())
    del event["data"]["persons"]
    body = dsse.material(event, ())  # core only, as the spec allows and Liaison does not
    envelope = {
        "payload": dsse.b64(body),
        "payloadType": dsse.PAYLOAD_TYPE,
        "signatures": [
            {"keyid": KEYID, "sig": dsse.b64(KEY.sign(dsse.pae(dsse.PAYLOAD_TYPE, body)))}
        ],
    }
    event["dssematerial"] = dsse.b64(json.dumps(envelope).encode())
    with pytest.raises(SignatureInvalid, match="tlp, releasableto, piireleasableto must be signed"):
        REGISTRY.check(event, NOW)


def test_dsse_matches_securesystemslib() -> None:
    """An independent DSSE implementation verifies our envelope (PAE, Base64, keyid)."""
    event = _signed()
    envelope = json.loads(base64.b64decode(event["dssematerial"]))
    raw_hex = KEY.public_key().public_bytes_raw().hex()
    key = SSlibKey(KEYID, "ed25519", "ed25519", {"public": raw_hex})
    parsed = sslib_dsse.Envelope.from_dict(envelope)
    assert parsed.payload_type == dsse.PAYLOAD_TYPE
    assert set(parsed.verify([key], 1)) == {KEYID}
    assert parsed.pae() == dsse.pae(dsse.PAYLOAD_TYPE, parsed.payload)


def test_the_signed_data_is_rfc8785_of_the_sd_form() -> None:
    """CORE hashes rfc8785's bytes of the data with persons as salted digests (RFC 9901)."""
    event = _signed()
    disclosures = event["piidisclosures"].split("~")
    salt, person = json.loads(base64.urlsafe_b64decode(disclosures[0] + "=="))
    assert len(base64.urlsafe_b64decode(salt + "==")) == 16
    assert person == event["data"]["persons"][0]
    digest = base64.urlsafe_b64encode(hashlib.sha256(disclosures[0].encode()).digest())
    sd = dict(event["data"], persons=[{"...": digest.rstrip(b"=").decode()}], _sd_alg="sha-256")
    data_hash = hashlib.sha256(rfc8785.dumps(sd)).digest()
    parts = b"".join(
        hashlib.sha256(b"" if event.get(n) is None else _attr(event, n).encode()).digest()
        for n in dsse.CORE_ATTRIBUTES
    )
    core = hashlib.sha256(parts + data_hash).digest()
    material = json.loads(
        base64.b64decode(json.loads(base64.b64decode(event["dssematerial"]))["payload"])
    )
    assert material["core"] == base64.b64encode(core).decode()
    assert material["signedextattrs"] == ["tlp", "releasableto", "piireleasableto"]


def _attr(event: dict[str, Any], name: str) -> str:
    if name != "time":
        return str(event[name])
    moment = datetime.fromisoformat(event["time"]).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@given(JSON)
def test_jcs_matches_rfc8785(value: Any) -> None:
    try:
        expected = rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, UnicodeEncodeError, ValueError):
        return  # lone surrogates: both refuse (ours is tested below)
    assert canonical(value) == expected


def test_jcs_numbers_are_ecmascript_s() -> None:
    for value, text in [
        (1.0, b"1"),
        (1e21, b"1e+21"),
        (1e-7, b"1e-7"),
        (20.032, b"20.032"),
        (-0.0, b"0"),
    ]:
        assert canonical(value) == text == rfc8785.dumps(value)
    assert not math.isnan(json.loads(canonical(0.1)))


def test_the_spec_test_vector_for_binary_data() -> None:
    """cloudevents/spec verifiability.md, Case 5 (ECDSA P-256 key of the vectors): our CORE of
    the event and our PAE give the material and signature the spec lists."""
    event = {
        "specversion": "1.0",
        "id": "1",
        "source": "example/uri",
        "type": "example.type.binary",
        "datacontenttype": "application/octet-stream",
    }
    out = (
        "eyJwYXlsb2FkVHlwZSI6Imh0dHBzOi8vY2xvdWRldmVudHMuaW8vdmVyaWZpYWJpbGl0eS9kc3NlL3YwLjEiLCJwYXls"
        "b2FkIjoiZXlKamIzSmxJam9pY1VOVFpXbGFhMU1yYUVnNVYybERiR1p4Tm5Cc1puRlpUbFo1TW10MmVGZFNabTlDY2t4"
        "RmVtOUVhejBpZlE9PSIsInNpZ25hdHVyZXMiOlt7ImtleWlkIjoidGVzdGtleSIsInNpZyI6IkYyaXAweG1nSlgzdWdI"
        "WkM2dE1ycjdBMkVxYWkwOHJhR3JUd2R5aC9PR0RJSXJGN0J5TTJ5SVRMS3FOckYzZHpaR1IybzBDczlmRUJGZEx4Uk9V"
        "eUVRPT0ifV19"
    )
    envelope = dsse.open_envelope(out)
    assert envelope.core == dsse.core_digest(event, base64.b64decode("8J+koQ=="))
    x = 46950820868899156662930047687818585632848591499744589407958293238635476079160
    y = 5640078356564379163099075877009565129882514886557779369047442380624545832820
    key = ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
    sig = envelope.signatures[0][1]
    der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    key.verify(der, dsse.pae(dsse.PAYLOAD_TYPE, envelope.body), ec.ECDSA(hashes.SHA256()))


def test_the_spec_walkthrough_ext_digest() -> None:
    event = {"exta": "value1"}
    assert (
        dsse.b64(dsse.ext_digest(event, ["exta"])) == "kU1P8bDaEnyNhglWzdTJNHh77khNWSZebBUxufVM2pU="
    )


@pytest.mark.parametrize(
    "payload",
    [
        {"core": dsse.b64(b"x" * 32), "ext": dsse.b64(b"x" * 32), "signedextattrs": ["a", "a"]},
        {"core": dsse.b64(b"x" * 32), "ext": dsse.b64(b"x" * 32), "signedextattrs": ["a", "id"]},
        {
            "core": dsse.b64(b"x" * 32),
            "ext": dsse.b64(b"x" * 32),
            "signedextattrs": ["dssematerial"],
        },
        {"core": dsse.b64(b"x" * 32), "signedextattrs": ["a"]},
        {"core": dsse.b64(b"x" * 32), "ext": dsse.b64(b"x" * 32)},
        {"core": dsse.b64(b"x" * 31)},
    ],
    ids=["8a-repeat", "8b-core-name", "8c-dssematerial", "8d-no-ext", "8e-no-names", "short-core"],
)
def test_the_spec_s_malformed_materials_are_discarded(payload: dict[str, Any]) -> None:
    envelope = {
        "payload": dsse.b64(json.dumps(payload).encode()),
        "payloadType": dsse.PAYLOAD_TYPE,
        "signatures": [{"keyid": "k", "sig": dsse.b64(b"s")}],
    }
    with pytest.raises(SignatureInvalid):
        dsse.open_envelope(dsse.b64(json.dumps(envelope).encode()))


def test_the_readme_s_integrator_example_signs_what_the_exchange_verifies() -> None:
    """The Python an agency integrator copies from the README (section "Signed events")."""
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Signed events", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(compile(code, "README.md", "exec"), namespace)
    pem = KEY.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    event = json.loads(CloudEvent.model_validate(_alert()).to_json())  # the canonical form
    signed = namespace["sign"](event, pem, KEYID)
    assert REGISTRY.check(signed, NOW, "uz-customs") == KEYID
    stored = json.loads(CloudEvent.model_validate(signed).to_json())
    assert REGISTRY.check(view_of(CloudEvent.model_validate(stored), View.NON_NOMINAL), NOW)
