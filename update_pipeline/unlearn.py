"""Unlearning: revert one update among many (forgetting records is update_pipeline.forget).

Both end in a new proposal, which must pass the gates and be approved before promotion.
``--exact`` replays recorded recipes without the removed update or records;
``--approximate`` subtracts the update's delta (task-vector negation) and is labelled
approximate in the proposal, the ledger and MLflow. The signed request is recorded
first; a rerun after a kill reuses it.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from governance.errors import UsageError, WeightgateError
from governance.keys import KeyRing, Signer
from governance.ledger import Entry, Ledger, champion, current_root, versions
from governance.proposals import ProposalStore
from governance.store import Store
from governance.trust import RULES, Root
from update_pipeline import witnesses
from update_pipeline.intake import Proposed, propose
from update_pipeline.replay import lineage, replay, steps_of
from update_pipeline.scratch import scratch
from update_pipeline.train import RECIPE
from update_pipeline.versions import restore_version


@dataclass(frozen=True)
class Unlearned:
    proposal: Proposed | None
    method: str
    affected: list[int]
    replayed: list[int]
    removed: list[str] = field(default_factory=list)
    problem: str | None = None
    tombstoned: list[int] = field(default_factory=list)
    negated: list[int] = field(default_factory=list)  # an approximate forget's subtracted versions


@dataclass(frozen=True)
class Plan:
    """What an unlearning request will do, worked out before anything is written."""

    method: str
    affected: list[int]
    start: int | None
    replayed: list[int]
    records: int = 0
    problem: str | None = None
    negated: list[int] = field(default_factory=list)  # an approximate forget: the versions whose change goes

    def describe(self) -> str:
        if self.problem:
            return f"no exact replay is possible: {self.problem}"
        if self.method == "approximate" and self.negated:
            return (f"{self.records} record(s) in ledger:{self.affected}: subtract the weight changes of "
                    f"ledger:{self.negated} from the champion and propose that against ledger:{self.start}; the "
                    "result is APPROXIMATE (not an exact replay) and labelled so in the proposal, the ledger and "
                    "MLflow")
        if self.method == "approximate":
            return (f"subtract the weight change of ledger:{self.affected[0]} from the champion; the result is "
                    "APPROXIMATE and labelled so in the proposal, the ledger and MLflow")
        what = f"{self.records} record(s) in ledger:{self.affected}, " if self.records else ""
        return (f"{what}replay the recorded recipes of {self.replayed or 'no version'} from ledger:{self.start} "
                "(exact: the model that training without it would have made)")


def plan_revert(store: Store, version: int, exact: bool) -> Plan:
    ledger = Ledger.of(store)
    entries = ledger.entries()
    chain = lineage(entries) if entries else []
    if version not in chain or version == 0:
        raise UsageError(f"ledger:{version} is not an update in the champion's lineage ({chain[1:]})")
    if not exact:
        return Plan("approximate", [version], None, [])
    later = chain[chain.index(version) + 1:]
    return checked_plan(entries, Plan("exact", [version], versions(entries)[version].predicate["parent"], later))


def checked_plan(entries: list, plan: Plan) -> Plan:
    try:
        steps_of(entries, plan.replayed)
    except UsageError as exc:
        return Plan(plan.method, plan.affected, plan.start, plan.replayed, plan.records, str(exc))
    return plan


def replay_proposer(root: Root, signer: Signer, by: str | None) -> str:
    """Who signs forget's replay proposal: `by`, else the forget's signer when the root lets it propose."""
    name = by or signer.name
    found = root.by_name(name)
    if found is None or found[1].role not in RULES["propose"][0]:
        raise UsageError(f"the replay proposal needs a proposer key: {name!r} cannot propose; "
                         "name one with --proposer")
    return name


def approximate(store: Store, entries: list, negated: list[int], dest: Path) -> Path:
    """The champion of `entries` minus the weight change of each version in `negated` (task-vector negation,
    summed in float32): APPROXIMATE, and saved with no recipe, so no exact replay runs across it."""
    from safetensors.torch import save_file

    from update_pipeline.weights import WEIGHT_SUFFIX, load_tensors

    made = versions(entries)
    champ = restore_version(store, entries, champion(entries))
    pairs = [(restore_version(store, entries, v), restore_version(store, entries, made[v].predicate["parent"]))
             for v in negated]
    shutil.copytree(champ, dest)
    (dest / RECIPE).unlink(missing_ok=True)  # an approximate result cannot be replayed
    for f in sorted(p.relative_to(champ) for p in champ.rglob(f"*{WEIGHT_SUFFIX}")):
        c = load_tensors(champ / f)
        out = {n: x.float() for n, x in c.items() if x.is_floating_point()}
        for target, parent in pairs:
            if (target / f).is_file() and (parent / f).is_file():
                t, p = load_tensors(target / f), load_tensors(parent / f)
                out.update({n: x - (t[n].float() - p[n].float()) for n, x in out.items() if n in t and n in p})
        save_file({n: out[n].to(x.dtype).contiguous() if n in out else x for n, x in c.items()}, str(dest / f),
                  metadata={"format": "pt"})
    return dest


def proposal_for(store: Store, entries: list[Entry], seq: int) -> Proposed | None:
    """The proposal whose origin names ledger entry `seq`, if one was made (a rerun finds it)."""
    proposals = ProposalStore.of(store, entries)
    for pdir in sorted(store.proposals_dir.glob("prop-*")):
        try:
            found = proposals.load(pdir.name)
        except WeightgateError:
            continue
        if (found.manifest.get("origin") or {}).get("entry") == seq:
            return Proposed(found.id, found.lineage().get("run_id", ""), found.manifest["candidate"]["kind"],
                            found.manifest_digest)
    return None


def _request(store: Store, ledger: Ledger, plan: Plan, signer: Signer, tracking_uri: str | None) -> Entry:
    """The signed revert request: the ledger's last entry when it already is this one (a rerun), else a new one."""
    with ledger.lock():
        entries = ledger.entries()
        champ = champion(entries)
        pred = {"action": "revert", "version": champ, "champion": champ, "target": plan.affected[0],
                "method": plan.method, "start": plan.start, "replayed": plan.replayed}
        last = entries[-1].predicate
        if all(last.get(k) == v for k, v in pred.items()):
            return entries[-1]
        return witnesses.append(store, ledger, entries, pred,
                                {f"revert-{plan.affected[0]}": digest([str(plan.affected[0]), plan.method])},
                                [signer], tracking_uri)


def revert(store: Store, version: int, exact: bool, signer: Signer, by: str | None, passphrase: str | None,
           tracking_uri: str | None = None) -> Unlearned:
    """Record the signed request (a revert entry by `signer`, an approver or operator), then build the model
    without ledger:VERSION and propose it, signed by the proposer key `by` (default: `signer`), with an
    origin naming that entry. A rerun after a kill reuses the request and finds or finishes the proposal."""
    plan = plan_revert(store, version, exact)
    ledger = Ledger.of(store)
    root = current_root(ledger.entries())
    root.allow("revert", [signer])
    by = replay_proposer(root, signer, by)
    KeyRing(store.keys_dir).signer(by, passphrase)  # a wrong passphrase stops here, before anything is written
    if plan.problem:
        raise UsageError(f"no exact replay is possible: {plan.problem}")
    entry = _request(store, ledger, plan, signer, tracking_uri)
    entries = ledger.entries()[:entry.seq]
    found = proposal_for(store, ledger.entries(), entry.seq)
    if found is not None:
        return Unlearned(found, plan.method, [version], plan.replayed)
    with scratch(store, "unlearn") as work:
        if exact:
            assert plan.start is not None
            result, data, _ = replay(store, ledger, entries, plan.start, plan.replayed, work)
            origin = {"revert": version, "method": "exact", "start": plan.start, "replayed": plan.replayed}
            note = f"exact revert of ledger:{version}: replayed {plan.replayed or 'nothing'} from ledger:{plan.start}"
        else:
            result = approximate(store, entries, [version], work / "result")
            data = work / "empty.jsonl"
            data.write_text("")
            origin = {"revert": version, "method": "approximate", "approximate": True}
            note = f"APPROXIMATE revert of ledger:{version} (task-vector negation)"
        origin["entry"] = entry.seq
        proposed = propose(store, f"ledger:{champion(entries)}", result, data, by, passphrase, note, tracking_uri,
                           origin)
    return Unlearned(proposed, plan.method, [version], plan.replayed)


def digest(items: list[str]) -> str:
    from governance.signing import canonical_json, sha256_hex

    return sha256_hex(canonical_json(items))
