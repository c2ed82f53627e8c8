"""Promote three real updates, roll back to each earlier version bit for bit, verify the ledger."""

import hashlib

import pytest

from governance.errors import CheckFailed, NotAuthorized, UsageError
from tests.conftest import write_jsonl
from update_pipeline import refs, world
from update_pipeline.audit import verify_store
from update_pipeline.check import check
from update_pipeline.intake import propose
from update_pipeline.service import Weightgate
from update_pipeline.train import train_update


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def promote_chain(store, base_model, tmp_path, n=3, lora_at=()):
    """Train n chained updates on the champion, each proposed, checked, approved and promoted."""
    cs = world.countries(n=24 + 3 * n)[24:]
    shas, outs = [sha(base_model / "model.safetensors")], []
    base_ref = str(base_model)
    for i in range(n):
        from governance.data import load_jsonl

        data = write_jsonl(tmp_path / f"u{i}.jsonl", world.fact_records(cs[3 * i:3 * i + 3], "curated"))
        base_dir = refs.resolve(base_ref, store)
        out = tmp_path / f"u{i}"
        train_update(base_dir, base_ref, load_jsonl(data), out, epochs=1, seed=i, lora=i in lora_at)
        p = propose(store, base_ref, out, data, "alice", "alice-passphrase")
        assert check(store, p.id).report["verdict"] == "pass"
        Weightgate(store).approve(p.id, "bob", "ok")
        done = Weightgate(store).promote(p.id, "bob")
        assert done.version == i + 1
        shas.append(sha(refs.resolve("ledger:champion", store) / "model.safetensors"))
        outs.append(out)
        base_ref = "ledger:champion"
    return shas, outs


def test_promote_three_and_roll_back_bit_for_bit(store, base_model, tmp_path):
    from mlflow import MlflowClient

    shas, outs = promote_chain(store, base_model, tmp_path, n=3, lora_at=(1,))
    assert shas[1] == sha(outs[0] / "model.safetensors")  # a full update is stored as proposed
    assert verify_store(store)["champion"] == 3
    client = MlflowClient(tracking_uri=store.tracking_uri(), registry_uri=store.tracking_uri())

    def with_files():  # MLflow keeps the files of the champion and the 2 newest versions (storage policy)
        return {int(mv.tags["weightgate.ledger_version"]) for mv in client.search_model_versions(
                f"name = '{store.model_name}'") if client.list_artifacts(mv.run_id, "model")}

    assert with_files() == {2, 3}
    one_copy_of_each_version(store, client)
    cached = store.cache_dir / "ledger" / "v3" / "model.safetensors"
    damaged = bytearray(cached.read_bytes())
    damaged[len(damaged) // 2] ^= 1  # one bit of one tensor
    cached.unlink()
    cached.write_bytes(bytes(damaged))
    assert sha(refs.resolve("ledger:3", store) / "model.safetensors") == shas[3]  # seen and rebuilt
    for version in (2, 0, 1, 3):
        _, folder = Weightgate(store).rollback(version, "bob")
        assert sha(folder / "model.safetensors") == shas[version]
        mv = client.get_model_version_by_alias(store.model_name, "champion")
        assert mv.tags["weightgate.ledger_version"] == str(version)
        assert with_files() == {2, 3, version}  # an older champion is rebuilt from the ledger
    # the restore does not depend on the cache
    import shutil

    shutil.rmtree(store.cache_dir / "ledger")
    for version in range(4):
        assert sha(refs.resolve(f"ledger:{version}", store) / "model.safetensors") == shas[version]
    summary = verify_store(store)
    assert summary["entries"] == 2 + 3 + 1 + 3 + 4 and summary["champion"] == 3
    with pytest.raises(UsageError, match="already the champion"):
        Weightgate(store).rollback(3, "bob")
    with pytest.raises(UsageError, match="unknown ledger version 9"):
        Weightgate(store).rollback(9, "bob")


def one_copy_of_each_version(store, client):
    """The ledger holds the versions: the proposals' candidate files are released (checking one again says
    so), the restore cache keeps only what MLflow serves, and MLflow's files are hard links to it."""
    from governance.ledger import versions
    from update_pipeline.promote import trusted

    _, entries, _, proposals = trusted(store)
    promoted = [e.predicate["proposal"]["id"] for e in entries if e.predicate["action"] == "promote"]
    blobs = store.blobs()
    adapter = versions(entries)[2].predicate["weights"]["adapter"]  # a LoRA version keeps its adapter's files
    for pid in promoted:
        files = proposals.load(pid).manifest["candidate"]["files"]
        assert not any(blobs.has(d) for d in files.values() if d not in adapter.values())
    assert set(proposals.load(promoted[1]).manifest["candidate"]["files"].values()) <= set(adapter.values())
    with pytest.raises(UsageError, match="candidate files were released"):
        check(store, promoted[0])
    assert sorted(p.name for p in (store.cache_dir / "ledger").glob("v*")) == ["v2", "v3"]
    served = [p for p in store.artifacts_dir.rglob("*.safetensors") if p.parent.name == "model"]
    assert served and all(p.stat().st_nlink >= 2 for p in served)
    registered = {int(mv.tags["weightgate.ledger_version"]): mv
                  for mv in client.search_model_versions(f"name = '{store.model_name}'")}
    lora = registered[2]  # the LoRA update: its adapter beside the merged model, its base named
    assert lora.tags["weightgate.adapter"] == "adapter" and client.list_artifacts(lora.run_id, "adapter")
    assert lora.tags["weightgate.base_model_version"] == str(registered[1].version)
    assert "weightgate.adapter" not in registered[3].tags


def test_promotion_needs_a_pass_and_approvals(store, base_model, full_candidate, update_data):
    p = propose(store, str(base_model), full_candidate, update_data, "alice", "alice-passphrase")
    with pytest.raises(CheckFailed, match="has not been checked"):
        Weightgate(store).promote(p.id, "bob")
    check(store, p.id)
    with pytest.raises(CheckFailed, match=r"approvals 0/1 \(signed: nobody; missing: 1\)"):
        Weightgate(store).promote(p.id, "bob")
    with pytest.raises(NotAuthorized, match="proposed this update|has role 'proposer'"):
        Weightgate(store).approve(p.id, "alice", "self")
    with pytest.raises(NotAuthorized, match="has role 'auditor'"):
        Weightgate(store).approve(p.id, "carol", "wrong role")
    status = Weightgate(store).approve(p.id, "bob", "")
    assert status.met and status.approved_by == ("bob",)
    check(store, p.id)  # a new report: the old approval no longer counts
    with pytest.raises(CheckFailed, match="missing: 1"):
        Weightgate(store).promote(p.id, "bob")
    Weightgate(store).approve(p.id, "bob", "again")
    assert Weightgate(store).promote(p.id, "bob").version == 1
    with pytest.raises(UsageError, match="already promoted"):
        Weightgate(store).promote(p.id, "bob")
    other = propose(store, "ledger:champion", full_candidate, update_data, "alice", "alice-passphrase")
    check(store, other.id)
    Weightgate(store).reject(other.id, "bob", "not this one")  # final for these bytes: released
    with pytest.raises(UsageError, match="candidate files were released"):
        check(store, other.id)
    with pytest.raises(CheckFailed, match="rejected by bob"):
        Weightgate(store).promote(other.id, "bob")
