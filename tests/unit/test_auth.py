"""Bearer tokens resolve to principals; roles and units decide the rest."""

from __future__ import annotations

import pytest

from services.core.auth import Authenticator, require_officer_of, require_unit_reader, token_digest
from services.core.config import Principal, Role
from services.core.problems import Problem

OFFICER = Principal(
    name="duty", role=Role.OFFICER, token_sha256=token_digest("t-off"), unit="IMT-GULISTAN"
)
AUDITOR = Principal(name="audit", role=Role.AUDITOR, token_sha256=token_digest("t-aud"))
AUTH = Authenticator([OFFICER, AUDITOR])


def test_token_resolves_to_its_principal() -> None:
    assert AUTH.authenticate("Bearer t-off") == OFFICER
    assert AUTH.authenticate("bearer t-aud") == AUDITOR


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer ", "Basic dXNlcg==", "Bearer nope"])
def test_anything_else_is_401(header: str | None) -> None:
    with pytest.raises(Problem) as caught:
        AUTH.authenticate(header)
    assert caught.value.status == 401
    assert caught.value.headers == {"WWW-Authenticate": 'Bearer realm="liaison"'}


def test_digest_is_sha256_hex() -> None:
    assert token_digest("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_unit_rights() -> None:
    require_unit_reader(OFFICER, "IMT-GULISTAN")
    require_unit_reader(AUDITOR, "IMT-TASHKENT")
    require_officer_of(OFFICER, "IMT-GULISTAN")
    for check, who, unit in [
        (require_unit_reader, OFFICER, "IMT-TASHKENT"),
        (require_officer_of, OFFICER, "IMT-TASHKENT"),
        (require_officer_of, AUDITOR, "IMT-GULISTAN"),
    ]:
        with pytest.raises(Problem) as caught:
            check(who, unit)
        assert caught.value.status == 403
