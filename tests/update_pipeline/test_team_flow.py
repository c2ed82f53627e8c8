"""A team on real servers: member homes on different (simulated) machines share nothing but PostgreSQL and
an MLflow server. Each holds only its own key, its configuration and caches."""

import shutil

import psycopg
import pytest

from governance.data import load_jsonl
from governance.errors import VerificationError
from governance.keys import KeyRing
from governance.ledger import Ledger, versions
from governance.store import Store
from tests.conftest import PASSPHRASES
from tests.update_pipeline.test_ledger_flow import sha
from update_pipeline import refs, world
from update_pipeline.audit import export, verify_store
from update_pipeline.check import check
from update_pipeline.intake import propose
from update_pipeline.service import Weightgate

pytestmark = [pytest.mark.servers, pytest.mark.slow]
ROLES = {"alice": "proposer", "bob": "approver", "carol": "approver", "olga": "operator"}


def _home(path, ledger_url, tracking, model, root=None):
    s = Store.locate(path)
    s.init(world.policy(path.parent / f"{path.name}-policy.yaml"), tracking_uri=tracking, ledger_url=ledger_url,
           model_name=model, root_fingerprint=root)
    return s


@pytest.fixture
def team(pg, mlflow_team, tmp_path, monkeypatch):
    """An admin home (dan, the root), and one home a member: alice (CI, proposes and checks, holds the gate
    key), bob and carol (approvers), olga (operator). Public key records go to the admin; private keys stay."""
    for name, secret in PASSPHRASES.items():
        monkeypatch.setenv(f"WEIGHTGATE_PASSPHRASE_{name.upper()}", secret)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("WEIGHTGATE_LEDGER_URL", raising=False)
    url, model = pg.create("team_flow"), "team-flow"
    homes = {n: _home(tmp_path / n, url, mlflow_team, model) for n in ("dan", *ROLES)}
    KeyRing(homes["dan"].keys_dir).create("dan", "root", PASSPHRASES["dan"])
    for name, role in ROLES.items():
        KeyRing(homes[name].keys_dir).create(name, role, PASSPHRASES[name])
        shutil.copyfile(homes[name].keys_dir / f"{name}.json", homes["dan"].keys_dir / f"{name}.json")
    policy = homes["dan"].policy_path
    policy.write_text(policy.read_text().replace("required: 1 ", "required: 2 ", 1))
    Weightgate(homes["dan"]).trust_init(["dan"], list(ROLES.items()))
    for f in ("weightgate-gate.json", "weightgate-gate.key"):  # CI runs the gates: the gate key goes there
        shutil.move(homes["dan"].keys_dir / f, homes["alice"].keys_dir / f)
    yield homes, url, mlflow_team
    pg.drop("team_flow")


def test_propose_approve_promote_rollback_forget_verify_across_homes(team, pg, base_model, full_candidate,
                                                                    update_data, tmp_path):
    homes, url, tracking = team
    alice, bob, carol, olga = (homes[n] for n in ROLES)
    p = propose(alice, str(base_model), full_candidate, update_data, "alice", PASSPHRASES["alice"])
    assert check(alice, p.id).report["verdict"] == "pass"
    assert not any(bob.proposals_dir.iterdir())  # nothing reached bob's home but through the servers
    assert Weightgate(bob).approve(p.id, "bob", "ok").missing == 1
    assert Weightgate(carol).approve(p.id, "carol", "ok").missing == 0
    done = Weightgate(olga).promote(p.id, "olga")
    assert done.version == 1
    want = sha(full_candidate / "model.safetensors")
    assert sha(refs.resolve("ledger:champion", bob) / "model.safetensors") == want  # rebuilt from the servers
    for cache in (olga.blobs_dir.parent, olga.cache_dir, olga.proposals_dir):  # caches are safe to lose
        shutil.rmtree(cache)
    Weightgate(olga).rollback(0, "olga", "back to the base")
    assert sha(refs.resolve("ledger:champion", carol) / "model.safetensors") == sha(base_model / "model.safetensors")
    victim = load_jsonl(update_data)[0]
    ledger = Ledger.of(olga)
    key = ledger.data_key(versions(ledger.entries())[1].predicate["data"]["key_id"])
    Weightgate(olga).forget(victim.id, None, by="olga")
    assert ledger.data_key(versions(ledger.entries())[1].predicate["data"]["key_id"]) is None
    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql"), autocommit=True) as conn:
        conn.execute("CHECKPOINT")
    tables = [f for f in (pg.root / "data" / "base").rglob("*") if f.is_file()]
    assert not [f for f in tables if key in f.read_bytes()]  # no table file keeps the destroyed key's bytes

    pinned = homes["dan"].config()["root_fingerprint"]  # what 'trust init' printed, handed to the auditor
    fresh = _home(tmp_path / "auditor", url, tracking, "team-flow", pinned)  # a home never used before
    summary = verify_store(fresh)
    with pytest.raises(VerificationError, match="fingerprint"):  # a home pinned to another root refuses this one
        verify_store(_home(tmp_path / "elsewhere", url, tracking, "team-flow", "ab" * 32))
    assert summary["champion"] == Weightgate(olga).verify()["champion"]
    bundle = export(fresh, tmp_path / "bundle")
    from governance.audit_bundle import verify_bundle

    assert verify_bundle(bundle, root_fingerprint=pinned)["entries"] == summary["entries"]
    for home in homes.values():  # each home holds its own private key, and no other
        assert {p.stem for p in home.keys_dir.glob("*.key")} <= {home.home.name, "weightgate-gate"}
