"""The store's cache kept bounded, and ``weightgate gc``.

What ``cache/`` holds:

    cache/tmp/p<pid>.<host>.<what>.*   scratch copies of a running command (update_pipeline.scratch)
    cache/ledger/vN/                   restored ledger versions; MLflow's files are hard links to some
    cache/registry/NAME-vN/            models:/ references downloaded from the registry
    cache/eval/                        suite scores per model digest
    anything else                      the demo's base model, ...; removed only by ``gc --all``

Restored versions, registry downloads and scores are kept within the policy's ``storage.cache_mb``,
least recently used removed first, after every new restore and by ``gc``. Never removed: a live
command's scratch folder; a restored version whose files MLflow serves as hard links (removing it
frees nothing, and the next restore would make a second copy); for the budget, the champion's restore
and anything used in the last ``GRACE_S`` seconds (another command may be reading it) or handed out by
this process. The ledger, blobs, keys and proposals are outside ``cache/`` and never looked at.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from governance.store import Store
from update_pipeline import scratch

GRACE_S = 600
BUDGETED = ("restore", "registry", "scores")
LEGACY_TEMP_S = 24 * 3600  # temp folders named by other code (tmp*): stale when untouched for a day
_in_use: set[Path] = set()


@dataclass(frozen=True)
class Item:
    path: Path
    kind: str  # temp, restore, registry, scores, other
    size: int  # bytes that removing it frees (files linked elsewhere free nothing)
    used: float  # last use: the newest mtime in it
    keep: str = ""  # why it is never removed: "live" (a running command's), "served" (MLflow's hard links)
    stale: bool = False  # a temp folder nobody will remove: its owner is gone
    champion: bool = False


def used(path: Path) -> Path:
    """Mark a cache entry used now (what least-recently-used counts) and in use by this process."""
    try:
        os.utime(path)
    except OSError:  # another user's cache entry: still in use here, its age as it was
        pass
    _in_use.add(path.resolve())
    return path


def _measure(path: Path) -> tuple[int, bool, float]:
    """(bytes held only here, whether a file is hard-linked elsewhere, newest mtime)."""
    st = path.lstat()
    if not path.is_dir():
        return (st.st_size if st.st_nlink == 1 else 0), st.st_nlink > 1, st.st_mtime
    size, linked, newest = 0, False, st.st_mtime
    for dirpath, _, files in os.walk(path):
        newest = max(newest, os.lstat(dirpath).st_mtime)
        for f in files:
            try:
                s = os.lstat(os.path.join(dirpath, f))
            except OSError:
                continue
            newest = max(newest, s.st_mtime)
            if s.st_nlink > 1:
                linked = True
            else:
                size += s.st_size
    return size, linked, newest


def _item(path: Path, kind: str, **kw: Any) -> Item:
    size, linked, newest = _measure(path)
    keep = kw.pop("keep", "") or ("served" if linked and kind == "restore" else "")
    return Item(path, kind, size, newest, keep, **kw)


def _temp(path: Path, now: float) -> Item:
    if scratch.owner(path) is not None:
        dead = scratch.stale(path)
        return _item(path, "temp", keep="" if dead else "live", stale=dead)
    item = _item(path, "temp")  # named by other code: its owner is unknown, so only an old one is stale
    old = now - item.used > LEGACY_TEMP_S
    return Item(item.path, "temp", item.size, item.used, "" if old else "live", stale=old)


def inventory(store: Store, champion: int | None, now: float | None = None) -> list[Item]:
    cache, now = store.cache_dir, now if now is not None else time.time()
    out: list[Item] = []
    if not cache.is_dir():
        return out
    for p in sorted(cache.iterdir()):
        if p.name == "tmp" and p.is_dir():
            out += [_temp(q, now) for q in sorted(p.iterdir())]
        elif p.name == "ledger" and p.is_dir():
            for q in sorted(p.iterdir()):
                if q.name[:1] == "v" and q.name[1:].isdigit():
                    out.append(_item(q, "restore", champion=int(q.name[1:]) == champion))
                else:  # a restore's temp folder from before scratch folders
                    out.append(_temp(q, now))
        elif p.name == "registry" and p.is_dir():
            out += [_item(q, "registry") for q in sorted(p.iterdir())]
        elif p.name == "eval":
            out.append(_item(p, "scores"))
        elif p.name.startswith("tmp") and p.is_dir():
            out.append(_temp(p, now))
        else:
            out.append(_item(p, "other"))
    return out


def plan(items: list[Item], budget: int, everything: bool = False, now: float | None = None,
         in_use: set[Path] | frozenset[Path] = frozenset()) -> list[tuple[Item, str]]:
    """What to remove and why: stale temp folders; with `everything`, every entry but the never-removed
    ones; else budgeted entries, least recently used first, until the rest fits `budget` bytes (none in
    `in_use`, the champion's, or one used in the last GRACE_S seconds)."""
    now = now if now is not None else time.time()
    out = [(i, "stale temp") for i in items if i.kind == "temp" and i.stale]
    if everything:
        return out + [(i, "--all") for i in items if i.kind != "temp" and not i.keep]
    budgeted = [i for i in items if i.kind in BUDGETED]
    total = sum(i.size for i in budgeted)
    for i in sorted(budgeted, key=lambda i: i.used):
        if total <= budget:
            break
        if i.keep or i.champion or i.path.resolve() in in_use or now - i.used < GRACE_S:
            continue
        out.append((i, "over budget"))
        total -= i.size
    return out


def remove(chosen: list[tuple[Item, str]]) -> None:
    for item, _ in chosen:
        if item.path.is_dir() and not item.path.is_symlink():
            shutil.rmtree(item.path, ignore_errors=True)
        else:
            item.path.unlink(missing_ok=True)


def _state(store: Store, entries: list[Any] | None = None) -> tuple[int | None, int]:
    """(the champion, the cache budget in bytes of the policy in force)."""
    from governance.history import policy_in_force
    from governance.ledger import Ledger, champion
    from governance.policy import in_force

    entries = Ledger.of(store).entries() if entries is None else entries
    storage = in_force(store.blobs().read, policy_in_force(entries), "storage")
    return champion(entries), storage.cache_mb * 2**20


def bound(store: Store, entries: list[Any]) -> list[tuple[Item, str]]:
    """Keep the cache within the policy's budget (after a restore added to it), never removing what this
    process was handed."""
    champ, budget = _state(store, entries)
    chosen = plan(inventory(store, champ), budget, in_use=_in_use)
    remove(chosen)
    return chosen


def collect(store: Store, dry_run: bool = False, everything: bool = False,
            budget_mb: int | None = None) -> list[tuple[Item, str]]:
    """What ``weightgate gc`` removes (nothing removed on a dry run)."""
    champ, budget = _state(store)
    chosen = plan(inventory(store, champ), budget if budget_mb is None else budget_mb * 2**20, everything)
    if not dry_run:
        remove(chosen)
    return chosen


def _mb(n: int) -> str:
    return f"{n / 2**20:.1f} MB"


def gc(dry_run: Annotated[bool, typer.Option(help="Show what would be removed; remove nothing.")] = False,
       everything: Annotated[bool, typer.Option("--all", help="Empty the cache, not only what is over the budget "
                                                "(a running command's folders and files MLflow serves stay).")] = False,
       budget_mb: Annotated[int | None, typer.Option(min=0, help="Keep the cache under this many MB (default: "
                                                     "the policy's storage.cache_mb)")] = None,
       as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False) -> None:
    """Remove stale temp folders and cache entries beyond the budget; never the ledger, blobs, keys or proposals."""
    from update_pipeline import _cli_shared as shared

    store = shared.store()
    store.config()  # an initialised store, or a one-line error
    chosen = collect(store, dry_run, everything, budget_mb)
    freed = sum(i.size for i, _ in chosen)
    if as_json:
        shared.emit({"dry_run": dry_run, "freed_bytes": freed, "removed": [
            {"path": str(i.path.relative_to(store.home)), "kind": i.kind, "bytes": i.size, "why": why}
            for i, why in chosen]})
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    verb = "would free" if dry_run else "freed"
    if chosen:
        table = Table(title="would remove" if dry_run else "removed")
        for col in ("entry", "kind", "size", "why"):
            table.add_column(col, no_wrap=True)
        for i, why in chosen:
            table.add_row(*(Text(c) for c in (str(i.path.relative_to(store.home)), i.kind, _mb(i.size), why)))
        Console(width=max(100, shutil.get_terminal_size((120, 24)).columns)).print(table)
    typer.echo(f"{verb} {_mb(freed)} in {len(chosen)} entr{'y' if len(chosen) == 1 else 'ies'}")


def register(app: typer.Typer) -> None:
    app.command()(gc)
