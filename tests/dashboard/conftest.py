"""A demo store with one more clean proposal waiting for approval, for the dashboard tests."""

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def demo_made(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The demo's store, made once (home, demo summary); each module works on its own copy."""
    from governance.store import Store
    from update_pipeline import demo

    store = Store.locate(tmp_path_factory.mktemp("demo") / "home")
    return store.home, demo.run_demo(store, quiet=True)


def demo_with_waiting_proposal(made: tuple[Path, dict], root: Path, approvals: int = 1,
                               members: tuple[tuple[str, str, str], ...] = ()):
    """(store, demo summary, id of a checked, passing, unapproved proposal): a copy of the demo's store
    `made`, under a policy needing `approvals` approvals, with `members` (name, role, passphrase) added to the
    trust root by the demo admin."""
    import yaml

    from governance.data import load_jsonl
    from governance.store import Store
    from tests.conftest import copy_store, write_jsonl
    from update_pipeline import demo, refs, world
    from update_pipeline.check import check
    from update_pipeline.intake import propose
    from update_pipeline.train import train_update

    copy_store(made[0], root / "home")
    store = Store.locate(root / "home")
    summary = {**made[1], "home": str(store.home)}
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
