"""A witness at work with the `liaison` command (issue 19): a partner organisation cosigns an
exported bundle, the operator stores the cosignature, auditors require the witness; then
the operator edits an entry, re-chains and re-signs every checkpoint with the operator's own
key — a bundle that verifies with that key alone — and the witness's cosignature catches it,
kept in the bundle, dropped from it, or held by the witness."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from services.ledger.chain import GENESIS, entry_hash
from services.ledger.checkpoints import Checkpoint, signed
from services.ledger.signing import load_or_create_signer
from tests.e2e.test_cli import run

NAME = "niac.uz/witness"
pytestmark = pytest.mark.timeout(300)  # about ten `liaison` commands, each a new interpreter


@pytest.fixture(scope="module")
def witnessed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The demo's ledger, a witness key, its cosignature of the exported bundle, stored."""
    base = tmp_path_factory.mktemp("witnessed")
    paths = {
        "data": base / "data",
        "bundle": base / "ledger.jsonl",
        "ledger_key": base / "ledger-key.pem",
        "witness_key": base / "witness.pem",
        "vkeys": base / "witnesses.txt",
        "state": base / "witness-state.json",
        "note": base / "cosigned.txt",
        "config": base / "liaison.yaml",
    }
    assert run("demo", "--data-dir", str(paths["data"])).returncode == 0
    env = {"LIAISON_DATA_DIR": str(paths["data"])}
    assert run("ledger", "export", str(paths["bundle"]), env=env).returncode == 0
    paths["ledger_key"].write_text(run("ledger", "public-key", env=env).stdout)
    made = run("witness", "new-key", "--name", NAME, str(paths["witness_key"]))
    assert made.returncode == 0, made.stderr
    vkey = made.stdout.strip()
    paths["vkeys"].write_text(vkey + "\n")
    assert paths["witness_key"].stat().st_mode & 0o777 == 0o600
    cosigned = _cosign(paths, paths["bundle"])
    assert cosigned.returncode == 0, cosigned.stderr
    assert cosigned.stdout == paths["note"].read_text()
    paths["config"].write_text(
        "principals:\n  - {name: niac-witness, role: witness, token_sha256: "
        + "a" * 64
        + f", witness_key: '{vkey}'}}\n"
    )
    stored = run(
        "ledger", "cosignature", str(paths["note"]),
        env=env | {"LIAISON_CONFIG": str(paths["config"])},
    )  # fmt: skip
    assert stored.returncode == 0, stored.stderr
    assert stored.stdout.startswith(f"stored: {NAME} cosigned 8 entries")
    return paths


def _cosign(paths: dict[str, Path], bundle: Path) -> subprocess.CompletedProcess[str]:
    return run(
        "witness", "cosign", "--bundle", str(bundle), "--key", str(paths["witness_key"]),
        "--name", NAME, "--ledger-key", str(paths["ledger_key"]), "--state", str(paths["state"]),
        "--out", str(paths["note"]),
    )  # fmt: skip


def _verify(
    paths: dict[str, Path], *args: str, bundle: Path | None = None
) -> subprocess.CompletedProcess[str]:
    where = ["--bundle", str(bundle)] if bundle else []
    env = {} if bundle else {"LIAISON_DATA_DIR": str(paths["data"])}
    return run("ledger", "verify", *where, "--public-key", str(paths["ledger_key"]), *args, env=env)


def test_the_witness_s_cosignature_is_reported_from_the_database_and_the_bundle(
    witnessed: dict[str, Path], tmp_path: Path
) -> None:
    result = _verify(witnessed, "--witness-key", str(witnessed["vkeys"]))
    assert result.returncode == 0, result.stdout
    assert f"witness {NAME} cosigned up to 8 entries at " in result.stdout
    pinned = run(
        "ledger", "verify", "--public-key", str(witnessed["ledger_key"]),
        env={"LIAISON_DATA_DIR": str(witnessed["data"]), "LIAISON_WITNESS_KEYS": str(witnessed["vkeys"])},
    )  # fmt: skip
    assert pinned.returncode == 0
    assert f"witness {NAME} cosigned up to 8 entries" in pinned.stdout
    again = tmp_path / "again.jsonl"
    env = {"LIAISON_DATA_DIR": str(witnessed["data"])}
    assert run("ledger", "export", str(again), env=env).returncode == 0
    assert '{"cosignature": {"witness": "niac.uz/witness", "size": 8' in again.read_text()
    offline = _verify(witnessed, "--witness-key", str(witnessed["vkeys"]), bundle=again)
    assert offline.returncode == 0, offline.stdout
    assert f"witness {NAME} cosigned up to 8 entries" in offline.stdout
    # an older bundle (no cosignature lines) still verifies, and is UNWITNESSED if required
    assert _verify(witnessed, bundle=witnessed["bundle"]).returncode == 0
    required = _verify(
        witnessed, "--witness-key", str(witnessed["vkeys"]), bundle=witnessed["bundle"]
    )
    assert required.returncode == 3
    assert required.stdout.startswith("UNWITNESSED: 8 entries verify")


def _resigned_by_the_operator(
    paths: dict[str, Path], bundle: Path, out: Path, *, keep: bool
) -> None:
    """Entry 7 (the seizure) edited, every hash after it recomputed, every checkpoint re-signed
    with the ledger's own key; the witness's cosignature lines kept or dropped."""
    signer = load_or_create_signer(paths["data"] / "ledger-signing-key.pem")
    lines = [json.loads(line) for line in bundle.read_text().splitlines()]
    entries = [line["entry"] for line in lines if "entry" in line]
    prev, heads = GENESIS, {}
    for entry in entries:
        entry["event"] = entry["event"].replace("20.032", "2.032")
        entry["prev_hash"] = prev
        entry["hash"] = entry_hash(prev, entry["seq"], entry["recorded_at"], entry["event"])
        prev = heads[entry["seq"]] = entry["hash"]
    out_lines, before = [lines[0]], None
    for line in lines[1:]:
        if "checkpoint" in line:
            old = Checkpoint.from_dict(line["checkpoint"])
            assert old.policy is not None
            head = (old.size, heads[old.size])
            index = old.index_hash or ""
            before = signed(
                signer.sign, signer.key_id, head, old.signed_at, before, old.policy, index
            )
            out_lines.append({"checkpoint": before.to_dict()})
        elif "cosignature" in line and keep:
            out_lines.append(line)
    out_lines += [{"entry": e} for e in entries]
    out.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in out_lines))


def test_an_operator_who_edits_and_re_signs_is_caught_by_the_witness(
    witnessed: dict[str, Path], tmp_path: Path
) -> None:
    exported = tmp_path / "with-cosignature.jsonl"
    env = {"LIAISON_DATA_DIR": str(witnessed["data"])}
    assert run("ledger", "export", str(exported), env=env).returncode == 0
    kept, dropped = tmp_path / "kept.jsonl", tmp_path / "dropped.jsonl"
    _resigned_by_the_operator(witnessed, exported, kept, keep=True)
    _resigned_by_the_operator(witnessed, exported, dropped, keep=False)

    # the operator's key alone vouches for the forgery: the attack the witness is there for
    alone = _verify(witnessed, bundle=dropped)
    assert alone.returncode == 0
    assert alone.stdout.startswith("OK 8 entries")

    vkeys = ["--witness-key", str(witnessed["vkeys"])]
    caught = _verify(witnessed, *vkeys, bundle=kept)  # the cosignature kept: it no longer matches
    assert caught.returncode == 1
    assert caught.stdout.startswith("BROKEN at seq 8")
    assert f"differs from what witness {NAME} cosigned at 8 entries" in caught.stdout
    unwitnessed = _verify(witnessed, *vkeys, bundle=dropped)  # dropped: the witness is missing
    assert unwitnessed.returncode == 3
    assert unwitnessed.stdout.startswith("UNWITNESSED")
    held = _verify(witnessed, *vkeys, "--cosigned", str(witnessed["note"]), bundle=dropped)
    assert held.returncode == 1  # the cosigned checkpoint the witness (or an auditor) kept
    assert "rewritten or forked" in held.stdout

    # and the witness, asked to cosign the forged history, refuses: nothing signed
    state = witnessed["state"].read_text()
    refused = _cosign(witnessed, dropped)
    assert refused.returncode == 1
    assert refused.stderr.startswith("FORK: its first 8 entries are not what you cosigned")
    assert witnessed["state"].read_text() == state


def test_a_witness_refuses_a_ledger_that_went_back(
    witnessed: dict[str, Path], tmp_path: Path
) -> None:
    shorter = tmp_path / "shorter.jsonl"
    lines = witnessed["bundle"].read_text().splitlines(keepends=True)
    header, rest = lines[0], lines[1:]
    first = [line for line in rest if '"checkpoint"' in line][:1]  # the first checkpoint only
    size = json.loads(first[0])["checkpoint"]["size"]
    entries = [line for line in rest if '"entry"' in line][:size]
    shorter.write_text(header + "".join(first) + "".join(entries))
    refused = _cosign(witnessed, shorter)
    assert refused.returncode == 1
    assert refused.stderr.startswith(f"FORK: the ledger went back: {size} entries, you cosigned 8")
