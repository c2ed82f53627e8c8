"""What the ledger says about forgets and reports: tombstoned versions, forgotten records, recorded
reports, and whether a forget is still unfinished."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from governance.errors import UsageError, VerificationError

if TYPE_CHECKING:
    from governance.ledger import Entry


def tombstones(entries: list[Entry]) -> dict[int, int]:
    """version -> the forget entry that tombstoned it (it was trained on forgotten records)."""
    return {v: e.seq for e in entries if e.predicate["action"] == "forget" for v in e.predicate.get("tombstoned", [])}


def forgotten(entries: list[Entry]) -> set[str]:
    """Hashes of every record a signed forget entry removed."""
    return {h for e in entries if e.predicate["action"] == "forget" for h in e.predicate["removed"]}


def recorded_reports(entries: list[Entry]) -> dict[str, list[tuple[int, str, int]]]:
    """proposal id -> its recorded reports, oldest first: (number, envelope sha256, ledger entry)."""
    out: dict[str, list[tuple[int, str, int]]] = {}
    for e in entries:
        if e.predicate["action"] == "report":
            out.setdefault(e.predicate["proposal_id"], []).append((e.predicate["number"], e.predicate["report"], e.seq))
    return out


def removed_proposals(entries: list[Entry]) -> set[str]:
    """Unpromoted proposals a forget removes or removed (they held forgotten records): named by the intent, so a
    kill between removing one and the completion entry changes nothing."""
    return {p for e in entries for p in (e.predicate.get("proposals", []) if e.predicate["action"] == "forget"
                                         else e.predicate.get("removed_proposals", []))}


def pending_forget(entries: list[Entry]) -> Entry | None:
    """The forget entry whose shredding has not finished (no forget_done names it), if any."""
    done = {e.predicate["forget"] for e in entries if e.predicate["action"] == "forget_done"}
    return next((e for e in entries if e.predicate["action"] == "forget" and e.seq not in done), None)


def refuse_if_forget_pending(entries: list[Entry]) -> None:
    pending = pending_forget(entries)
    if pending is not None:
        raise UsageError(f"the forget in ledger entry {pending.seq} has not finished shredding: run "
                         "'weightgate forget --resume --by KEY' first")


def policy_in_force(entries: list[Entry], seq: int | None = None) -> dict[str, Any] | None:
    """The policy reference recorded last before entry `seq` (default: the head)."""
    found = None
    for e in entries:
        if seq is not None and e.seq >= seq:
            break
        if e.predicate["action"] == "policy":
            found = e.predicate["policy"]
    return found


def check_origin(entries: list[Entry], origin: dict[str, Any] | None, where: str) -> None:
    """A proposal that says it was made by unlearning (and so is judged more leniently) must name the signed
    revert or forget entry that asked for it, and say what that entry says."""
    if origin is None:
        return
    seq = origin.get("entry")
    e = entries[seq - 1] if isinstance(seq, int) and 1 <= seq <= len(entries) else None
    kind = "revert" if "revert" in origin else "forget" if "forget" in origin else None
    if e is None or kind is None or e.predicate["action"] != kind:
        raise VerificationError(f"{where}: says it was made by unlearning ({kind or 'unknown'}) but names no signed "
                                f"{kind or 'revert/forget'} ledger entry (entry {seq!r})")
    p = e.predicate
    same = ((p["target"], p["method"]) == (origin["revert"], origin.get("method")) if kind == "revert"
            else (p["removed"], p.get("method", "exact"), p.get("negated", [])) ==
            (origin["forget"], origin.get("method", "exact"), origin.get("negated", [])))
    if not same or p.get("replayed", origin.get("replayed")) != origin.get("replayed", p.get("replayed")):
        raise VerificationError(f"{where}: its origin does not match ledger entry {seq} ({kind})")
