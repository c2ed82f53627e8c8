"""The ledger on a PostgreSQL server: the whole flow, concurrent writers from two homes, kill -9."""

import json
import subprocess
import sys

import pytest

from governance.ledger import Ledger, champion
from tests.update_pipeline.test_crash import _env
from tests.update_pipeline.test_ledger_flow import promote_chain
from update_pipeline.audit import verify_store
from update_pipeline.service import Weightgate

pytestmark = pytest.mark.servers


def test_flow_with_the_ledger_on_postgres(pg_store, base_model, tmp_path):
    import psycopg

    promote_chain(pg_store, base_model, tmp_path, n=2)
    Weightgate(pg_store).rollback(1, "bob")
    summary = verify_store(pg_store)
    assert summary["champion"] == 1
    assert not (pg_store.home / "ledger.db").exists() and not pg_store.lock_path.exists()
    url = pg_store.config()["ledger_url"].replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT count(*) FROM ledger_entries").fetchone()[0]
    assert rows == summary["entries"]


def test_writers_in_two_homes_are_serialized_by_the_database(team_store, tmp_path):
    """Six policy changes at once from two homes on one ledger and one MLflow server: a file lock could not
    serialize them (each home has its own); the row lock does, and every one lands on one chain."""
    import shutil

    from governance.store import Store

    other = Store.locate(tmp_path / "other")
    shutil.copytree(team_store.home, other.home)  # another machine with the same configuration
    before = len(Ledger.of(team_store).entries())
    policy = tmp_path / "policy.yaml"
    policy.write_bytes(team_store.policy_path.read_bytes())
    cmd = [sys.executable, "-m", "update_pipeline.cli", "policy", "apply", str(policy), "--by", "dan"]
    procs = [subprocess.Popen(cmd, env=_env(home), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for home in [team_store.home, other.home] * 3]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    entries = Ledger.of(team_store).entries()
    assert len(entries) == before + 6 and [e.seq for e in entries] == list(range(1, before + 7))
    assert verify_store(team_store)["entries"] == verify_store(other)["entries"] == before + 6
    assert champion(entries) == champion(Ledger.of(other).entries())


def test_a_writer_that_skips_the_lock_cannot_fork_the_chain(pg_store):
    """Two appends prepared on the same head, without the lock: one lands, the other is refused (the head
    moved; and were both to pass that test at once, the sequence number is the primary key)."""
    from governance.errors import UsageError
    from governance.keys import KeyRing

    ledger = Ledger.of(pg_store)
    entries = ledger.entries()
    last = entries[-1].predicate
    assert last["action"] == "policy"
    pred = {"action": "policy", "version": last["version"], "champion": last["champion"], "policy": last["policy"]}
    signers = [KeyRing(pg_store.keys_dir).signer("dan", "dan-passphrase")]
    ledger.append(entries, pred, {"policy": last["policy"]["digest"]}, signers)
    with pytest.raises(UsageError, match="ledger changed"):
        Ledger.of(pg_store).append(entries, pred, {"policy": last["policy"]["digest"]}, signers)
    assert [e.seq for e in Ledger.of(pg_store).entries()] == list(range(1, len(entries) + 2))


def _cli(home, *args):
    return subprocess.run([sys.executable, "-m", "update_pipeline.cli", "--home", str(home), *args],
                          capture_output=True, text=True, timeout=300, env={**_env(home), "COLUMNS": "200"})


def test_init_on_the_servers_and_doctor(pg, mlflow_team, tmp_path):
    from pathlib import Path

    from governance.errors import UsageError
    from governance.store import Store

    url = pg.create("doctor")
    r = _cli(tmp_path / "m", "init", "--ledger-url", url, "--tracking-uri", mlflow_team)
    assert r.returncode == 0, r.stderr
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["ledger_url"] == url and config["tracking_uri"] == mlflow_team
    again = _cli(tmp_path / "m", "init", "--ledger-url", url, "--tracking-uri", "http://127.0.0.1:1")
    assert again.returncode == 2 and "tracking_uri" in again.stderr  # never changes a store silently
    assert json.loads((tmp_path / "m" / "config.json").read_text()) == config
    member, policy = Store.locate(tmp_path / "m"), Path("unused.yaml")
    assert member.init(policy, root_fingerprint="AB" * 32) is False  # a first pin, once the admins have a root
    assert member.config()["root_fingerprint"] == "ab" * 32
    with pytest.raises(UsageError, match="root_fingerprint"):  # a pin is never changed by init
        member.init(policy, root_fingerprint="cd" * 32)
    r = _cli(tmp_path / "m", "doctor")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "127.0.0.1" in r.stdout and mlflow_team in r.stdout and "FAIL" not in r.stdout
    pg.drop("doctor")
    r = _cli(tmp_path / "m", "doctor")
    assert r.returncode == 1 and "FAIL" in r.stdout and "ledger" in r.stdout
    r = _cli(tmp_path / "m", "ledger", "verify")  # the database is gone: one line, no traceback
    assert r.returncode in (1, 2) and r.stderr.count("\n") == 1 and "internal error" not in r.stderr, r.stderr


@pytest.mark.parametrize("url", ["postgresql+psycopg://nobody@127.0.0.1:1/none", "mysql://u@127.0.0.1/db", "nonsense"])
def test_init_refuses_a_ledger_it_cannot_reach(url, tmp_path):
    r = _cli(tmp_path / "m", "init", "--ledger-url", url)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--ledger-url" in r.stderr, r.stderr
    assert not (tmp_path / "m").exists()


def test_init_refuses_a_team_store_with_nowhere_for_blobs(pg, tmp_path):
    url = pg.create("noblobs")
    r = _cli(tmp_path / "m", "init", "--ledger-url", url)  # no tracking server, no --blobs
    assert r.returncode == 2 and "--blobs" in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert not (tmp_path / "m").exists()
    pg.drop("noblobs")


def test_a_member_role_with_the_readme_grants_writes_but_cannot_rewrite(pg, tmp_path, monkeypatch):
    """The README's roles: the ledger's tables owned by one role; members get INSERT, never UPDATE or DELETE,
    on the entries. A member's ledger write works; rewriting history is refused by the server itself."""
    import shutil

    import psycopg

    from governance.store import Store
    from tests.conftest import PASSPHRASES, trusted_store
    from update_pipeline import world

    for name, secret in PASSPHRASES.items():
        monkeypatch.setenv(f"WEIGHTGATE_PASSPHRASE_{name.upper()}", secret)
    monkeypatch.delenv("WEIGHTGATE_LEDGER_URL", raising=False)
    with psycopg.connect(f"host=127.0.0.1 port={pg.port} user=weightgate dbname=postgres", autocommit=True) as c:
        for role in ("wg_owner", "wg_member"):
            if not c.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
                c.execute(f"CREATE ROLE {role} LOGIN")
        c.execute("CREATE DATABASE team_roles OWNER wg_owner")
    url = f"postgresql+psycopg://{{}}@127.0.0.1:{pg.port}/team_roles"
    owner = Store.locate(tmp_path / "owner")
    owner.init(world.policy(tmp_path / "policy.yaml"), ledger_url=url.format("wg_owner"),
               blobs=(tmp_path / "blobs").as_uri())
    trusted_store(owner)  # the admin's trust init, as the tables' owner
    with psycopg.connect(f"host=127.0.0.1 port={pg.port} user=wg_owner dbname=team_roles", autocommit=True) as c:
        c.execute("GRANT SELECT, INSERT ON ledger_entries TO wg_member")
        c.execute("GRANT SELECT, UPDATE ON ledger_lock TO wg_member")
        c.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON shared_files, checkpoints, data_keys TO wg_member")
    member = tmp_path / "member"
    shutil.copytree(owner.home, member)
    config = json.loads((member / "config.json").read_text())
    config["ledger_url"] = url.format("wg_member")
    (member / "config.json").write_text(json.dumps(config))
    before = verify_store(Store.locate(member))["entries"]
    r = _cli(member, "policy", "apply", str(owner.policy_path), "--by", "dan")
    assert r.returncode == 0, r.stderr
    assert verify_store(Store.locate(member))["entries"] == before + 1
    with psycopg.connect(f"host=127.0.0.1 port={pg.port} user=wg_member dbname=team_roles") as c:
        for sql in ("DELETE FROM ledger_entries", "UPDATE ledger_entries SET seq = seq", "DROP TABLE ledger_entries"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                c.execute(sql)
            c.rollback()
    pg.drop("team_roles")
