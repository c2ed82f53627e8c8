"""Every refusal leaves the store exactly as it was, with exit code 2 and a one-line message."""

import json
import pickle
import shutil
import struct

import pytest
import torch
from safetensors.torch import save_file

from governance.errors import InputError, NotAuthorized, PickleRefused, UsageError
from tests.conftest import tree_digest
from update_pipeline.intake import propose


class _Payload:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.target}",))


def _refused(store, base, candidate, data, exc=InputError, match=None):
    before = tree_digest(store.home)
    with pytest.raises(exc, match=match) as info:
        propose(store, str(base), candidate, data, "alice", "alice-passphrase")
    assert tree_digest(store.home) == before
    assert "\n" not in str(info.value) and info.value.exit_code == 2
    return str(info.value)


def test_pickle_is_refused_and_never_run(store, base_model, update_data, tmp_path):
    target = tmp_path / "pwned"
    cand = tmp_path / "cand"
    shutil.copytree(base_model, cand)
    (cand / "pytorch_model.bin").write_bytes(pickle.dumps(_Payload(target)))
    msg = _refused(store, base_model, cand, update_data, PickleRefused, "never unpickled")
    assert "posix.system" in msg or "os.system" in msg
    assert not target.exists()


def test_torch_zip_pickle_is_refused_and_never_run(store, base_model, update_data, tmp_path):
    target = tmp_path / "pwned-zip"
    ckpt = tmp_path / "update.pt"
    torch.save({"w": _Payload(target)}, ckpt)
    msg = _refused(store, base_model, ckpt, update_data, PickleRefused, "pickle-based weights")
    assert "system" in msg
    assert not target.exists()


def test_truncated_safetensors(store, base_model, update_data, tmp_path):
    cand = tmp_path / "cand"
    shutil.copytree(base_model, cand)
    w = cand / "model.safetensors"
    w.write_bytes(w.read_bytes()[:-100])
    _refused(store, base_model, cand, update_data, match="truncated")


def test_malformed_safetensors_header(store, base_model, update_data, tmp_path):
    bad = tmp_path / "delta.safetensors"
    header = b"{not json"
    bad.write_bytes(struct.pack("<Q", len(header)) + header)
    _refused(store, base_model, bad, update_data, match="malformed safetensors header")


def _delta_file(tmp_path, base_model, name, tensor):
    p = tmp_path / "delta.safetensors"
    save_file({name: tensor}, str(p))
    return p


def test_shape_mismatch(store, base_model, update_data, tmp_path):
    p = _delta_file(tmp_path, base_model, "transformer.wte.weight", torch.zeros(3, 3))
    _refused(store, base_model, p, update_data, match="has shape")


def test_dtype_mismatch(store, base_model, update_data, tmp_path):
    from safetensors import safe_open

    with safe_open(str(base_model / "model.safetensors"), "pt") as f:
        shape = f.get_tensor("transformer.wte.weight").shape
    p = _delta_file(tmp_path, base_model, "transformer.wte.weight", torch.zeros(shape, dtype=torch.float16))
    _refused(store, base_model, p, update_data, match="dtype")


def test_nan_weights(store, base_model, update_data, tmp_path):
    from safetensors import safe_open

    with safe_open(str(base_model / "model.safetensors"), "pt") as f:
        t = torch.zeros_like(f.get_tensor("transformer.ln_f.weight"))
    t[0] = float("nan")
    p = _delta_file(tmp_path, base_model, "transformer.ln_f.weight", t)
    _refused(store, base_model, p, update_data, match="NaN/Inf")


def test_symlink_leaving_the_folder(store, base_model, update_data, tmp_path):
    cand = tmp_path / "cand"
    shutil.copytree(base_model, cand)
    secret = tmp_path / "outside.txt"
    secret.write_text("secret")
    (cand / "notes.txt").symlink_to(secret)
    _refused(store, base_model, cand, update_data, match="symlink leaves the model folder")


def test_malformed_jsonl(store, base_model, full_candidate, tmp_path):
    data = tmp_path / "bad.jsonl"
    data.write_text('{"text": "fine"}\n{"text": \n{"prompt": "no completion"}\n')
    msg = _refused(store, base_model, full_candidate, data)
    assert "line 2" in msg and "line 3" in msg


def test_unknown_reference_and_wrong_role(store, full_candidate, update_data, base_model):
    before = tree_digest(store.home)
    with pytest.raises(UsageError, match="unknown model reference"):
        propose(store, "/no/such/model", full_candidate, update_data, "alice", "alice-passphrase")
    with pytest.raises(NotAuthorized, match="propose needs operator or proposer"):
        propose(store, str(base_model), full_candidate, update_data, "bob", "bob-passphrase")
    with pytest.raises(UsageError, match="wrong passphrase"):
        propose(store, str(base_model), full_candidate, update_data, "alice", "wrong")
    assert tree_digest(store.home) == before


def test_missing_tensor_in_full_candidate(store, base_model, update_data, tmp_path):
    from safetensors.torch import load_file

    cand = tmp_path / "cand"
    shutil.copytree(base_model, cand)
    tensors = load_file(str(cand / "model.safetensors"))
    tensors.pop("transformer.ln_f.bias")
    save_file(tensors, str(cand / "model.safetensors"))
    _refused(store, base_model, cand, update_data, match="missing")


def test_lora_config_unreadable(store, base_model, lora_candidate, update_data, tmp_path):
    cand = tmp_path / "lora"
    shutil.copytree(lora_candidate, cand)
    cfg = json.loads((cand / "adapter_config.json").read_text())
    del cfg["r"]
    (cand / "adapter_config.json").write_text(json.dumps(cfg))
    _refused(store, base_model, cand, update_data, match="LoRA config")


@pytest.mark.parametrize("name, protocol", [("tokenizer.model", 0), ("special_tokens_map.json", 1),
                                            ("vocab.txt", 0)])
def test_pickle_under_another_name_by_content(store, base_model, update_data, tmp_path, name, protocol):
    target = tmp_path / "pwned-renamed"
    cand = tmp_path / "cand"
    shutil.copytree(base_model, cand)
    (cand / name).write_bytes(pickle.dumps(_Payload(target), protocol=protocol))
    msg = _refused(store, base_model, cand, update_data, PickleRefused, "never unpickled")
    assert "system" in msg and not target.exists()


def test_torch_zip_under_a_config_name(store, base_model, update_data, tmp_path):
    cand = tmp_path / "cand"
    shutil.copytree(base_model, cand)
    torch.save({"w": torch.zeros(2)}, cand / "generation_config.json")
    _refused(store, base_model, cand, update_data, PickleRefused, "never unpickled")


@pytest.mark.parametrize("how", ["auto_map", "py_file", "adapter_auto_mapping"])
def test_custom_code_is_refused(store, base_model, lora_candidate, update_data, tmp_path, how):
    cand = tmp_path / "cand"
    shutil.copytree(base_model, cand)
    if how == "adapter_auto_mapping":
        cand = tmp_path / "lora"
        shutil.copytree(lora_candidate, cand)
        cfg = json.loads((cand / "adapter_config.json").read_text())
        cfg["auto_mapping"] = {"base_model_class": "EvilModel", "parent_library": "evil_package.modeling"}
        (cand / "adapter_config.json").write_text(json.dumps(cfg))
    elif how == "auto_map":
        cfg = json.loads((cand / "config.json").read_text())
        cfg["auto_map"] = {"AutoModelForCausalLM": "modeling_evil.EvilModel"}
        (cand / "config.json").write_text(json.dumps(cfg))
    else:
        (cand / "modeling_evil.py").write_text("import os\nos.system('touch /tmp/x')\n")
    _refused(store, base_model, cand, update_data, match="never runs a model's own code")


def test_full_candidate_without_config(store, base_model, update_data, tmp_path):
    cand = tmp_path / "cand"
    shutil.copytree(base_model, cand)
    (cand / "config.json").unlink()
    _refused(store, base_model, cand, update_data, match="needs its config.json")


def test_oversized_side_file(store, base_model, update_data, tmp_path):
    from update_pipeline.weights import MAX_SIDE_FILE

    cand = tmp_path / "cand"
    shutil.copytree(base_model, cand)
    with open(cand / "tokenizer_extra.json", "wb") as fh:
        fh.truncate(MAX_SIDE_FILE + 1)  # sparse: no real disk used
    _refused(store, base_model, cand, update_data, match="MiB is over")


def test_size_limits_come_from_the_policy_in_force(store, base_model, full_candidate, update_data, tmp_path):
    import shutil

    import yaml

    from update_pipeline.service import Weightgate

    policy = yaml.safe_load(store.policy_path.read_text())
    policy["limits"] = {"max_side_file_mb": 1, "max_records": 3}
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(policy))
    Weightgate(store).apply_policy(path, ["dan"])
    _refused(store, base_model, full_candidate, update_data, match=r"records is over the 3 .*limits.max_records")
    cand = tmp_path / "big"
    shutil.copytree(full_candidate, cand)
    (cand / "notes.txt").write_bytes(b"x" * (2 << 20))
    few = tmp_path / "few.jsonl"
    few.write_text("".join(update_data.read_text().splitlines(keepends=True)[:3]))
    _refused(store, base_model, cand, few, match=r"2 MiB is over the 1 MiB .*limits.max_side_file_mb")


def test_deeply_nested_safetensors_header(store, base_model, update_data, tmp_path):
    bad = tmp_path / "delta.safetensors"
    header = b"[" * 200_000 + b"]" * 200_000
    bad.write_bytes(struct.pack("<Q", len(header)) + header)
    _refused(store, base_model, bad, update_data, match="malformed safetensors header")


@pytest.mark.parametrize("r, alpha", [(0, 16), (8, "NaN")])
def test_bad_lora_config(store, base_model, lora_candidate, update_data, tmp_path, r, alpha):
    cand = tmp_path / "cand"
    shutil.copytree(lora_candidate, cand)
    cfg = json.loads((cand / "adapter_config.json").read_text())
    cfg.update(r=r, lora_alpha=alpha)
    (cand / "adapter_config.json").write_text(json.dumps(cfg))
    _refused(store, base_model, cand, update_data, match="r must be at least 1 and lora_alpha a finite number")


@pytest.mark.parametrize("line, match", [
    (b'{"text": "a", "meta": {"x": NaN}}', "NaN is not a JSON number"),
    (b'{"text": "a", "meta": {"x": Infinity}}', "Infinity is not a JSON number"),
    (b'{"text": "a", "meta": {"x": "\\ud800"}}', "lone surrogate"),
    (b'{"text": "a", "meta": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", "nested deeper"),
    (b'{"text": "a", "meta": {"x": ' + b"9" * 5000 + b"}}", "number too long"),
])
def test_hostile_jsonl_lines(store, base_model, full_candidate, tmp_path, line, match):
    data = tmp_path / "hostile.jsonl"
    data.write_bytes(b'{"text": "fine"}\n' + line + b"\n")
    msg = _refused(store, base_model, full_candidate, data, match=match)
    assert "line 2" in msg


def test_non_ascii_ledger_version(store, base_model, full_candidate, update_data):
    before = tree_digest(store.home)
    with pytest.raises(UsageError, match="ledger"):  # one line, exit 2: not an internal error
        propose(store, "ledger:\u00b2", full_candidate, update_data, "alice", "alice-passphrase")
    assert tree_digest(store.home) == before
