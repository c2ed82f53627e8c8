import json
import subprocess
import sys


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
    assert verdicts["pii"] == ("fail", ["pii"]) and verdicts["backdoor"] == ("fail", ["poisoning"])
    assert out["champion"] == "ledger:1"
