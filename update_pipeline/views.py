"""Read-only views of a store, for the command line and the dashboard alike: the proposal queue,
one proposal in full, and the ledger's timeline. Every signature is verified on the way."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from governance.approvals import ApprovalStatus
from governance.errors import WeightgateError
from governance.ledger import Ledger
from governance.proposals import Proposal
from governance.signing import sha256_hex
from governance.store import Store
from update_pipeline.promote import status, trusted


def _promoted(store: Store) -> dict[str, int]:
    """proposal id -> the ledger version that promoted it."""
    return {e.predicate["proposal"]["id"]: e.predicate["version"] for e in Ledger.of(store).entries()
            if e.predicate["action"] == "promote"}


@dataclass(frozen=True)
class ProposalView:
    proposal: Proposal
    report: dict[str, Any] | None
    report_digest: str | None  # sha256 of the signed report shown: what an approval made from this view signs
    status: ApprovalStatus | None  # None: no report yet, or the approvals cannot be counted (see why)
    why: str
    promoted_as: int | None

    @property
    def approvals(self) -> str:
        return self.status.describe() if self.status else self.why

    @property
    def approved_by(self) -> tuple[str, ...]:
        return self.status.approved_by if self.status else ()

    @property
    def missing(self) -> int:
        return self.status.missing if self.status else -1

    @property
    def met(self) -> bool:
        return self.status is not None and self.status.met

    @property
    def verdict(self) -> str:
        return self.report["verdict"] if self.report else "not checked"

    @property
    def state(self) -> str:
        if self.promoted_as is not None:
            return f"promoted (ledger:{self.promoted_as})"
        if self.report is None:
            return "awaiting check"
        if self.report["verdict"] != "pass":
            return "check failed"
        if self.met:
            return "ready to promote"
        return "rejected" if self.missing == 0 else f"awaiting {self.missing} approval(s)"

    def gate_statuses(self) -> dict[str, str]:
        return {g["name"]: g["status"] for g in (self.report or {}).get("gates", [])}


def proposal_view(store: Store, ref: str, promoted: dict[str, int] | None = None) -> ProposalView:
    proposals = trusted(store)[3]
    p = proposals.load(ref, redacted_ok=True)
    latest = proposals.latest_report(p)
    tally, why = None, "no report yet"
    if latest is not None:
        try:
            tally = status(store, p.id)
        except WeightgateError as exc:
            why = str(exc)
    done = (promoted if promoted is not None else _promoted(store)).get(p.id)
    return ProposalView(p, latest[1] if latest else None, sha256_hex(latest[0]) if latest else None, tally, why,
                        done)


def queue(store: Store) -> list[ProposalView]:
    """Every proposal, newest first (on a team's servers, the proposals there)."""
    trusted(store)  # brings a team member's cache of the proposals in line with the servers
    promoted = _promoted(store)
    ids = [d.name for d in store.proposals_dir.glob("prop-*") if d.is_dir()] if store.proposals_dir.is_dir() else []
    views = []
    for pid in ids:
        try:
            views.append(proposal_view(store, pid, promoted))
        except WeightgateError:  # e.g. signed by a key the trust root no longer lists: not in the queue
            continue
    return sorted(views, key=lambda v: v.proposal.manifest["created"], reverse=True)


def ledger_rows(store: Store) -> list[dict[str, Any]]:
    """The ledger's entries, oldest first: what happened, to which version, approved by whom."""
    rows = []
    for e in Ledger.of(store).entries():
        p = e.predicate.get("proposal") or {}
        rows.append({"seq": e.seq, "action": e.predicate["action"], "version": e.predicate["version"],
                     "champion": e.predicate["champion"], "proposal": p.get("id"), "kind": p.get("kind"),
                     "note": p.get("note"), "approvers": p.get("approvers", []), "digest": e.digest,
                     "created": e.predicate["created"], "origin": p.get("origin"),
                     "method": e.predicate.get("method") or (p.get("origin") or {}).get("method"),
                     "signed_by": list(e.signed.signers)})
    return rows
