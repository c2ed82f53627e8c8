"""The audit bundle: everything an auditor needs to check the ledger offline, with no store.

    bundle/
      README.md                  what is here and how to check it
      ledger.intoto.jsonl        every ledger entry's DSSE envelope, one per line, byte for byte
                                 (trust root versions and policies included)
      attestations.intoto.jsonl  every proposal manifest, gate report and approval the ledger names
      checkpoint.dsse.json       the signed checkpoint of the ledger's head
      root.json                  the trust root in force at the head (for reading; trust comes from you)
      SHA256SUMS                 sha256 of every other file

``verify_bundle`` needs a trust anchor the auditor brings: a root version's fingerprint
or a pinned root file. It re-checks the chain (each entry against the root in force at
its sequence number), every report and approval a promotion relied on, the signed
head (so a dropped last entry fails), and the checksums.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from governance import approvals
from governance.errors import UsageError, VerificationError
from governance.history import policy_in_force
from governance.ledger import Entry, current_root, roots, walk_chain
from governance.schema import RootDoc
from governance.signing import canonical_json, sha256_hex, subject_digests, verify_signers
from governance.trust import RULES, check_anchor, fingerprint
from governance.witness import read_checkpoint

FILES = ("README.md", "ledger.intoto.jsonl", "attestations.intoto.jsonl", "checkpoint.dsse.json", "root.json")
README = """# weightgate audit bundle

Exported {created} from a weightgate store; {n} ledger entries, champion ledger:{champion}.

- `ledger.intoto.jsonl`: the ledger, one DSSE envelope per line (payloadType application/vnd.in-toto+json,
  an in-toto Statement v1 with predicateType https://weightgate.dev/LedgerEntry/v1). Each predicate names
  the sha256 of the previous line (`prev`), so the lines form a hash chain. Entries with action `root` are
  the trust root's versions: which key holds which role, and the thresholds.
- `attestations.intoto.jsonl`: the proposal manifests, gate reports and approvals that promotions name by
  sha256 (`manifest_blob`, `report_blob`, `approval_blobs`), one envelope per line.
- `checkpoint.dsse.json`: the signed head of the ledger (sequence number and digest of the last line).
- `root.json`: the trust root at the head, fingerprint {fingerprint}. It is here to read; do not trust it
  because it is here.
- `SHA256SUMS`: checksums of the files above.

To check it, with no store: `weightgate audit verify THIS_FOLDER --root-fingerprint HEX` (the fingerprint
you were given out of band) or `--trust ROOT.json` (a root file you pinned). By hand: verify each DSSE
signature over PAE(payloadType, payload) against the keys of the root in force at that line, check `prev`
links and `seq`, and for each promotion check that its report passed and that its approvals meet the
threshold without the proposer.
"""


def check_promotion(entry: Entry, entries: list[Entry], read: Callable[[str], bytes], where: str) -> None:
    """A promotion's manifest, passing report and approvals all verify against the root in force at its
    sequence number and match each other; the report was made under the policy then in force."""
    pred, root = entry.predicate, entry.root
    p = pred["proposal"]
    manifest_env = read(p["manifest_blob"])
    if sha256_hex(manifest_env) != p["manifest_digest"]:
        raise VerificationError(f"{where}: manifest does not match its recorded digest")
    signed, _ = verify_signers(manifest_env, root.public_keys(*RULES["propose"][0]), where=f"{where} manifest")
    proposer = root.judge("propose", signed, f"{where} manifest").signers[0]
    if proposer != p["proposer"]:
        raise VerificationError(f"{where}: manifest signed by {proposer}, recorded proposer {p['proposer']}")
    report_env = read(p["report_blob"])
    _, report = verify_signers(report_env, root.public_keys("gate"), where=f"{where} report")
    if report["predicate"]["verdict"] != "pass":
        raise VerificationError(f"{where}: promoted a proposal whose report did not pass")
    if subject_digests(report).get("manifest.dsse.json") != p["manifest_digest"]:
        raise VerificationError(f"{where}: the report is about another proposal")
    policy = policy_in_force(entries, entry.seq)
    if policy is None or report["predicate"]["policy"]["digest"] != policy["digest"]:
        raise VerificationError(f"{where}: the report was made under another policy than the one in force")
    need = max(root.doc.thresholds.approvals, policy.get("approvals", 1))
    if p["threshold"] < need:
        raise VerificationError(f"{where}: recorded threshold {p['threshold']} is below the {need} approvals the "
                                "root and the policy in force ask for")
    envs = [(f"{where} approval {i + 1}", read(b)) for i, b in enumerate(p["approval_blobs"])]
    tally = approvals.count(envs, root, p["id"], p["proposer"], sha256_hex(report_env), p["threshold"])
    if not tally.met or list(tally.approved_by) != p["approvers"]:
        raise VerificationError(f"{where}: recorded approvals do not verify ({tally.describe()})")


def export_bundle(entries: list[Entry], checkpoint: bytes, read: Callable[[str], bytes], out: Path,
                  created: str) -> Path:
    if out.exists() and any(out.iterdir()):
        raise UsageError(f"{out} exists and is not empty")
    read_checkpoint(checkpoint, entries, "checkpoint")
    named: list[str] = []
    for e in entries:
        p = e.predicate.get("proposal") or {}
        named += [p["manifest_blob"], p["report_blob"], *p.get("approval_blobs", [])] if p else []
    root = current_root(entries)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ledger.intoto.jsonl").write_bytes(b"".join(e.envelope + b"\n" for e in entries))
    (out / "attestations.intoto.jsonl").write_bytes(b"".join(read(d) + b"\n" for d in dict.fromkeys(named)))
    (out / "checkpoint.dsse.json").write_bytes(checkpoint)
    (out / "root.json").write_bytes(canonical_json(root.doc.model_dump()) + b"\n")
    (out / "README.md").write_text(README.format(created=created, n=len(entries), champion=entries[-1].predicate[
        "champion"], fingerprint=root.fingerprint))
    sums = "".join(f"{sha256_hex((out / f).read_bytes())}  {f}\n" for f in FILES)
    (out / "SHA256SUMS").write_text(sums)
    return out


def _lines(path: Path) -> list[bytes]:
    raw = path.read_bytes()
    if raw and not raw.endswith(b"\n"):
        raise VerificationError(f"{path.name}: truncated (no final newline)")
    return [line for line in raw.split(b"\n")[:-1]] if raw else []


def anchor_of(trust: Path | None, root_fingerprint: str | None) -> str:
    """The auditor's trust anchor: a pinned root file's fingerprint, or a fingerprint given directly."""
    if trust is None and not root_fingerprint:
        raise VerificationError("no trust anchor: give --root-fingerprint HEX (from whoever runs the store, out "
                                "of band) or --trust ROOT.json (a root file you pinned); a bundle cannot vouch "
                                "for itself")
    if trust is not None:
        try:
            return fingerprint(RootDoc.model_validate_json(trust.read_bytes()))
        except (OSError, ValueError) as exc:
            raise UsageError(f"{trust}: not a weightgate root file ({str(exc).splitlines()[0]})") from None
    return str(root_fingerprint)


def verify_bundle(folder: Path, trust: Path | None = None, root_fingerprint: str | None = None) -> dict[str, Any]:
    anchor = anchor_of(trust, root_fingerprint)
    if not (folder / "SHA256SUMS").is_file():
        raise UsageError(f"{folder}: not an audit bundle (no SHA256SUMS)")
    listed: dict[str, str] = {}
    for n, line in enumerate((folder / "SHA256SUMS").read_text(errors="replace").splitlines(), start=1):
        digest, _, name = line.partition("  ")
        if name not in FILES or len(digest) != 64:
            raise VerificationError(f"SHA256SUMS line {n} is malformed")
        listed[name] = digest
    extra = {p.name for p in folder.iterdir()} - set(FILES) - {"SHA256SUMS"}
    if set(listed) != set(FILES) or extra:
        raise VerificationError(f"bundle files do not match SHA256SUMS (unlisted: {sorted(extra)})")
    for name, digest in listed.items():
        if sha256_hex((folder / name).read_bytes()) != digest:
            raise VerificationError(f"{name} does not match its checksum in SHA256SUMS")
    entries = walk_chain(_lines(folder / "ledger.intoto.jsonl"))
    if not entries:
        raise VerificationError("ledger.intoto.jsonl is empty")
    check_anchor(roots(entries), anchor, "bundle")
    cp = read_checkpoint((folder / "checkpoint.dsse.json").read_bytes(), entries, "checkpoint.dsse.json")
    if cp.seq != len(entries):
        raise VerificationError(f"checkpoint.dsse.json signs a ledger of {cp.seq} entries, the bundle has "
                                f"{len(entries)}: entries were added after the signed head")
    attestations = {sha256_hex(e): e for e in _lines(folder / "attestations.intoto.jsonl")}

    def read(digest: str) -> bytes:
        if digest not in attestations:
            raise VerificationError(f"attestation {digest[:12]} is missing from the bundle")
        return attestations[digest]

    for e in entries:
        if e.predicate["action"] == "promote":
            check_promotion(e, entries, read, f"ledger entry {e.seq} (promote v{e.predicate['version']})")
    return {"entries": len(entries), "attestations": len(attestations), "champion": entries[-1].predicate["champion"],
            "root_version": current_root(entries).version, "anchor": anchor}
