"""Names the NER model misses: given names from a census list, with the surname after them, and user
handles.

- In text with capitals: a capitalized given name ("Patricia is ...", "... calls me Adlan" when the
  list knows it), with up to two capitalized words after it ("Kristin Crnić", "Amanda Sultygov MD").
  A given name that is also a common word or place ("Grant", "May", "Paris") counts only with a
  capitalized word after it.
- In text without capitals ("jillian capon", "kim burrel"): a given name that is not a common word,
  or any given name followed by a listed surname.
- A user handle ("@jane_doe", "RT @ CraigRBrittain", "u/jane_doe") is a person's account: reported as PERSON.

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
# "@jane_doe", "RT @ CraigRBrittain", Reddit's "u/jane_doe"; in tokenized text "@ jane _ doe", "u / jane _ doe"
_HANDLE = re.compile(r"(?:(?<![\w@])@ ?|(?<![\w/])u ?/ ?)(?P<value>[A-Za-z0-9_]{2,30}(?: _ [A-Za-z0-9]+)*)\b")
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


def person_like(text: str, english: frozenset[str] = frozenset()) -> bool:
    """Whether one to three words are all listed given names or surnames, the first not a common word; one
    word alone only as a given name or as a surname the English dictionary does not know ("London", "Rome"
    and "Fruit" are listed surnames)."""
    first, last, common = lists()
    words = [_base(w) for w in _TOKEN.findall(text)]
    if len(words) == 1:
        return words[0] not in common and (words[0] in first or (words[0] in last and words[0] not in english))
    return 0 < len(words) <= 3 and words[0] not in common and all(w in first or w in last for w in words)


_BEFORE = {"me", "starring", "featuring", "says", "said", "told", "asked", "named", "dear", "hi", "hello", "hey",
           "thanks", "mr", "mrs", "ms", "miss", "dr", "prof", "sir", "née", "nee"}
_BEFORE_TWO = {("name", "is"), ("name", "was"), ("called", "me")}
_AFTER_TWO = {("is", "from"), ("was", "born"), ("is", "a"), ("was", "a")}
_AFTER = {"said", "says", "told", "asked", "shouted", "replied", "wrote", "spent", "lives", "lived", "works", "worked",
          "smiled", "laughed", "cried", "explained", "added", "noted", "thinks", "thought", "wants", "wanted", "loves",
          "loved", "went", "came", "called", "phoned", "emailed", "joined", "met", "married", "died", "born"}
_OWNED = {"address", "phone", "number", "email", "daughter", "son", "wife", "husband", "mother", "father", "mom", "dad",
          "brother", "sister", "friend", "account", "birthday", "car", "house", "office", "novel", "book", "song"}
_TITLE = re.compile(r"(?:\b(?:Mr|Mrs|Ms|Mx|Miss|Dr|Prof|Sir|Madam|Dame|Lady|Lord)\.?[ \t]+)$", re.IGNORECASE)
_SUFFIX = re.compile(r",?[ \t]+(?:Jr|Sr|MD|PhD|DDS|DVM|Esq|II|III|IV)\b\.?")


def english(word: str, words: frozenset[str]) -> bool:
    """Whether a word (any case, simple inflections) is in the English dictionary `words`."""
    w = _base(word)
    return w in words or any(w.endswith(x) and w[:-len(x)] in words for x in ("s", "es", "ed", "d", "ing", "ly"))


def with_title(text: str, start: int, end: int) -> tuple[int, int]:
    """A name's span with the title before it and a suffix after it ("Dr. Ann Lee", "Ann Lee MD")."""
    m = _TITLE.search(text, max(0, start - 8), start)
    n = _SUFFIX.match(text, end)
    return (m.start() if m else start), (n.end() if n else end)


def _linked(low: list[str], gap: Any, i: int, step: int) -> int | None:
    """The token coordinated with token i, after it (step 1) or before it (step -1): "A, B", "A and B", "A & B"."""
    near = i + step
    between = gap(i) if step > 0 else gap(near) if near >= 0 else ""
    if re.fullmatch(r"\s*[,&]\s*", between):
        return near
    far = near + step
    if 0 <= near < len(low) and low[near] == "and" and 0 <= far < len(low) and far >= 0:
        gaps = (gap(i), gap(near)) if step > 0 else (gap(near), gap(far))
        if all(re.fullmatch(r"\s*,?\s+", g) for g in gaps):
            return far
    return None


def name_spans(text: str, words: frozenset[str] = frozenset()) -> list[tuple[int, int, float]]:
    """(start, end, score) of each listed given name with what follows it, each unlisted proper noun in a
    person's place ("calls me Adlan", "Kacper spent", "Egede and Walker"; only with the English dictionary
    `words`), and each user handle."""
    from spacy.lang.en.stop_words import STOP_WORDS

    first, last, common = lists()
    lower = not any(c.isupper() for c in text)
    tokens = list(_TOKEN.finditer(text))
    low = [_base(t.group()) for t in tokens]
    found: dict[int, tuple[int, float]] = {}  # first token -> (last token, score)

    def gap(i: int) -> str:
        return text[tokens[i].end():tokens[i + 1].start()] if i + 1 < len(tokens) else "\n"

    def proper(i: int) -> bool:  # a capitalized word (any word in lower-case text) the dictionary does not know
        w = tokens[i].group()
        return (bool(words) and (lower or (w[0].isupper() and not w.isupper())) and low[i] not in STOP_WORDS
                and not english(w, words))

    def cued(i: int, opening: bool = True) -> bool:  # in a person's place: "calls me X", "X said", "X's son",
        after = low[i + 1] if i + 1 < len(tokens) else ""  # and (`opening`) "X:" or "X," opening a line
        return ((i > 0 and low[i - 1] in _BEFORE) or after in _AFTER or tuple(low[max(0, i - 2):i]) in _BEFORE_TWO
                or tuple(low[i + 1:i + 3]) in _AFTER_TWO
                or (tokens[i].group().lower() != low[i] and after in _OWNED)
                or (opening and (i == 0 or "\n" in gap(i - 1)) and gap(i).lstrip(" ").startswith((":", ","))))

    def follows(i: int) -> bool:
        if i + 1 >= len(tokens) or not _GAP.fullmatch(gap(i)):
            return False
        nxt, base = tokens[i + 1].group(), low[i + 1]
        if lower:
            return base in last or (bool(words) and base not in STOP_WORDS and not english(nxt, words))
        return nxt[0].isupper() and base not in common and base not in STOP_WORDS

    i = 0
    while i < len(tokens):
        word, base = tokens[i].group(), low[i]
        if base in first and (lower or word[0].isupper()):
            j = i
            while j - i < 2 and follows(j):
                j += 1
            if j > i or base not in common or cued(i, opening=False):
                found[i] = (j, 0.85 if j > i else 0.6)
                i = j + 1
                continue
        elif (not lower and word.islower() and len(word) > 2 and (base in first or base in last) and bool(words)
              and base not in STOP_WORDS and base not in common and not english(word, words)):
            found[i] = (i, 0.55)  # a listed name written in lower case among capitals: "when conor came"
        elif proper(i) and (cued(i) or (base in last and any(
                k is not None and proper(k) for k in (_linked(low, gap, i, 1), _linked(low, gap, i, -1))))):
            found[i] = (i, 0.6)  # "Kacper spent", "Perić and Rodriguez"
        i += 1
    def named(k: int) -> bool:  # may be one of a list of names
        return ((lower or tokens[k].group()[0].isupper()) and low[k] not in STOP_WORDS
                and (low[k] in first or low[k] in last or proper(k)))

    for i in range(len(tokens)):  # "Kovalev, Lee and Phillips", "quirion and robinson": a list of names
        chain = [i] if named(i) else []
        while chain and len(chain) < 6 and (k := _linked(low, gap, chain[-1], 1)) is not None \
                and k < len(tokens) and named(k):
            chain.append(k)
        if len(chain) > 1 and any(proper(k) for k in chain) \
                and sum(low[k] in first or low[k] in last for k in chain) > 1:
            for k in chain:
                if not any(a <= k <= b for a, (b, _) in found.items()):
                    found[k] = (k, 0.6)
    grew = True
    while grew:  # "Egede and Walker", "Eklund, Warren and Bailey", "bulgakov, ali and howard"
        grew = False
        for i, (j, _) in list(found.items()):
            for k in (_linked(low, gap, j, 1), _linked(low, gap, i, -1)):
                if k is not None and 0 <= k < len(tokens) and proper(k) \
                        and not any(a <= k <= b for a, (b, _) in found.items()):
                    found[k], grew = (k, 0.6), True
    out = []
    for i, (j, score) in found.items():
        end = tokens[j].end() - (2 if low[j] != tokens[j].group().lower() else 0)  # not the "'s"
        out.append((*with_title(text, tokens[i].start(), end), score))
    out.extend((m.start("value"), m.end("value"), 0.7) for m in _HANDLE.finditer(text))
    return out


class NameListRecognizer(EntityRecognizer):
    def __init__(self, words: frozenset[str] = frozenset()) -> None:
        super().__init__(supported_entities=["PERSON"], name="NameListRecognizer")
        self.words = words  # an English dictionary: without one, only listed names and handles are found

    def load(self) -> None:
        lists()

    def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[RecognizerResult]:
        if entities and "PERSON" not in entities:
            return []
        return [RecognizerResult("PERSON", s, e, score, recognition_metadata={"recognizer_name": self.name})
                for s, e, score in name_spans(text, self.words)]
