"""The audit bundle: everything an auditor needs to check the ledger offline, with no store.

    bundle/
      README.md                  what is here and how to check it
      ledger.intoto.jsonl        every ledger entry's DSSE envelope, one per line, byte for byte
      attestations.intoto.jsonl  every proposal manifest, gate report and approval the ledger names
      keys.json                  public keys with roles
      SHA256SUMS                 sha256 of every other file

``verify_bundle`` re-checks the chain, every signature, every report and approval a
promotion relied on, and the checksums. Pass pinned keys (``--trust``) to check against
keys you trust rather than the bundle's own.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from governance import approvals
from governance.errors import UsageError, VerificationError
from governance.keys import GATE_ROLE, KeyInfo
from governance.ledger import walk_chain
from governance.signing import sha256_hex, subject_digests, verify_envelope

FILES = ("README.md", "ledger.intoto.jsonl", "attestations.intoto.jsonl", "keys.json")
README = """# weightgate audit bundle

Exported {created} from a weightgate store; {n} ledger entries, champion ledger:{champion}.

- `ledger.intoto.jsonl`: the ledger, one DSSE envelope per line (payloadType application/vnd.in-toto+json,
  an in-toto Statement v1 with predicateType https://weightgate.dev/LedgerEntry/v1). Each predicate names
  the sha256 of the previous line (`prev`), so the lines form a hash chain.
- `attestations.intoto.jsonl`: the proposal manifests, gate reports and approvals that promotions name by
  sha256 (`manifest_blob`, `report_blob`, `approval_blobs`), one envelope per line.
- `keys.json`: the Ed25519 public keys (raw, base64) with their roles; a key id is the sha256 of the raw key.
- `SHA256SUMS`: checksums of the files above.

To check it: `weightgate audit verify THIS_FOLDER --trust PINNED_KEYS.json` (no store needed). By hand:
verify each DSSE signature over PAE(payloadType, payload), check `prev` links and `seq`, and for each
promotion check that its report passed and that its approvals meet `threshold` without the proposer.
"""


def check_promotion(pred: dict[str, Any], read: Callable[[str], bytes], keys: list[KeyInfo], where: str) -> None:
    """A promotion's manifest, passing report and approvals all verify and match each other."""
    p = pred["proposal"]
    proposers = {k.keyid: k.public() for k in keys if k.role == "proposer"}
    manifest_env = read(p["manifest_blob"])
    if sha256_hex(manifest_env) != p["manifest_digest"]:
        raise VerificationError(f"{where}: manifest does not match its recorded digest")
    verify_envelope(manifest_env, proposers, where=f"{where} manifest")
    report_env = read(p["report_blob"])
    gate = {k.keyid: k.public() for k in keys if k.role == GATE_ROLE}
    _, report = verify_envelope(report_env, gate, where=f"{where} report")
    if report["predicate"]["verdict"] != "pass":
        raise VerificationError(f"{where}: promoted a proposal whose report did not pass")
    if subject_digests(report).get("manifest.dsse.json") != p["manifest_digest"]:
        raise VerificationError(f"{where}: the report is about another proposal")
    envs = [(f"{where} approval {i + 1}", read(b)) for i, b in enumerate(p["approval_blobs"])]
    tally = approvals.count(envs, keys, p["id"], p["proposer"], sha256_hex(report_env), p["threshold"])
    if not tally.met or list(tally.approved_by) != p["approvers"]:
        raise VerificationError(f"{where}: recorded approvals do not verify ({tally.describe()})")


def export_bundle(envelopes: list[bytes], read: Callable[[str], bytes], keys: list[KeyInfo], out: Path,
                  created: str) -> Path:
    if out.exists() and any(out.iterdir()):
        raise UsageError(f"{out} exists and is not empty")
    preds = [b["predicate"] for b in walk_chain(envelopes, keys)]
    named: list[str] = []
    for pred in preds:
        p = pred.get("proposal") or {}
        named += [p["manifest_blob"], p["report_blob"], *p.get("approval_blobs", [])] if p else []
    out.mkdir(parents=True, exist_ok=True)
    (out / "ledger.intoto.jsonl").write_bytes(b"".join(e + b"\n" for e in envelopes))
    (out / "attestations.intoto.jsonl").write_bytes(b"".join(read(d) + b"\n" for d in dict.fromkeys(named)))
    (out / "keys.json").write_text(json.dumps([asdict(k) for k in keys], indent=2, sort_keys=True) + "\n")
    champion = preds[-1]["champion"] if preds else None
    (out / "README.md").write_text(README.format(created=created, n=len(preds), champion=champion))
    sums = "".join(f"{sha256_hex((out / f).read_bytes())}  {f}\n" for f in FILES)
    (out / "SHA256SUMS").write_text(sums)
    return out


def _lines(path: Path) -> list[bytes]:
    raw = path.read_bytes()
    if raw and not raw.endswith(b"\n"):
        raise VerificationError(f"{path.name}: truncated (no final newline)")
    return [line for line in raw.split(b"\n")[:-1]] if raw else []


def _keys(path: Path) -> list[KeyInfo]:
    try:
        return [KeyInfo(**k) for k in json.loads(path.read_text())]
    except (OSError, ValueError, TypeError) as exc:
        raise VerificationError(f"{path.name}: not a key list ({exc})") from None


def verify_bundle(folder: Path, trust: Path | None = None) -> dict[str, Any]:
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
    keys = _keys(trust if trust else folder / "keys.json")
    envelopes = _lines(folder / "ledger.intoto.jsonl")
    preds = [b["predicate"] for b in walk_chain(envelopes, keys)]
    attestations = {sha256_hex(e): e for e in _lines(folder / "attestations.intoto.jsonl")}

    def read(digest: str) -> bytes:
        if digest not in attestations:
            raise VerificationError(f"attestation {digest[:12]} is missing from the bundle")
        return attestations[digest]

    for seq, pred in enumerate(preds, start=1):
        if pred["action"] == "promote":
            check_promotion(pred, read, keys, f"ledger entry {seq} (promote v{pred['version']})")
    return {"entries": len(preds), "attestations": len(attestations),
            "champion": preds[-1]["champion"] if preds else None, "pinned_keys": trust is not None}
