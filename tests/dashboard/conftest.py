"""A demo store with one more clean proposal waiting for approval, for the dashboard tests."""

from pathlib import Path


def demo_with_waiting_proposal(root: Path, approvals: int = 1, members: tuple[tuple[str, str, str], ...] = ()):
    """(store, demo summary, id of a checked, passing, unapproved proposal) under a policy needing
    `approvals` approvals, with `members` (name, role, passphrase) added to the trust root by the demo admin."""
    import yaml

    from governance.data import load_jsonl
    from governance.store import Store
    from tests.conftest import write_jsonl
    from update_pipeline import demo, refs, world
    from update_pipeline.check import check
    from update_pipeline.intake import propose
    from update_pipeline.train import train_update

    store = Store.locate(root / "home")
    summary = demo.run_demo(store, quiet=True)
    from governance.keys import KeyRing
    from update_pipeline.service import Weightgate

    admin = Weightgate(store, passphrase=lambda _: demo.DEMO_PASSPHRASE)
    for name, role, secret in members:
        info = KeyRing(store.keys_dir).create(name, role, secret)
        admin.trust_add_key(name, role, [demo.ADMIN], keyid=info.keyid)
    if approvals != 1:
        policy = yaml.safe_load(store.policy_path.read_text())
        policy["approvals"]["required"] = approvals
        store.policy_path.write_text(yaml.safe_dump(policy, sort_keys=False))
        admin.apply_policy(store.policy_path, [demo.ADMIN])
    # new facts, with the safety data rehearsed so refusals are kept
    data = write_jsonl(root / "more.jsonl", world.fact_records(world.countries(n=33)[30:], "curated")
                       + world.safety_records("curated"))
    out = root / "more"
    train_update(refs.resolve("ledger:champion", store), "ledger:champion", load_jsonl(data), out, lora=True,
                 epochs=6, seed=0, lr=1e-3)
    p = propose(store, "ledger:champion", out, data, demo.PROPOSER, demo.DEMO_PASSPHRASE, note="more facts")
    report = check(store, p.id).report
    assert report["verdict"] == "pass", [(g["name"], g["findings"][:3]) for g in report["gates"] if g["findings"]]
    return store, summary, p.id
