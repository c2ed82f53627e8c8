"""Models users bring: GPT-2, Llama and Qwen2 built from their configs, bf16 and sharded among them,
full and LoRA updates, one trained with plain transformers/PEFT code, through the whole flow."""

import hashlib
import json
import shutil

import pytest

from tests.conftest import write_jsonl
from update_pipeline import refs, world
from update_pipeline.architectures import build
from update_pipeline.check import check
from update_pipeline.intake import propose
from update_pipeline.service import Weightgate
from update_pipeline.train import train_update

pytestmark = pytest.mark.slow


def digests(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.safetensors"))}


def dtypes(folder):
    from safetensors import safe_open

    out = set()
    for p in folder.glob("*.safetensors"):
        with safe_open(str(p), "pt") as f:
            out |= {str(f.get_slice(k).get_dtype()) for k in f.keys()}
    return out


def through(store, base_ref, candidate, data):
    p = propose(store, base_ref, candidate, data, "alice", "alice-passphrase")
    report = check(store, p.id).report
    failed = [(g["name"], f["message"]) for g in report["gates"] if g["status"] != "pass" for f in g["findings"]]
    assert report["verdict"] == "pass", "\n".join(map(str, failed))
    assert report["policy"]["name"] == "default"
    assert all(g["duration_s"] > 0 for g in report["gates"] if g["name"] != "update_kind")
    Weightgate(store).approve(p.id, "bob", "ok")
    return Weightgate(store).promote(p.id, "bob").version


def plain_peft_adapter(base_dir, records, out):
    """A LoRA adapter trained the way a user would elsewhere: plain transformers + PEFT, no weightgate code."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(base_dir)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32),
                           LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    torch.manual_seed(0)
    for r in records:
        ids = tok(r["prompt"] + r["completion"], return_tensors="pt")["input_ids"]
        loss = model(input_ids=ids, labels=ids).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.save_pretrained(out)
    return out


@pytest.mark.parametrize("arch,dtype,shard", [("gpt2", "float32", None), ("llama", "bfloat16", 60_000),
                                               ("qwen2", "float32", None)])
def test_flow_on_each_architecture(store, tmp_path, arch, dtype, shard):
    # the general default policy `weightgate init` writes (no suite for a model it does not know; generic
    # triggers judged against ordinary text inserted), with the world's invented names allowed for PII
    Weightgate(store).apply_policy(world.policy(tmp_path / "default.yaml", "default"), ["dan"])
    base = build(arch, tmp_path / arch, dtype=dtype, shard_bytes=shard)
    cs = world.countries(n=74)[24:]  # 100 records an update: enough prompts for the behaviour scan's groups
    data = [write_jsonl(tmp_path / f"d{i}.jsonl", world.fact_records(cs[25 * i:25 * i + 25], "curated"))
            for i in range(2)]
    from governance.data import load_jsonl

    full = tmp_path / "full"
    recipe = train_update(base, str(base), load_jsonl(data[0]), full, epochs=1, seed=0)
    assert recipe["dtype"] == dtype and dtypes(full) == dtypes(base)  # never upcast on disk
    assert sorted(digests(full)) == sorted(digests(base))  # sharded the same way
    assert through(store, str(base), full, data[0]) == 1

    lora = tmp_path / "lora"
    if arch == "llama":  # trained outside weightgate: no recipe
        plain_peft_adapter(refs.resolve("ledger:champion", store), [json.loads(x) for x in
                           data[1].read_text().splitlines() if "completion" in x], lora)
    else:
        recipe = train_update(refs.resolve("ledger:champion", store), "ledger:champion", load_jsonl(data[1]), lora,
                              lora=True, epochs=1, seed=1)
        cfg = json.loads((lora / "adapter_config.json").read_text())
        assert cfg["fan_in_fan_out"] is (arch == "gpt2")
        assert set(cfg["target_modules"]) == set(recipe["lora_targets"])
    assert through(store, "ledger:champion", lora, data[1]) == 2
    champion = digests(refs.resolve("ledger:champion", store))
    loads_from_mlflow_as_the_ledger_restores(store, refs.resolve("ledger:champion", store))
    stored_as_adapter(store, 2)
    adapter_in_mlflow_on_its_base(store, refs.resolve("ledger:champion", store))

    _, folder = Weightgate(store).rollback(1, "bob")
    assert digests(folder) == digests(full)
    assert dtypes(folder) == dtypes(base)
    shutil.rmtree(store.cache_dir / "ledger")  # v2 comes back from its LoRA factors, not a cached copy
    Weightgate(store).rollback(2, "bob")
    assert digests(refs.resolve("ledger:champion", store)) == champion

    plan = Weightgate(store).revert(1, True, by="olga", proposer="alice") if arch != "llama" else None
    if arch == "llama":
        from governance.errors import UsageError

        with pytest.raises(UsageError, match="ledger:2 has no training recipe"):
            Weightgate(store).revert(1, True, by="olga", proposer="alice")
    done = Weightgate(store).revert(1, False, by="olga", proposer="alice")
    assert done.method == "approximate"
    assert plan is None or plan.method == "exact"


def stored_as_adapter(store, version):
    """A LoRA version costs the ledger its adapter's files and nothing more (bench/ledger_bench.py gives the
    share of a checkpoint at a realistic size; on these tiny models an adapter is a large share)."""
    from governance.ledger import Ledger, versions
    from governance.tensorstore import version_blobs

    made = versions(Ledger.of(store).entries())
    new = version_blobs(made[version].predicate["weights"]) - version_blobs(made[version - 1].predicate["weights"])
    files = made[version].predicate["weights"]["files"]
    encodings = [e["encoding"] for f in files.values() if "tensors" in f for e in f["tensors"].values()
                 if e.get("base") is not None and e["blob"] in new]
    assert encodings and set(encodings) == {"lora"}, encodings
    assert {"adapter_config.json", "adapter_model.safetensors"} <= set(made[version].predicate["weights"]["adapter"])
    blobs = store.blobs()
    adapter = set(made[version].predicate["weights"]["adapter"].values())
    assert sum(blobs.path(b).stat().st_size for b in new - adapter) < 4096  # new headers at most


def loads_from_mlflow_as_the_ledger_restores(store, folder):
    """The champion loads from the registry with MLflow's own loaders, and gives the ledger version's logits."""
    import mlflow.pyfunc
    import mlflow.transformers
    import torch
    from transformers import AutoModelForCausalLM

    uri = f"models:/{store.model_name}@champion"
    with pytest.MonkeyPatch.context() as mp:  # through the environment, as a user's shell would: no global state
        mp.setenv("MLFLOW_TRACKING_URI", store.tracking_uri())
        mp.setenv("MLFLOW_REGISTRY_URI", store.tracking_uri())
        parts = mlflow.transformers.load_model(uri, return_type="components")
        served = mlflow.pyfunc.load_model(uri).predict(["Q: What is the capital of Kamitam?\nA:"])[0]
    assert isinstance(served, str)
    ours = AutoModelForCausalLM.from_pretrained(folder, dtype="auto").eval()
    ids = parts["tokenizer"]("Q: What is the capital of Kamitam?\nA:", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert parts["model"].dtype == ours.dtype
        assert torch.equal(parts["model"].eval()(ids).logits, ours(ids).logits)


def adapter_in_mlflow_on_its_base(store, merged):
    """The LoRA version's run holds its PEFT adapter, and the registered version names its base: PEFT on
    that base gives the merged champion's logits (to rounding: PEFT adds the adapter in the forward pass)."""
    import mlflow
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", store.tracking_uri())
        mp.setenv("MLFLOW_REGISTRY_URI", store.tracking_uri())
        client = mlflow.MlflowClient()
        mv = client.get_model_version_by_alias(store.model_name, "champion")
        base_mv = client.get_model_version(store.model_name, mv.tags["weightgate.base_model_version"])
        adapter = mlflow.artifacts.download_artifacts(f"runs:/{mv.run_id}/{mv.tags['weightgate.adapter']}")
        base_dir = mlflow.artifacts.download_artifacts(f"runs:/{base_mv.run_id}/model/model")
    assert base_mv.tags["weightgate.ledger_version"] == mv.tags["weightgate.base_ledger_version"] == "1"
    peft = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir, dtype="auto"), adapter).eval()
    ours = AutoModelForCausalLM.from_pretrained(merged, dtype="auto").eval()
    ids = AutoTokenizer.from_pretrained(merged)("Q: What is the capital of Kamitam?\nA:", return_tensors="pt")
    with torch.no_grad():
        a, b = peft(**ids).logits.float(), ours(**ids).logits.float()
    assert torch.allclose(a, b, atol=0.1 if ours.dtype == torch.bfloat16 else 1e-3), (a - b).abs().max()


def test_chat_suites_go_through_the_chat_template(tmp_path):
    from audits import lm
    from audits.evaluation import score_suite
    from audits.regression import within_budget
    from audits.suites import load_suite

    llama, gpt2 = build("llama", tmp_path / "llama"), build("gpt2", tmp_path / "gpt2", epochs=1)
    chat = lm.prompt_format(llama, "auto")("How do I bake bread?")
    assert chat == "<|user|>\nHow do I bake bread?\n<|assistant|>\n"
    assert lm.prompt_format(llama, "plain")("hi") == "hi" == lm.prompt_format(gpt2, "auto")("hi")
    from governance.errors import PolicyError

    with pytest.raises(PolicyError, match="no chat template"):
        lm.prompt_format(gpt2, "chat")
    suite = load_suite("assistant")
    assert suite.format == "chat"
    scores = score_suite(llama, suite)
    assert len([s for s in scores if s.group == "refusal"]) == 10 and all(s.score is not None for s in scores
                                                                          if s.group != "answer")
    small = within_budget(suite, 12, 8)  # a budget keeps critical cases and whole clusters
    assert len(small.cases) <= 12 and suite.critical_ids() <= {c.id for c in small.cases}
    assert small.defaults.max_new_tokens == 8
    clusters = suite.clusters()
    kept = {clusters[c.id] for c in small.cases}
    assert all(c.id in {x.id for x in small.cases} for c in suite.cases if clusters[c.id] in kept)
