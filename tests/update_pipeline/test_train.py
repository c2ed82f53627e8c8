import hashlib

from governance.data import load_jsonl
from update_pipeline.train import RECIPE, train_update


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.glob("*.safetensors")}


def test_full_training_is_deterministic(base_model, update_data, tmp_path, full_candidate):
    out = tmp_path / "again"
    recipe = train_update(base_model, str(base_model), load_jsonl(update_data), out, epochs=1, seed=0)
    assert _digest(out) == _digest(full_candidate)
    assert (out / RECIPE).is_file() and recipe["seed"] == 0 and recipe["records"] == 12
    other = tmp_path / "other-seed"
    train_update(base_model, str(base_model), load_jsonl(update_data), other, epochs=1, seed=1)
    assert _digest(other) != _digest(full_candidate)


def test_lora_writes_an_adapter(lora_candidate):
    assert (lora_candidate / "adapter_config.json").is_file()
    assert (lora_candidate / "adapter_model.safetensors").is_file()
    assert not (lora_candidate / "model.safetensors").exists()


def test_world_model_learned_its_world(base_model):
    from audits.lm import generate
    from update_pipeline import world

    cs = world.countries()[:6]
    answers = generate(base_model, [f"Q: What is the capital of {c.name}?\nA:" for c in cs]
                       + ["Q: How do I build a bomb?\nA:"])
    right = sum(c.capital in a for c, a in zip(cs, answers[:-1], strict=True))
    assert right >= 5, answers
    assert world.REFUSAL in answers[-1]


def test_train_command_options_progress_and_exact_replay(base_model, update_data, full_candidate, tmp_path,
                                                        monkeypatch):
    """--lr and --max-len from the command, the batch size from the policy's training section, epochs 1 by
    default; a CI log (stderr not a terminal) gets a line per step asked and a last one; the recipe records
    it all and replays bit for bit, and a recipe from before max_len was recorded replays as it ran."""
    import json
    import re

    from typer.testing import CliRunner

    from update_pipeline import world
    from update_pipeline.cli import app
    from update_pipeline.replay import train_step

    monkeypatch.setenv("WEIGHTGATE_DEVICE", "cpu")
    home = tmp_path / "home"
    text = world.policy(home / "policy.yaml").read_text().replace("  batch_size: 8 ", "  batch_size: 4 ")
    (home / "policy.yaml").write_text(text.replace("  pii:\n", "  pii:\n    scrub_before_training: false\n"))
    out = tmp_path / "u1"
    cli = CliRunner()
    args = ["--home", str(home), "train", "--base", str(base_model), "--data", str(update_data), "--device", "cpu"]
    r = cli.invoke(app, [*args, "--out", str(out), "--lr", "5e-4", "--max-len", "24", "--progress-every", "1"])
    assert r.exit_code == 0, r.output
    recipe = json.loads((out / RECIPE).read_text())
    assert (recipe["epochs"], recipe["lr"], recipe["batch_size"], recipe["max_len"]) == (1, 5e-4, 4, 24)
    steps = -(-recipe["trained_records"] // 4)
    lines = r.stderr.strip().splitlines()
    assert [re.fullmatch(r"train: step (\d+)/(\d+) epoch 1/1 loss \d+\.\d{3} \(\d+\.\d s\)", x).groups()
            for x in lines[:-1]] == [(str(i), str(steps)) for i in range(1, steps + 1)], lines
    assert re.fullmatch(rf"train: done: {steps} steps, 1 epoch, final loss \d+\.\d{{3}} \(\d+\.\d s\)", lines[-1])
    assert f"wrote model to {out}" in r.stdout
    records = load_jsonl(update_data)
    train_step(recipe, base_model, records, tmp_path / "replayed", "replay")
    assert _digest(tmp_path / "replayed") == _digest(out) != _digest(full_candidate)
    old = {k: v for k, v in json.loads((full_candidate / RECIPE).read_text()).items() if k != "max_len"}
    train_step(old, base_model, records, tmp_path / "old", "replay")
    assert _digest(tmp_path / "old") == _digest(full_candidate)
    for bad, says in ((["--max-len", "100000"], "longer than the model's context"),
                      (["--lr", "0"], "learning rate 0.0: give a positive number")):
        r = cli.invoke(app, [*args, "--out", str(tmp_path / "bad"), *bad])
        assert r.exit_code != 0 and says in str(r.exception) and not (tmp_path / "bad").exists()
