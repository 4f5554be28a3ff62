"""The rules verification holds checkpoints to (pure: synthetic chains, no database)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.ledger.chain import GENESIS, entry_hash
from services.ledger.checkpoints import Checkpoint, Policy, signed
from services.ledger.signing import Signer, checkpoint_message
from services.ledger.verify import ChainVerifier, VerifyReport

SIGNER = Signer(Ed25519PrivateKey.generate())
KEYS = {SIGNER.key_id: SIGNER.public_key}
NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
AT = "2026-01-05T11:59:00.000000Z"
INDEX = "0" * 64  # bundles carry no columns: the digest is not checked here


class Entry:
    """A chained entry as a bundle carries it."""

    def __init__(self, seq: int, prev: str, recorded_at: str = AT) -> None:
        self.seq, self.prev_hash, self.recorded_at = seq, prev, recorded_at
        self.event = f'{{"data":{{}},"id":"{seq}"}}'
        self.hash = entry_hash(prev, seq, recorded_at, self.event)


def chain(n: int, recorded_at: str = AT) -> list[Entry]:
    entries, prev = [], GENESIS
    for seq in range(1, n + 1):
        entries.append(Entry(seq, prev, recorded_at))
        prev = entries[-1].hash
    return entries


def checkpoints(entries: list[Entry], sizes: list[int], policy: Policy) -> list[Checkpoint]:
    out: list[Checkpoint] = []
    for size in sizes:
        before = out[-1] if out else None
        out.append(
            signed(
                SIGNER.sign,
                SIGNER.key_id,
                (size, entries[size - 1].hash),
                AT,
                before,
                policy,
                INDEX,
            )
        )
    return out


def verify(entries: list[Entry], signed_: list[Checkpoint], **options: object) -> VerifyReport:
    verifier = ChainVerifier(signed_, KEYS, trusted=True, now=NOW, **options)  # type: ignore[arg-type]
    for entry in entries:
        if not verifier.feed(entry):
            break
    return verifier.finish()


def test_a_chain_signed_by_the_policy_verifies() -> None:
    entries, policy = chain(10), Policy(every=3, interval=60)
    report = verify(entries, checkpoints(entries, [3, 6, 9], policy), policy=policy)
    assert (report.ok, report.checkpoints, report.unsigned, report.origin_verified) == (
        True, 3, 1, True,
    )  # fmt: skip


@pytest.mark.parametrize(("minutes_ago", "ok"), [(1, True), (1.9, True), (2.1, False), (60, False)])
def test_an_unsigned_tail_may_wait_twice_the_interval(minutes_ago: float, ok: bool) -> None:
    policy = Policy(every=1000, interval=60)
    signed_at = (NOW - timedelta(minutes=minutes_ago)).isoformat().replace("+00:00", "Z")
    entries = chain(3)
    tail = Entry(4, entries[-1].hash, signed_at)
    report = verify([*entries, tail], checkpoints(entries, [3], policy))
    assert report.ok is ok
    if not ok:
        assert report.first_bad_seq == 4
        assert "more than twice CHECKPOINT_INTERVAL (60 s)" in report.problems[0]


def test_the_checkpoints_own_policy_rules_not_the_verifiers() -> None:
    entries, signed_under = chain(8), Policy(every=3, interval=60)
    report = verify(entries, checkpoints(entries, [3], signed_under), policy=Policy(every=1000))
    assert (report.ok, report.first_bad_seq) == (False, 4)  # 5 unsigned > 3
    assert "more than CHECKPOINT_EVERY (3)" in report.problems[0]


def test_a_bundle_must_end_at_a_checkpoint() -> None:
    entries, policy = chain(4), Policy(every=3, interval=60)
    report = verify(entries, checkpoints(entries, [3], policy), bundle=True)
    assert (report.ok, report.first_bad_seq) == (False, 4)
    assert "the bundle does not end at a signed checkpoint" in report.problems[0]
    assert verify(entries, checkpoints(entries, [3, 4], policy), bundle=True).ok


def test_a_gap_within_the_larger_of_two_policies_is_no_gap() -> None:
    entries = chain(9)
    first = checkpoints(entries, [5], Policy(every=5, interval=60))
    lowered = signed(
        SIGNER.sign, SIGNER.key_id, (9, entries[8].hash), AT, first[0], Policy(every=2), INDEX
    )
    assert verify(entries, [*first, lowered]).ok
    too_far = signed(
        SIGNER.sign, SIGNER.key_id, (9, entries[8].hash), AT, None, Policy(every=5), INDEX
    )
    report = verify(entries, [too_far])
    assert (report.ok, report.first_bad_seq) == (False, 1)
    assert "entries 1-9 have none within CHECKPOINT_EVERY (5)" in report.problems[0]


def test_a_replaced_checkpoint_breaks_the_chain() -> None:
    entries, policy = chain(6), Policy(every=3, interval=60)
    first, second = checkpoints(entries, [3, 6], policy)
    other = replace(first, signed_at="2026-01-05T11:00:00.000000Z")  # same head, other message
    other = replace(other, signature=SIGNER.sign(other.message()))
    report = verify(entries, [other, second])
    assert (report.ok, report.first_bad_seq) == (False, 6)
    assert "checkpoint chain is broken" in report.problems[0]


def test_version_1_checkpoints_verify_and_the_first_version_2_names_the_last() -> None:
    entries, policy = chain(6), Policy(every=3, interval=60)
    head = entries[2].hash
    v1 = Checkpoint(3, head, AT, SIGNER.key_id, SIGNER.sign(checkpoint_message(3, head, AT)))
    v2 = signed(SIGNER.sign, SIGNER.key_id, (6, entries[5].hash), AT, v1, policy, INDEX)
    assert v1.to_dict().keys() == {"size", "head_hash", "signed_at", "key_id", "signature"}
    assert Checkpoint.from_dict(v2.to_dict()) == v2
    assert verify(entries, [v1, v2]).ok
    report = verify(entries, [v2])  # the v1 it names is gone
    assert "checkpoint chain is broken" in report.problems[0]


def test_without_a_trusted_key_the_origin_is_unverified() -> None:
    entries, policy = chain(3), Policy(every=3, interval=60)
    verifier = ChainVerifier(checkpoints(entries, [3], policy), KEYS, now=NOW)  # the bundle's own
    for entry in entries:
        verifier.feed(entry)
    report = verifier.finish()
    assert (report.ok, report.origin_verified, report.trusted_keys) == (True, False, [])
    other = Signer(Ed25519PrivateKey.generate())
    report = verify(entries, checkpoints(entries, [3], policy), policy=policy)
    assert report.origin_verified
    foreign = ChainVerifier(
        checkpoints(entries, [3], policy), {other.key_id: other.public_key}, trusted=True, now=NOW
    )
    assert "signature does not verify with a trusted key" in foreign.report.problems[0]


def test_each_way_a_chain_breaks_is_named_once_at_its_seq() -> None:
    """Verification stops at the first break and says what it is (mutation testing: the texts,
    and going on after a break, were unchecked)."""
    policy = Policy(every=100, interval=3600)
    entries = chain(5)
    deleted = [e for e in entries if e.seq != 3]
    altered = chain(5)
    altered[2].event = '{"data":{},"id":"forged"}'
    relinked = chain(5)
    relinked[2].prev_hash = "f" * 64
    cases = [
        (deleted, "seq 3: missing: the chain jumps to seq 4"),
        (altered, "seq 3: hash does not match the entry's content"),
        (relinked, "seq 3: prev_hash does not match the previous entry's hash"),
    ]
    for broken, problem in cases:
        report = verify(broken, checkpoints(entries, [2], policy))
        assert (report.ok, report.first_bad_seq, report.problems) == (False, 3, [problem])


def test_a_checkpoint_that_signs_other_entries_than_the_chain_holds_is_named() -> None:
    policy = Policy(every=100, interval=3600)
    signed_ = checkpoints(chain(4), [2, 4], policy)
    rewritten = chain(4, recorded_at="2026-01-05T11:58:00.000000Z")  # same seqs, other hashes
    report = verify(rewritten, signed_)
    assert report.problems == [
        "seq 2: differs from the signed checkpoint: entries up to here were rewritten"
    ]


def test_two_checkpoints_of_one_size_are_named() -> None:
    policy = Policy(every=100, interval=3600)
    entries = chain(3)
    first = checkpoints(entries, [2], policy)[0]
    again = signed(SIGNER.sign, SIGNER.key_id, (2, entries[1].hash), AT, first, policy, INDEX)
    report = verify(entries, [first, again])
    assert "seq 2: two checkpoints for one size" in report.problems


@pytest.mark.parametrize(("sizes", "ok"), [([3, 6], True), ([3, 7], False), ([4], False)])
def test_checkpoints_may_be_every_entries_apart_and_no_more(sizes: list[int], ok: bool) -> None:
    entries = chain(sizes[-1])
    report = verify(entries, checkpoints(entries, sizes, Policy(every=3, interval=3600)))
    assert report.ok is ok
    if not ok:
        start = 3 if len(sizes) == 2 else 0
        assert report.problems[0] == (
            f"seq {start + 1}: checkpoints are missing: entries {start + 1}-{sizes[-1]} have "
            "none within CHECKPOINT_EVERY (3)"
        )
