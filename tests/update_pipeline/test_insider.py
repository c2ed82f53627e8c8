"""An insider who can run the CLI and write every file in the store: each attack fails with exit 1
naming the problem, and revocation never rewrites history.

One promoted store is built per module and copied for each attack."""

import json
import shutil
import sqlite3

import pytest

from governance.signing import sha256_hex, sign_envelope, unverified_statement
from tests.conftest import PASSPHRASES
from tests.test_cli import wg
from tests.update_pipeline.test_tamper import promoted  # noqa: F401  (module-scoped store, two promotions)

ENV = {f"WEIGHTGATE_PASSPHRASE_{n.upper()}": p for n, p in {**PASSPHRASES, "mallory": "mallory-passphrase"}.items()}


@pytest.fixture
def home(promoted, tmp_path):  # noqa: F811
    shutil.copytree(promoted.home, tmp_path / "home", symlinks=True)
    return tmp_path / "home"


def run(*args, home, **kw):
    return wg(*args, home=home, env={**ENV, **kw.pop("env", {})}, **kw)


def _rows(home):
    with sqlite3.connect(home / "ledger.db") as db:
        return db.execute("SELECT seq, digest, envelope FROM ledger_entries ORDER BY seq").fetchall()


def _insert(home, predicate, signer, seq=None):
    """Write `predicate` as entry `seq` (default: a new last one), signed with `signer`'s key and chained
    to the row before, as an insider with the database and a key would."""
    import time

    from governance.keys import KeyRing
    from governance.signing import statement

    rows = _rows(home)
    seq = seq or len(rows) + 1
    pred = {**predicate, "seq": seq, "prev": rows[seq - 2][1], "created": time.time()}
    subjects = {"forged": "0" * 64}
    keys = KeyRing(home / "keys")
    s = keys.gate_signer() if signer == "gate" else keys.signer(signer, PASSPHRASES.get(signer, "mallory-passphrase"))
    env = sign_envelope(statement(subjects, "LedgerEntry/v1", pred), s.key, s.keyid)
    with sqlite3.connect(home / "ledger.db") as db:
        db.execute("DELETE FROM ledger_entries WHERE seq >= ?", (seq,))
        db.execute("INSERT INTO ledger_entries VALUES (?, ?, ?)", (seq, sha256_hex(env), env))


def _proposal(home, promoted, tmp_path):  # noqa: F811
    """A fresh, checked proposal by alice against the champion (made in this process: the attacks below use
    the CLI)."""
    from governance.data import load_jsonl
    from governance.store import Store
    from tests.conftest import write_jsonl
    from update_pipeline import refs, world
    from update_pipeline.check import check
    from update_pipeline.intake import propose
    from update_pipeline.train import train_update

    data = write_jsonl(tmp_path / "next.jsonl", world.fact_records(world.countries(n=40)[37:], "curated"))
    out = tmp_path / "next"
    store = Store.locate(home)
    train_update(refs.resolve("ledger:champion", store), "ledger:champion", load_jsonl(data), out, epochs=1)
    pid = propose(store, "ledger:champion", out, data, "alice", PASSPHRASES["alice"]).id
    assert check(store, pid).report["verdict"] == "pass"
    return pid


def test_clean_copy_verifies(home):
    r = run("ledger", "verify", "--deep", home=home)
    assert r.returncode == 0, r.stderr
    assert "witnesses: MLflow (entry 7)" in r.stdout


def test_self_minted_approver_grants_nothing(home, tmp_path, promoted):  # noqa: F811
    pid = _proposal(home, promoted, tmp_path)
    assert run("keys", "create", "mallory", "--role", "approver", home=home).returncode == 0
    r = run("approve", pid, "--by", "mallory", home=home)
    assert r.returncode == 1 and "not in the trust root" in r.stderr and "grants nothing" in r.stderr
    # bypassing the CLI: her approval written straight into the proposal, then promote
    from governance.keys import KeyRing
    from governance.signing import statement

    report = sorted((home / "proposals" / pid / "reports").glob("*.dsse.json"))[-1].read_bytes()
    m = KeyRing(home / "keys").signer("mallory", "mallory-passphrase")
    body = statement({"report": sha256_hex(report)}, "Approval/v1", {"proposal": pid, "decision": "approve",
                                                                      "comment": "", "approver": "mallory",
                                                                      "created": 0})
    (home / "proposals" / pid / "decisions").mkdir(exist_ok=True)
    (home / "proposals" / pid / "decisions" / "1-mallory.dsse.json").write_bytes(sign_envelope(body, m.key, m.keyid))
    r = run("promote", pid, "--by", "olga", home=home)
    assert r.returncode == 1 and "approvals 0/1 (signed: nobody" in r.stderr
    assert run("ledger", "verify", home=home).returncode == 0


def test_planted_role_in_a_key_file_changes_nothing(home, tmp_path, promoted):  # noqa: F811
    pid = _proposal(home, promoted, tmp_path)
    rec = home / "keys" / "alice.json"
    data = json.loads(rec.read_text())
    data["role"] = "approver"  # alice (the proposer) promotes herself in her own key file
    rec.write_text(json.dumps(data))
    r = run("approve", pid, "--by", "alice", home=home)
    assert r.returncode == 1 and "has role 'proposer' in the trust root" in r.stderr
    r = run("promote", pid, "--by", "alice", home=home)
    assert r.returncode == 1 and "has role 'proposer'" in r.stderr
    assert run("ledger", "verify", home=home).returncode == 0


def test_entry_rewritten_and_resigned_with_the_gate_key(home):
    pred = unverified_statement(bytes(_rows(home)[4][2]))["predicate"]
    _insert(home, {**pred, "proposal": {**pred["proposal"], "note": "nothing to see"}}, "gate", seq=5)
    r = run("ledger", "verify", home=home)
    assert r.returncode == 1 and "ledger entry 5" in r.stderr and "weightgate-gate (gate)" in r.stderr
    out = home.parent / "bundle"  # nor does an export carry it past an auditor
    assert run("audit", "export", "--out", str(out), home=home).returncode == 1


def test_deleted_last_rows(home):
    with sqlite3.connect(home / "ledger.db") as db:
        db.execute("DELETE FROM ledger_entries WHERE seq = 7")
    r = run("ledger", "verify", home=home)
    assert r.returncode == 1 and "checkpoint of ledger entry 7" in r.stderr and "has 6 entries" in r.stderr
    r = run("rollback", "--to", "0", "--by", "bob", home=home)  # no write lands on a truncated ledger
    assert r.returncode == 1 and "entries were deleted" in r.stderr
    assert len(_rows(home)) == 6


def test_older_copy_of_the_database(home):
    old = (home / "ledger.db").read_bytes()
    assert run("rollback", "--to", "1", "--by", "bob", home=home).returncode == 0
    (home / "ledger.db").write_bytes(old)
    r = run("ledger", "verify", home=home)
    assert r.returncode == 1 and "checkpoint of ledger entry 8" in r.stderr and "older copy" in r.stderr


def test_replaced_database_is_caught_by_a_file_witness_outside_the_store(home, tmp_path):
    """The insider rolls back ledger.db and mlflow.db together; the policy's witness file lives elsewhere."""
    import yaml

    witness = tmp_path / "elsewhere" / "checkpoints.jsonl"
    policy = yaml.safe_load((home / "policy.yaml").read_text())
    policy["witnesses"] = [str(witness)]
    (home / "policy.yaml").write_text(yaml.safe_dump(policy))
    assert run("policy", "apply", str(home / "policy.yaml"), "--by", "dan", home=home).returncode == 0
    snapshot = {n: (home / n).read_bytes() for n in ("ledger.db", "mlflow.db")}
    r = run("rollback", "--to", "1", "--by", "bob", "--reason", "drill", home=home)
    assert r.returncode == 0, r.stderr
    assert witness.is_file() and run("ledger", "verify", home=home).returncode == 0
    for n, raw in snapshot.items():
        (home / n).write_bytes(raw)
    r = run("ledger", "verify", home=home)
    assert r.returncode == 1 and f"witness file {witness}" in r.stderr and "entry 9" in r.stderr


def _mlflow(home):
    from mlflow import MlflowClient

    uri = f"sqlite:///{home / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _champion_to_base(client):
    """Point @champion at the registered version of ledger:0; return that version."""
    v0 = next(mv for mv in client.search_model_versions("name = 'weightgate-model'")
              if mv.tags["weightgate.ledger_version"] == "0")
    client.set_registered_model_alias("weightgate-model", "champion", v0.version)
    return v0


def test_alias_drift_is_caught(home):
    _champion_to_base(_mlflow(home))
    r = run("ledger", "verify", home=home)
    assert r.returncode == 1 and "@champion serves registered version" in r.stderr and "(tagged ledger:0)" in r.stderr
    assert "ledger's champion ledger:2" in r.stderr


def test_rollback_needs_authority(home):
    r = run("rollback", "--to", "0", home=home)
    assert r.returncode == 2 and "--by" in r.stderr
    for who in ("alice", "carol"):  # the proposer, an auditor
        r = run("rollback", "--to", "0", "--by", who, home=home)
        assert r.returncode == 1 and "rollback needs" in r.stderr
    # writing the entry by hand, signed by the proposer
    _insert(home, {"action": "rollback", "version": 0, "champion": 0, "from": 2, "reason": ""}, "alice")
    r = run("ledger", "verify", home=home)
    assert r.returncode == 1 and "ledger entry 8: rollback needs 1 signature(s)" in r.stderr
    assert "alice (proposer)" in r.stderr


def test_rollback_threshold_of_two(home):
    assert run("trust", "thresholds", "--rollback", "2", "--by", "dan", home=home).returncode == 0
    r = run("rollback", "--to", "0", "--by", "bob", home=home)
    assert r.returncode == 1 and "needs 2 distinct signature(s)" in r.stderr
    r = run("rollback", "--to", "0", "--by", "bob", "--by", "olga", home=home)
    assert r.returncode == 0, r.stderr
    rows = json.loads(run("ledger", "show", "--json", home=home).stdout)
    assert rows[-1]["action"] == "rollback" and rows[-1]["signed_by"] == ["bob", "olga"]
    assert run("ledger", "verify", home=home).returncode == 0


def test_revocation_keeps_history_and_refuses_later_signatures(home, tmp_path, promoted):  # noqa: F811
    pid = _proposal(home, promoted, tmp_path)
    assert run("approve", pid, "--by", "bob", home=home).returncode == 0
    r = run("trust", "revoke", "bob", "--by", "dan", home=home)
    assert r.returncode == 0 and "trust root v2" in r.stdout
    r = run("ledger", "verify", "--deep", home=home)  # bob approved both promotions: history still verifies
    assert r.returncode == 0, r.stderr
    r = run("promote", pid, "--by", "olga", home=home)  # his approval, made before, no longer counts
    assert r.returncode == 1 and "approvals 0/1" in r.stderr
    r = run("rollback", "--to", "0", "--by", "bob", home=home)
    assert r.returncode == 1 and "not in the trust root" in r.stderr
    _insert(home, {"action": "rollback", "version": 0, "champion": 0, "from": 2, "reason": ""}, "bob")
    r = run("ledger", "verify", home=home)
    assert r.returncode == 1 and "ledger entry 10: no signature by a key of root v2" in r.stderr


def test_root_changes_need_the_admins(home):
    r = run("keys", "create", "mallory", "--role", "root", home=home)
    assert r.returncode == 0
    from governance.keys import KeyRing

    info = KeyRing(home / "keys").get("mallory")
    r = run("trust", "add-key", "mallory", "--role", "approver", "--keyid", info.keyid, "--by", "mallory", home=home)
    assert r.returncode == 1 and "not in the trust root" in r.stderr
    r = run("trust", "add-key", "mallory", "--role", "approver", "--keyid", info.keyid, "--by", "olga", home=home)
    assert r.returncode == 1 and "has role 'operator'" in r.stderr
    # a root version written by hand, signed by mallory alone, listing herself as admin
    rootdoc = unverified_statement(bytes(_rows(home)[0][2]))["predicate"]["root"]
    rootdoc = {**rootdoc, "version": 2, "keys": {**rootdoc["keys"], info.keyid: {
        "name": "mallory", "role": "root", "public_key": info.public_key}}}
    _insert(home, {"action": "root", "version": 2, "champion": 2, "root": rootdoc}, "mallory")
    r = run("ledger", "verify", home=home)
    assert r.returncode == 1 and "ledger entry 8" in r.stderr and "root needs 1 signature(s)" in r.stderr


def test_a_whole_new_ledger_is_not_the_pinned_one(home, tmp_path, base_model):
    """Mallory replaces ledger.db, mlflow.db and config.json with a store of her own: only a fingerprint
    pinned outside the store tells them apart."""
    from governance.store import Store
    from tests.conftest import trusted_store
    from update_pipeline import world

    pinned = json.loads((home / "config.json").read_text())["root_fingerprint"]
    fake = Store.locate(tmp_path / "fake")
    fake.init(world.policy(tmp_path / "policy.yaml"))  # the policy our store has
    trusted_store(fake)
    for n in ("ledger.db", "config.json"):
        shutil.copyfile(fake.home / n, home / n)
    r = run("ledger", "verify", home=home)  # her config and her ledger; our MLflow still holds our checkpoint
    assert r.returncode == 1 and "checkpoint" in r.stderr
    r = run("ledger", "verify", "--root-fingerprint", pinned, home=home)
    assert r.returncode == 1 and "not the ledger you pinned" in r.stderr
    r = run("ledger", "verify", home=home, env={"WEIGHTGATE_ROOT_FINGERPRINT": pinned})
    assert r.returncode == 1 and "not the ledger you pinned" in r.stderr


def test_key_rotation(home, tmp_path):
    assert run("keys", "create", "bob-2027", "--role", "approver", home=home,
               env={"WEIGHTGATE_PASSPHRASE_BOB_2027": "bob-2027-passphrase"}).returncode == 0
    from governance.keys import KeyRing

    new = KeyRing(home / "keys").get("bob-2027").keyid
    r = run("trust", "rotate", "bob", "--to", "bob-2027", "--by", "dan", home=home)
    assert r.returncode == 2 and "--keyid" in r.stderr
    r = run("trust", "rotate", "bob", "--to", "bob-2027", "--keyid", new[:16], "--by", "dan", home=home)
    assert r.returncode == 0 and "bob-2027" in r.stdout
    r = run("rollback", "--to", "1", "--by", "bob-2027", home=home, env={"WEIGHTGATE_PASSPHRASE_BOB_2027":
                                                                          "bob-2027-passphrase"})
    assert r.returncode == 0, r.stderr
    assert run("rollback", "--to", "0", "--by", "bob", home=home).returncode == 1
    assert run("ledger", "verify", "--deep", home=home).returncode == 0


def test_deep_verify_finds_a_missing_data_key_and_a_dangling_rollback(home):
    with sqlite3.connect(home / "ledger.db") as db:
        db.execute("DELETE FROM data_keys WHERE rowid = (SELECT MIN(rowid) FROM data_keys)")
    assert run("ledger", "verify", home=home).returncode == 0  # the chain itself is intact
    r = run("ledger", "verify", "--deep", home=home)
    assert r.returncode == 1 and "no forget entry shredded it" in r.stderr


def test_swapped_key_file_before_add_key_is_caught(home, tmp_path):
    """Ruth makes her key and reads its id to the admin; Mallory swaps the store's copy for her own."""
    from governance.keys import KeyRing

    ruth = KeyRing(home / "keys").create("ruth", "approver", "ruth-passphrase")
    fake = KeyRing(tmp_path / "mallory-keys").create("ruth", "approver", "mallory-passphrase")
    for suffix in (".json", ".key"):
        shutil.copyfile(tmp_path / "mallory-keys" / f"ruth{suffix}", home / "keys" / f"ruth{suffix}")
    r = run("trust", "add-key", "ruth", "--role", "approver", "--by", "dan", home=home)
    assert r.returncode == 2 and "--keyid" in r.stderr
    r = run("trust", "add-key", "ruth", "--role", "approver", "--keyid", ruth.keyid[:16], "--by", "dan", home=home)
    assert r.returncode == 2 and f"has id {fake.keyid[:16]}" in r.stderr
    assert "ruth" not in run("trust", "show", home=home).stdout


def test_served_model_must_be_the_champion(home):
    """@champion pointed at the base, its version re-tagged as the champion: the served bytes give it away."""
    client = _mlflow(home)
    v0 = _champion_to_base(client)
    client.set_model_version_tag("weightgate-model", v0.version, "weightgate.ledger_version", "2")
    r = run("ledger", "verify", home=home)
    assert r.returncode == 1 and "are not those of the ledger's champion" in r.stderr


def test_mlflow_moved_back_one_write(home):
    """After a rollback, MLflow's checkpoint and alias are set back to the previous (signed) state."""
    client = _mlflow(home)
    before = client.get_registered_model("weightgate-model").tags["weightgate.checkpoint"]
    alias = client.get_model_version_by_alias("weightgate-model", "champion").version
    assert run("rollback", "--to", "0", "--by", "bob", home=home).returncode == 0
    client.set_registered_model_tag("weightgate-model", "weightgate.checkpoint", before)
    client.set_registered_model_alias("weightgate-model", "champion", alias)
    r = run("ledger", "verify", home=home)
    assert r.returncode == 1 and "is behind the ledger" in r.stderr
    assert run("ledger", "checkpoint", "--by", "bob", home=home).returncode == 0  # MLflow follows the ledger again
    assert run("ledger", "verify", home=home).returncode == 0
    assert client.get_model_version_by_alias("weightgate-model", "champion").tags["weightgate.ledger_version"] == "0"


def test_policy_approvals_above_the_root_are_enforced_by_verify(home, tmp_path, promoted):  # noqa: F811
    """The policy asks for 2 approvals (the root for 1); a promotion written with 1 does not verify."""
    import yaml

    policy = yaml.safe_load((home / "policy.yaml").read_text())
    policy["approvals"]["required"] = 2
    (home / "policy.yaml").write_text(yaml.safe_dump(policy))
    assert run("policy", "apply", str(home / "policy.yaml"), "--by", "dan", home=home).returncode == 0
    pid = _proposal(home, promoted, tmp_path)
    assert run("approve", pid, "--by", "bob", home=home).returncode == 0
    r = run("promote", pid, "--by", "olga", home=home)
    assert r.returncode == 1 and "approvals 1/2" in r.stderr
    # the releaser's library call with the threshold lowered to the root's: verify refuses what it wrote
    from governance.store import Store
    from update_pipeline import promote as flow
    from update_pipeline.service import Weightgate

    store = Store.locate(home)
    original = flow.required_approvals
    flow.required_approvals = lambda *_: 1
    try:
        Weightgate(store, passphrase=lambda n: {**PASSPHRASES}.get(n)).promote(pid, "olga")
    finally:
        flow.required_approvals = original
    r = run("ledger", "verify", home=home)
    assert r.returncode == 1 and "below the 2 approvals" in r.stderr


def test_witness_pinned_outside_the_store_survives_cutting_the_policy(home, tmp_path):
    """The witness file is named by a policy; cutting the ledger back to before that policy does not hide it
    from a verifier who pins it in WEIGHTGATE_WITNESSES."""
    import yaml

    witness = tmp_path / "elsewhere" / "checkpoints.jsonl"
    policy = yaml.safe_load((home / "policy.yaml").read_text())
    policy["witnesses"] = [str(witness)]
    (home / "policy.yaml").write_text(yaml.safe_dump(policy))
    assert run("policy", "apply", str(home / "policy.yaml"), "--by", "dan", home=home).returncode == 0
    assert run("rollback", "--to", "1", "--by", "bob", home=home).returncode == 0
    client = _mlflow(home)
    with sqlite3.connect(home / "ledger.db") as db:  # back to entry 7, and MLflow with it
        db.execute("DELETE FROM ledger_entries WHERE seq > 7")
        cp5 = db.execute("SELECT envelope FROM checkpoints WHERE seq = 7").fetchone()[0]
    client.set_registered_model_tag("weightgate-model", "weightgate.checkpoint", cp5.decode())
    pinned = {"WEIGHTGATE_WITNESSES": str(witness)}
    r = run("ledger", "verify", home=home, env=pinned)
    assert r.returncode == 1 and "checkpoint of ledger entry 9" in r.stderr
    r = run("rollback", "--to", "0", "--by", "bob", home=home, env=pinned)  # and no fork is written on it
    assert r.returncode == 1 and len(_rows(home)) == 7
