"""What the ledger says about forgets and reports: tombstoned versions, forgotten records, recorded
reports, and whether a forget is still unfinished."""

from __future__ import annotations

from typing import TYPE_CHECKING

from governance.errors import UsageError

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
