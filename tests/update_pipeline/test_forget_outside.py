"""An update trained outside weightgate (plain transformers, no recipe): propose says what exact unlearning
will not be able to do; forget through it is refused with nothing written, then done with --approximate,
labelled approximate in the ledger, the proposal, the check report, MLflow, `ledger show` and the audit bundle."""

import json
import subprocess
import sys

from typer.testing import CliRunner

from governance.audit_bundle import verify_bundle
from governance.data import load_jsonl
from governance.ledger import Ledger
from governance.proposals import ProposalStore
from governance.signing import unverified_statement
from tests.conftest import tree_digest, write_jsonl
from tests.update_pipeline.test_forget import leaks
from tests.update_pipeline.test_unlearn import _manifest, _through
from update_pipeline import refs, world
from update_pipeline.audit import export, verify_store
from update_pipeline.cli import app
from update_pipeline.intake import NO_RECIPE, propose
from update_pipeline.train import train_update

SUBJECT = "subject-ada"


def outside_model(base_dir, records, out):
    """A full model fine-tuned the way a user would elsewhere: plain transformers and torch, no weightgate code."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(base_dir)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-4)
    torch.manual_seed(0)
    for r in records:
        ids = tok(r.get("text") or r["prompt"] + r["completion"], return_tensors="pt")["input_ids"]
        loss = model(input_ids=ids, labels=ids).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def tensors(path):
    from safetensors.torch import load_file

    return load_file(str(path))


def test_forget_through_an_outside_update(store, base_model, tmp_path):
    cs = world.countries(n=30)[24:]
    first = world.fact_records(cs[:3], "curated")
    first[0]["id"] = SUBJECT
    secret = first[0]["text"]
    d1 = write_jsonl(tmp_path / "d1.jsonl", first)
    v1 = outside_model(base_model, first, tmp_path / "v1")
    cli = CliRunner()
    home = ["--home", str(store.home)]
    r = cli.invoke(app, [*home, "propose", "--base", str(base_model), "--candidate", str(v1), "--data", str(d1),
                         "--by", "alice"])
    assert r.exit_code == 0, r.output
    assert f"note: {NO_RECIPE}" in r.stderr and NO_RECIPE.startswith("no training recipe: once promoted, an exact")
    pid = r.stdout.split()[1]
    assert _manifest(store, pid)["notes"] == [NO_RECIPE]  # kept, signed, with the proposal
    assert _through(store, pid) == 1

    # a second update on top, trained by weightgate (a recipe, no note), without the subject's record
    d2 = write_jsonl(tmp_path / "d2.jsonl", world.fact_records(cs[3:6], "curated"))
    v2 = tmp_path / "v2"
    train_update(refs.resolve("ledger:champion", store), "ledger:champion", load_jsonl(d2), v2, epochs=1, seed=1)
    p2 = propose(store, "ledger:champion", v2, d2, "alice", "alice-passphrase")
    assert p2.notes == () and "notes" not in _manifest(store, p2.id)
    assert _through(store, p2.id) == 2

    # no exact replay through ledger:1: refused in one line naming it, the store byte for byte as it was
    before = tree_digest(store.home)
    proc = subprocess.run([sys.executable, "-m", "update_pipeline.cli", *home, "forget", "--record-id", SUBJECT,
                           "--by", "olga", "--proposer", "alice"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("weightgate: error: no exact replay is possible: "
                                                                   "ledger:1 has no training recipe"), proc.stderr
    assert "ledger:2" not in proc.stderr and "rerun with --approximate" in proc.stderr
    assert tree_digest(store.home) == before

    # --approximate: shredded as usual; the proposal is the champion minus ledger:1's weight change (ledger:2's
    # own change, trained on top of it, stays)
    r = cli.invoke(app, [*home, "forget", "--record-id", SUBJECT, "--by", "olga", "--proposer", "alice",
                         "--approximate"])
    assert r.exit_code == 0, r.output
    assert "plan: 1 record(s) in ledger:[1]: subtract the weight changes of ledger:[1] from" in r.stderr
    assert "method: APPROXIMATE (the weight changes of ledger:1 subtracted" in r.stdout
    assert "(APPROXIMATE): check it" in r.stdout
    assert leaks(store.home, secret) == []
    entries = Ledger.of(store).entries()
    intent = entries[-2].predicate
    assert (intent["action"], intent["method"], intent["negated"], intent["tombstoned"], intent["replayed"]) == (
        "forget", "approximate", [1], [1, 2], [])
    assert entries[-1].predicate["action"] == "forget_done" and verify_store(store, deep=True)["champion"] == 0
    pid = r.stdout.split("new proposal ")[1].split()[0]
    m = _manifest(store, pid)
    assert m["origin"] == {"forget": intent["removed"], "method": "approximate", "approximate": True, "start": 0,
                           "negated": [1], "entry": entries[-2].seq}
    assert m["note"].startswith("APPROXIMATE forget of 1 record(s)") and m["base"]["ref"] == "ledger:0"
    got = tensors(store.blobs().path(m["candidate"]["files"]["model.safetensors"]))
    c, t, p = (tensors(f / "model.safetensors") for f in (v2, v1, base_model))
    assert got.keys() == c.keys() and all((got[n] == c[n] - (t[n] - p[n])).all() for n in got)

    # the check report, the new version, MLflow, ledger show and the audit bundle say so
    assert _through(store, pid) == 3  # checked (the report in force), approved, promoted
    proposals = ProposalStore.of(store, Ledger.of(store).entries())
    kind = proposals.latest_report(proposals.load(pid))[1]["gates"][0]
    assert kind["evidence"]["unlearning"] == "approximate"
    assert [f["level"] for f in kind["findings"]] == ["note"] and "APPROXIMATE forget" in kind["findings"][0]["message"]
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=store.tracking_uri(), registry_uri=store.tracking_uri())
    mv = client.get_model_version_by_alias(store.model_name, "champion")
    assert mv.tags["weightgate.ledger_version"] == "3" and mv.tags["weightgate.approximate"] == "true"
    r = cli.invoke(app, [*home, "ledger", "show", "--json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert [(x["action"], x["version"]) for x in rows if x["method"] == "approximate"] == [("forget", 0),
                                                                                         ("promote", 3)]
    bundle = export(store, tmp_path / "audit")
    assert verify_bundle(bundle, None, Ledger.of(store).root().fingerprint)["champion"] == 3
    exported = [unverified_statement(x)["predicate"] for x in (bundle / "ledger.intoto.jsonl").read_bytes().split()]
    assert [(x["action"], x["version"]) for x in exported if x.get("method") == "approximate"
            or ((x.get("proposal") or {}).get("origin") or {}).get("approximate")] == [("forget", 0), ("promote", 3)]
    verify_store(store, deep=True)
