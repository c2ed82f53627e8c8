import json
import subprocess
import sys

from update_pipeline import world


def test_demo_json_contract(tmp_path):
    r = subprocess.run([sys.executable, "-m", "update_pipeline.cli", "demo", "--home", str(tmp_path / "demo"),
                        "--json"], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    assert out["home"] == str(tmp_path / "demo")
    assert [p["name"] for p in out["proposals"]] == ["clean", "pii", "backdoor", "forgetting"]
    for p in out["proposals"]:
        assert p["verdict"] in ("pass", "fail") and isinstance(p["failed_gates"], list)
        assert "data_validation" in p["gates_run"]
    assert out["proposals"][0]["verdict"] == "pass" and out["proposals"][0]["kind"] == "lora"
    verdicts = {p["name"]: (p["verdict"], p["failed_gates"]) for p in out["proposals"]}
    assert verdicts["pii"] == ("fail", ["pii"]) and verdicts["backdoor"] == ("fail", ["poisoning", "regression"])
    assert verdicts["forgetting"] == ("fail", ["regression"])
    assert out["champion"] == "ledger:1"
    assert "gates_not_yet_available" not in out and "regression" in out["proposals"][0]["gates_run"]

    from governance.ledger import Ledger
    from governance.proposals import ProposalStore
    from governance.store import Store

    store = Store.locate(tmp_path / "demo")
    proposals = ProposalStore.of(store, Ledger.of(store).entries())
    forgetting = proposals.load(out["proposals"][3]["proposal"])
    _, report = proposals.latest_report(forgetting)
    gate = next(g for g in report["gates"] if g["name"] == "regression")
    named = " ".join(f["message"] for f in gate["findings"])
    swapped = [c.name for c in world.countries(n=30)[:12]]  # the facts the update overwrote
    assert sum(f"capital-of-{name} passed on the base, fails now" in named for name in swapped) >= 8
