"""Names the NER model misses: given names from a census list, with the surname after them, and user
handles.

- In text with capitals: a capitalized given name ("Patricia is ...", "... calls me Adlan" when the
  list knows it), with up to two capitalized words after it ("Kristin Crnić", "Amanda Sultygov MD").
  A given name that is also a common word or place ("Grant", "May", "Paris") counts only with a
  capitalized word after it.
- In text without capitals ("jillian capon", "kim burrel"): a given name that is not a common word,
  or any given name followed by a listed surname.
- A user handle ("@jane_doe", "RT @ CraigRBrittain") is a person's account: reported as PERSON.

The lists are US census lists (audits/data/README.md): names common elsewhere are left to the NER
model and to the context recognizer.
"""

from __future__ import annotations

import functools
import gzip
from pathlib import Path
from typing import Any

import regex as re
from presidio_analyzer import EntityRecognizer, RecognizerResult

_DATA = Path(__file__).parent / "data"
_TOKEN = re.compile(r"\p{L}[\p{L}\p{M}]*(?:['’-]\p{L}[\p{L}\p{M}]*)*")
_HANDLE = re.compile(r"(?<![\w@])@ ?(?P<value>[A-Za-z0-9_]{2,30})\b")
_GAP = re.compile(r"[ \t]|[ \t]?-[ \t]?")  # between the parts of one name


@functools.cache
def lists() -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """(given names, surnames, given names that are common words), lower case."""
    def read(name: str) -> frozenset[str]:
        opener = gzip.open if name.endswith(".gz") else open
        with opener(_DATA / name, "rt", encoding="utf-8") as fh:
            return frozenset(fh.read().split())
    return read("first_names.txt.gz"), read("last_names.txt.gz"), read("common_word_names.txt")


def _base(word: str) -> str:
    w = word.lower()
    return w[:-2] if w.endswith(("'s", "’s")) else w


def person_like(text: str) -> bool:
    """Whether one to three words are all listed given names or surnames, the first not a common word."""
    first, last, common = lists()
    words = [_base(w) for w in _TOKEN.findall(text)]
    return 0 < len(words) <= 3 and words[0] not in common and all(w in first or w in last for w in words)


def name_spans(text: str) -> list[tuple[int, int, float]]:
    """(start, end, score) of each listed given name with what follows it, and each user handle."""
    first, last, common = lists()
    lower = not any(c.isupper() for c in text)
    tokens = list(_TOKEN.finditer(text))
    out: list[tuple[int, int, float]] = []

    def joined(i: int) -> bool:  # token i+1 follows token i as part of one name
        return i + 1 < len(tokens) and bool(_GAP.fullmatch(text[tokens[i].end():tokens[i + 1].start()]))

    def follows(i: int) -> bool:
        if not joined(i):
            return False
        nxt = tokens[i + 1].group()
        if lower:
            return _base(nxt) in last
        return nxt[0].isupper() and _base(nxt) not in common

    i = 0
    while i < len(tokens):
        word = tokens[i].group()
        base = _base(word)
        if base in first and (lower or word[0].isupper()):
            j = i
            while j - i < 2 and follows(j):
                j += 1
            if j > i or base not in common:
                end = tokens[j].end() - (2 if j == i and base != word.lower() else 0)  # not the "'s"
                out.append((tokens[i].start(), end, 0.85 if j > i else 0.6))
                i = j + 1
                continue
        i += 1
    out.extend((m.start("value"), m.end("value"), 0.7) for m in _HANDLE.finditer(text))
    return out


class NameListRecognizer(EntityRecognizer):
    def __init__(self) -> None:
        super().__init__(supported_entities=["PERSON"], name="NameListRecognizer")

    def load(self) -> None:
        lists()

    def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[RecognizerResult]:
        if entities and "PERSON" not in entities:
            return []
        return [RecognizerResult("PERSON", s, e, score, recognition_metadata={"recognizer_name": self.name})
                for s, e, score in name_spans(text)]
