"""Update data: JSONL records, validated at the edge, hashed into a Merkle tree.

A record is ``{"id"?, "text"}`` or ``{"id"?, "prompt", "completion"}``, with optional
``source`` and ``meta``. A record without an id gets ``r-`` plus 16 hex of its content
hash. Any bad line refuses the whole file, naming every bad line (first ten).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from governance.errors import InputError
from governance.signing import canonical_json

TEXT_FIELDS = ("text", "prompt", "completion")
MAX_DEPTH = 32  # nesting of a record's JSON (meta included)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _depth(obj: Any, limit: int = MAX_DEPTH) -> int:
    """How deeply `obj` nests, without recursion (a hostile line must not exhaust the stack)."""
    deepest, todo = 0, [(obj, 1)]
    while todo:
        o, d = todo.pop()
        deepest = max(deepest, d)
        if deepest > limit:
            break
        if isinstance(o, dict):
            todo.extend((v, d + 1) for v in o.values())
        elif isinstance(o, list):
            todo.extend((v, d + 1) for v in o)
    return deepest


def parse_line(line: bytes) -> Any:
    """One JSON value, refusing NaN/Infinity, integers too long to read, lone surrogates and deep nesting
    with ValueError (UnicodeDecodeError for bytes that are not UTF-8)."""
    text = line.decode("utf-8")
    try:
        obj = json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels") from None
    except json.JSONDecodeError:
        raise
    except ValueError as exc:
        if "digits" in str(exc):
            raise ValueError("holds a number too long to read (over 4,300 digits)") from None
        raise
    if _depth(obj) > MAX_DEPTH:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
    try:
        canonical_json(obj)
    except UnicodeEncodeError:
        raise ValueError("holds a lone surrogate (not valid Unicode text)") from None
    return obj


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    id: str | None = None
    text: str | None = None
    prompt: str | None = None
    completion: str | None = None
    source: str | None = None
    meta: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _one_shape(self) -> _Record:
        pair = self.prompt is not None or self.completion is not None
        if self.text is not None and pair:
            raise ValueError("has both 'text' and 'prompt'/'completion'")
        if self.text is None and (self.prompt is None or self.completion is None):
            raise ValueError("needs 'text', or both 'prompt' and 'completion'")
        if self.id is not None and not self.id.strip():
            raise ValueError("'id' is empty")
        return self


@dataclass(frozen=True)
class DataRecord:
    id: str
    line: int
    fields: dict[str, str]  # the text fields present: text, or prompt and completion
    source: str | None
    meta: dict[str, Any] | None
    content_hash: str  # sha256 of the canonical content (everything but the id)
    record_hash: str  # sha256 of the canonical record, id included; in memory only, never signed or stored
    canonical: bytes = field(repr=False, default=b"")  # the canonical record, id included

    def mac(self, key: str) -> str:
        """The record's keyed hash: what signed metadata holds (see record_keys)."""
        return keyed(key, self.canonical)

    @property
    def kind(self) -> str:
        return "text" if "text" in self.fields else "prompt_completion"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, **self.fields}
        if self.source is not None:
            out["source"] = self.source
        if self.meta is not None:
            out["meta"] = self.meta
        return out


def _record(obj: Any, line: int) -> DataRecord:
    rec = _Record.model_validate(obj)
    content = rec.model_dump(exclude={"id"}, exclude_none=True)
    chash = hashlib.sha256(canonical_json(content)).hexdigest()
    rid = rec.id if rec.id is not None else "r-" + chash[:16]
    fields = {k: content[k] for k in TEXT_FIELDS if k in content}
    canonical = canonical_json({"id": rid, **content})
    return DataRecord(rid, line, fields, rec.source, rec.meta, chash, hashlib.sha256(canonical).hexdigest(),
                      canonical)


def load_jsonl(path: Path, allow_empty: bool = False) -> list[DataRecord]:
    """All records of a JSONL file, or InputError naming the bad lines."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read data file {path}: {exc.strerror}") from None
    records: list[DataRecord] = []
    errors: list[str] = []
    seen: dict[str, DataRecord] = {}
    for n, line in enumerate(raw.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            rec = _record(parse_line(line), n)
        except UnicodeDecodeError:
            errors.append(f"line {n}: not UTF-8")
            continue
        except json.JSONDecodeError as exc:
            errors.append(f"line {n}: not JSON ({exc.msg} at column {exc.colno})")
            continue
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(p) for p in first["loc"])
            errors.append(f"line {n}: {loc + ': ' if loc else ''}{first['msg'].removeprefix('Value error, ')}")
            continue
        except ValueError as exc:  # NaN/Infinity, an integer too long, a lone surrogate, deep nesting
            errors.append(f"line {n}: {str(exc).splitlines()[0]}")
            continue
        prior = seen.get(rec.id)
        if prior is not None and prior.record_hash != rec.record_hash:
            errors.append(f"line {n}: id {rec.id!r} already used on line {prior.line} for other content")
            continue
        seen[rec.id] = rec
        records.append(rec)
    if errors:
        more = f" (and {len(errors) - 10} more)" if len(errors) > 10 else ""
        raise InputError(f"{path}: {'; '.join(errors[:10])}{more}")
    if not records and not allow_empty:
        raise InputError(f"{path}: no records")
    return records


def write_jsonl(records: list[dict[str, Any]], path: Path) -> Path:
    """Records as JSONL (sorted keys, one per line)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
    return path


def record_keys(n: int) -> dict[str, Any]:
    """Fresh random keys for a data file: one for the whole file, one per record.

    Signed metadata (manifests, the ledger) holds only keyed hashes (HMAC-SHA256) of the file and of each
    record, never plain hashes or ids. The keys live beside the data (a proposal's record_keys.json, sealed
    with the data once promoted); forgetting a record deletes its key and the file's, so nobody can
    confirm a guess of it against what was signed."""
    return {"file": secrets.token_hex(32), "records": [secrets.token_hex(32) for _ in range(n)]}


def keyed(key: str, data: bytes) -> str:
    return hmac.new(bytes.fromhex(key), data, hashlib.sha256).hexdigest()


def record_macs(records: list[DataRecord], keys: dict[str, Any]) -> list[str]:
    """Each record's keyed hash, with the keys in the file's order (missing or extra keys: ValueError)."""
    if len(keys.get("records", [])) != len(records):
        raise ValueError(f"{len(records)} records but {len(keys.get('records', []))} record keys")
    return [r.mac(k) for r, k in zip(records, keys["records"], strict=True)]


def merkle_root(leaves: list[str]) -> str:
    """RFC 6962-style Merkle root over hex leaf hashes (leaf prefix 0x00, node prefix 0x01)."""
    if not leaves:
        return hashlib.sha256(b"").hexdigest()
    level = [hashlib.sha256(b"\x00" + bytes.fromhex(h)).digest() for h in leaves]
    while len(level) > 1:
        nxt = [hashlib.sha256(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0].hex()


def ranked(records: list[DataRecord]) -> list[DataRecord]:
    """Records in a fixed pseudo-random order, by salted content hash: samples taken from the front
    do not depend on record order or ids."""
    return sorted(records, key=lambda r: hashlib.sha256(b"probe\x00" + r.content_hash.encode()).digest())


def probe_split(records: list[DataRecord], fraction: float) -> tuple[list[DataRecord], list[DataRecord]]:
    """(records to train on, held-out probe records): the round(fraction * n) records (at least one
    when there are five or more) that rank first. Deterministic and independent of record order
    and ids, so a replay or an evaluation finds the same probe."""
    if fraction <= 0 or len(records) < 5:
        return list(records), []
    k = min(len(records) - 1, max(1, round(fraction * len(records))))
    held = {id(r) for r in ranked(records)[:k]}
    return [r for r in records if id(r) not in held], [r for r in records if id(r) in held]
