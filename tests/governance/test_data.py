import hashlib

import pytest

from governance.data import load_jsonl, merkle_root
from governance.errors import InputError


def test_records_ids_and_hashes(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text('{"text": "hello"}\n\n{"id": "x1", "prompt": "Q?", "completion": "A.", "source": "s"}\n')
    recs = load_jsonl(p)
    assert [r.line for r in recs] == [1, 3]
    assert recs[0].id.startswith("r-") and len(recs[0].id) == 18
    assert recs[1].id == "x1" and recs[1].kind == "prompt_completion" and recs[1].source == "s"
    assert load_jsonl(p)[0].record_hash == recs[0].record_hash  # stable


@pytest.mark.parametrize("body, match", [
    ('{"text": "ok"}\n{"text": "broken"\n', "line 2: not JSON"),
    ('{"text": "ok"}\n{"prompt": "only prompt"}\n', "line 2: needs 'text', or both"),
    ('{"text": "ok", "colour": "red"}\n', "line 1: colour: Extra inputs"),
    ('{"text": 5}\n', "line 1: text"),
    ('{"id": "a", "text": "one"}\n{"id": "a", "text": "two"}\n', "line 2: id 'a' already used on line 1"),
    ('\n\n', "no records"),
])
def test_malformed_jsonl_names_lines(tmp_path, body, match):
    p = tmp_path / "bad.jsonl"
    p.write_text(body)
    with pytest.raises(InputError, match=match):
        load_jsonl(p)


def test_invalid_utf8(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_bytes(b'{"text": "ok"}\n{"text": "\xff"}\n')
    with pytest.raises(InputError, match="line 2: not UTF-8"):
        load_jsonl(p)


def test_merkle_root_rfc6962_shape():
    leaves = [hashlib.sha256(bytes([i])).hexdigest() for i in range(3)]
    h = lambda b: hashlib.sha256(b).digest()  # noqa: E731
    l0, l1, l2 = (h(b"\x00" + bytes.fromhex(x)) for x in leaves)
    assert merkle_root(leaves) == h(b"\x01" + h(b"\x01" + l0 + l1) + l2).hex()
    assert merkle_root(leaves[:1]) == l0.hex()
    assert merkle_root(leaves) != merkle_root(leaves[::-1])
