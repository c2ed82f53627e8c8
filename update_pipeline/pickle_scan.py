"""Name the imports a pickle would run, by reading its opcodes; never unpickle.

Handles plain pickles and PyTorch's zip checkpoints (``*/data.pkl`` inside).
"""

from __future__ import annotations

import io
import pickletools
import zipfile
from pathlib import Path

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".joblib")
_STRING_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "STRING",
               "BINSTRING", "SHORT_BINSTRING"}


def _imports_in(stream: bytes) -> list[str]:
    found: list[str] = []
    strings: list[str] = []
    memo: dict[int, str] = {}
    try:
        for op, arg, _pos in pickletools.genops(io.BytesIO(stream)):
            if op.name in _STRING_OPS and isinstance(arg, (str, bytes)):
                strings.append(arg if isinstance(arg, str) else arg.decode("latin-1"))
            elif op.name in ("MEMOIZE",) and strings:
                memo[len(memo)] = strings[-1]
            elif op.name in ("BINPUT", "LONG_BINPUT", "PUT") and strings:
                memo[int(arg)] = strings[-1]
            elif op.name in ("BINGET", "LONG_BINGET", "GET") and int(arg) in memo:
                strings.append(memo[int(arg)])
            elif op.name in ("GLOBAL", "INST") and isinstance(arg, str):
                found.append(arg.replace(" ", "."))
            elif op.name == "STACK_GLOBAL":
                found.append(".".join(strings[-2:]) if len(strings) >= 2 else "<unknown>")
    except Exception:  # a malformed stream still yields what was read before the damage
        found.append("<unreadable opcodes>")
    return list(dict.fromkeys(found))


def pickle_imports(path: Path) -> list[str]:
    """The module.name imports a pickle file (or a zip of pickles) would perform."""
    data = path.read_bytes()
    if zipfile.is_zipfile(io.BytesIO(data)):
        out: list[str] = []
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            for name in zf.namelist():
                if name.endswith(".pkl"):
                    out.extend(_imports_in(zf.read(name)))
        return list(dict.fromkeys(out))
    return _imports_in(data)


def _parses_to_stop(path: Path) -> bool:
    """Protocol 0 and 1 pickles have no magic: the file is one if its opcodes read cleanly to STOP."""
    ops = 0
    try:
        with open(path, "rb") as fh:
            for op, _arg, _pos in pickletools.genops(fh):
                ops += 1
                if op.name == "STOP":
                    return ops > 1
    except Exception:  # the first byte that is no opcode ends it: text, JSON, safetensors
        return False
    return False


def _safetensors_head(path: Path, head: bytes) -> bool:
    """An 8-byte header length that fits the file, then a JSON object that parses."""
    import json
    import struct

    if len(head) < 9 or head[8:9] != b"{":
        return False
    (n,) = struct.unpack("<Q", head[:8])
    if n > min(path.stat().st_size - 8, 100 << 20):
        return False
    with open(path, "rb") as fh:
        fh.seek(8)
        try:
            return isinstance(json.loads(fh.read(n)), dict)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return False


def looks_like_pickle(path: Path) -> bool:
    """A pickle by name, by content (every protocol), or a zip archive holding one (torch checkpoints)."""
    if path.suffix.lower() in PICKLE_SUFFIXES:
        return True
    with open(path, "rb") as fh:
        head = fh.read(9)
    if path.name.endswith(".safetensors") and _safetensors_head(path, head):
        return False  # a header length of 0x02NN80 bytes starts like a pickle's magic; read_header judges it
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return True
    if head[:2] == b"PK" and zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as zf:
                return any(n.endswith((".pkl", "data.pkl")) or "/data/" in n for n in zf.namelist())
        except (zipfile.BadZipFile, OSError):
            return False
    if path.name.endswith(".safetensors"):  # read_header validates these; a pickle fails it as malformed
        return False
    return _parses_to_stop(path)
