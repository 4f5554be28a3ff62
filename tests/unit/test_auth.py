"""Bearer tokens resolve to principals; roles and units decide the rest."""

from __future__ import annotations

import pytest

from services.core.auth import (
    Authenticator,
    holds_token,
    require,
    require_officer_of,
    require_unit_reader,
    token_digest,
)
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


def test_refusals_say_who_and_why() -> None:
    """The 403's problem document names the caller and what it lacks (mutation testing found
    these texts unchecked)."""
    cases = [
        (lambda: require(OFFICER, Role.AUDITOR, Role.PUBLISHER),
         "duty is a officer, not auditor or publisher"),
        (lambda: require_unit_reader(OFFICER, "IMT-TASHKENT"),
         "duty may not read the inbox of IMT-TASHKENT"),
        (lambda: require_officer_of(AUDITOR, "IMT-GULISTAN"),
         "only an officer of IMT-GULISTAN may do this"),
    ]  # fmt: skip
    for refuse, detail in cases:
        with pytest.raises(Problem) as caught:
            refuse()
        problem = caught.value
        assert (problem.status, problem.title, problem.detail) == (403, "Forbidden", detail)
    require(AUDITOR, Role.AUDITOR)  # the role it has: no problem


@pytest.mark.parametrize(
    ("digest", "header", "holds"),
    [
        (token_digest("m-tok"), "Bearer m-tok", True),
        (token_digest("m-tok"), "bearer m-tok ", True),
        (token_digest("m-tok"), "Bearer  m-tok", True),  # the token is what follows the scheme
        (token_digest("m-tok"), "Basic m-tok", False),  # the right token, the wrong scheme
        (token_digest("m-tok"), "Bearer ", False),
        (token_digest("m-tok"), "Bearer other", False),
        (token_digest("m-tok"), None, False),
        (None, "Bearer m-tok", False),  # no metrics token configured: nobody holds it
        (None, None, False),
    ],
)
def test_holding_the_metrics_token(digest: str | None, header: str | None, holds: bool) -> None:
    assert holds_token(digest, header) is holds


def test_the_token_is_what_follows_the_bearer_scheme() -> None:
    assert AUTH.authenticate("Bearer  t-off ") == OFFICER
    with pytest.raises(Problem) as caught:
        AUTH.authenticate("Basic t-off")  # a configured token, under another scheme
    assert caught.value.status == 401


@pytest.mark.parametrize(
    ("header", "detail"),
    [(None, "send Authorization: Bearer <token>"), ("Bearer nope", "unknown token")],
)
def test_a_401_says_what_to_send(header: str | None, detail: str) -> None:
    with pytest.raises(Problem) as caught:
        AUTH.authenticate(header)
    assert (caught.value.title, caught.value.detail) == ("Unauthorized", detail)
