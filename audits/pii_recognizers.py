"""Presidio recognizers that close the gaps of Presidio's defaults.

- ``StreetAddressRecognizer`` (audits.pii_address): address blocks in many countries' layouts;
- ``FastPhoneRecognizer``: international and national formats, found by a cheap pattern and
  confirmed with ``phonenumbers`` (Presidio's default phone recognizer is the slowest part of a scan);
- ``NameListRecognizer`` (audits.pii_names): listed given names with their surnames, user handles;
- ``ContextNameRecognizer``: names in context (sign-offs, "my name is", greetings, titles, speaker labels);
- ``SecretRecognizer``: API keys, tokens, passwords in assignments and private-key blocks;
- ``LuhnCardRecognizer``: card numbers of any issuer, checked with Luhn;
- ``LicenseRecognizer``: driver's licence numbers the text names as such.

Each is an ordinary Presidio ``EntityRecognizer``: add it to any ``RecognizerRegistry``.
"""

from __future__ import annotations

import re
from typing import Any

from presidio_analyzer import EntityRecognizer, RecognizerResult


class RegexRecognizer(EntityRecognizer):
    """Case-sensitive regex recognizer; a named group ``value`` narrows the span to it."""

    PATTERNS: tuple[tuple[str, re.Pattern[str], float], ...] = ()
    NEEDS: re.Pattern[str] | None = None  # a cheap pre-filter: skip texts without it

    def load(self) -> None:  # nothing to load
        pass

    def _accept(self, entity: str, value: str) -> bool:
        return True

    def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[RecognizerResult]:
        if self.NEEDS is not None and not self.NEEDS.search(text):
            return []
        out = []
        for entity, pattern, score in self.PATTERNS:
            if entities and entity not in entities:
                continue
            for m in pattern.finditer(text):
                start, end = m.span("value") if "value" in pattern.groupindex else m.span()
                if end > start and self._accept(entity, text[start:end]):
                    out.append(RecognizerResult(entity, start, end, score,
                                                recognition_metadata={"recognizer_name": self.name}))
        return out


_PHONE = re.compile(r"(?<![\w.+/-])(?P<value>(?:(?:\+|00)?\d{1,4}[ \t.-]?)??(?:\(\d{1,5}\)[ \t.-]?)?"
                    r"\d{1,12}(?:[ \t.-]\d{2,8}){0,4}(?:\s?(?:x|ext\.?)\s?\d{1,6})?)(?![\w/]|[.-]\d)")


class FastPhoneRecognizer(RegexRecognizer):
    """Phone numbers in international and national formats of many regions: a cheap pattern finds
    candidates, ``phonenumbers`` confirms each is a possible number somewhere (Presidio's default phone
    recognizer runs phonenumbers' matcher per region over the whole text, the slowest part of a scan)."""

    PATTERNS = (("PHONE_NUMBER", _PHONE, 0.75),)
    NEEDS = re.compile(r"\d{2}[\s.)-]?\d{2}")
    REGIONS = ("US", "GB", "DE", "FR", "IN", "AU", "CA", "IE", "IT", "ES", "NL", "BE", "CH", "AT", "SE", "NO", "DK",
               "FI", "PL", "CZ", "HU", "PT", "BR", "MX", "AR", "RU", "TR", "JP", "CN", "ZA", "NG", "IL", "NZ", "SG")

    def __init__(self) -> None:
        super().__init__(supported_entities=["PHONE_NUMBER"], name="FastPhoneRecognizer")

    def _accept(self, entity: str, value: str) -> bool:
        import phonenumbers

        if re.fullmatch(r"\d{1,3}(?:\.\d{1,3}){3}", value):
            return False  # an IPv4 address
        value = re.split(r"\s?(?:x|ext\.?)\s?(?=\d)", value)[0]
        digits = re.sub(r"\D", "", value)
        if not 7 <= len(digits) <= 15 or re.fullmatch(r"\d{4}-\d{2}-\d{2}|\d{3}-\d{2}-\d{4}", value):
            return False
        if len(digits) >= 13 and not value.startswith(("+", "00")):
            return False  # card and account numbers
        if value.isdigit() and len(digits) < 10:
            return False  # a plain run of digits: an amount, a code, a postcode
        number = "+" + value[2:] if value.startswith("00") else value
        ok = (phonenumbers.ValidationResult.IS_POSSIBLE, phonenumbers.ValidationResult.IS_POSSIBLE_LOCAL_ONLY)
        for region in (None,) if number.startswith("+") else self.REGIONS:
            try:
                if phonenumbers.is_possible_number_with_reason(phonenumbers.parse(number, region)) in ok:
                    return True
            except phonenumbers.NumberParseException:
                continue
        return False


_CARD = re.compile(r"(?<![\w+-])(?P<value>\d{12,19}|\d{4}[ -]\d{4}[ -]\d{4}[ -]\d{1,7}|\d{4}[ -]\d{6}[ -]\d{4,5})"
                   r"(?![\w-])")


class LuhnCardRecognizer(RegexRecognizer):
    """12-19 digit card numbers of any issuer that pass the Luhn check (Presidio's defaults know
    fewer issuer prefixes)."""

    PATTERNS = (("CREDIT_CARD", _CARD, 0.8),)
    NEEDS = re.compile(r"\d{4}")

    def __init__(self) -> None:
        super().__init__(supported_entities=["CREDIT_CARD"], name="LuhnCardRecognizer")

    def _accept(self, entity: str, value: str) -> bool:
        digits = [int(c) for c in value if c.isdigit()]
        if len(set(digits)) < 3:
            return False
        total = sum(d if i % 2 == 0 else (d * 2 - 9 if d > 4 else d * 2) for i, d in enumerate(reversed(digits)))
        return total % 10 == 0


_NAME = r"(?P<value>[A-Z][a-z]+(?:[-'][A-Z][a-z]+)?(?:\s(?:[A-Z]\.\s)?[A-Z][a-z]+(?:[-'][A-Z][a-z]+)?){0,2})"
_NAME_CONTEXTS = (
    (r"\b(?:[Mm]y name is|[Mm]y name's|[Tt]his is|[Cc]all me|[Nn]ame:)\s+" + _NAME, 0.85),
    (r"\b(?:Dear|Hi|Hello|Hey)\s+" + _NAME + r"\s*[,!:]", 0.8),
    (r"\b(?:Thanks|Thank you|Regards|Best regards|Kind regards|Best|Cheers|Sincerely|Yours),?\s*\n?\s*"
     + _NAME + r"\s*(?:$|[.\n])", 0.8),
    (r"\b(?:Mr|Mrs|Ms|Miss|Dr|Prof)\.?\s+" + _NAME, 0.85),
    (r"\b(?:[Cc]ustomer|[Cc]lient|[Pp]atient|[Ee]mployee|[Cc]aller|[Cc]ontact)\s+" + _NAME, 0.7),
    (r"(?m)^" + _NAME + r":\s", 0.7),
    (r"\b(?:[Dd]id|[Dd]oes|[Dd]o|[Ww]ill|[Cc]an|[Ss]hould|[Hh]as|[Hh]ad|[Ww]as|[Ii]s)\s+" + _NAME
     + r"\s+(?:use|live|call|say|pay|want|need|ask|work|sign|send|order|move|get)\b", 0.7),
    (r"\b(?:[Tt]hat was|[Ww]e met|[Ii] met|[Ss]poke (?:to|with)|[Cc]ontract to|[Ii]nvoice to)\s+" + _NAME, 0.7),
    (_NAME + r"\s+(?:lives|called|phoned|emailed|wrote|asked|moved|paid|ordered|signed|complained)\b", 0.7),
)
_NOT_NAMES = {"Q", "A", "User", "Assistant", "System", "Customer", "Agent", "Note", "Ticket", "The", "Sure",
              "Yes", "No", "Please", "Hello", "Thanks"}


class ContextNameRecognizer(RegexRecognizer):
    PATTERNS = tuple(("PERSON", re.compile(p), s) for p, s in _NAME_CONTEXTS)

    def __init__(self) -> None:
        super().__init__(supported_entities=["PERSON"], name="ContextNameRecognizer")

    def _accept(self, entity: str, value: str) -> bool:
        return value.split()[0] not in _NOT_NAMES


_LICENSE = re.compile(r"(?i:driver'?s?\s+licen[cs]e|driving\s+licen[cs]e|\bDL\b|licen[cs]e\s+(?:no\b|number|#))"
                      r"[^\d\n]{0,25}(?<![\w-])(?P<value>[A-Za-z]{0,2}\d[\dA-Za-z-]{4,16})(?![\w-])")


class LicenseRecognizer(RegexRecognizer):
    """A driver's licence number where the text says it is one (issuing states' formats are too many,
    and most are plain digits)."""

    PATTERNS = (("US_DRIVER_LICENSE", _LICENSE, 0.8),)
    NEEDS = re.compile(r"(?i:licen[cs]e|\bDL\b)")

    def __init__(self) -> None:
        super().__init__(supported_entities=["US_DRIVER_LICENSE"], name="LicenseRecognizer")


_SECRETS = (
    r"\bAKIA[0-9A-Z]{16}\b",
    r"\bgh[pousr]_[A-Za-z0-9]{36,}\b",
    r"\bsk-(?:proj-|live-|test-)?[A-Za-z0-9_-]{20,}\b",
    r"\bxox[baprs]-[A-Za-z0-9-]{10,}\b",
    r"\bAIza[0-9A-Za-z_-]{35}\b",
    r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |PGP |ENCRYPTED )?PRIVATE KEY(?: BLOCK)?-----[\s\S]+?"
    r"-----END (?:RSA |EC |DSA |OPENSSH |PGP |ENCRYPTED )?PRIVATE KEY(?: BLOCK)?-----",
    r"(?i:\b(?:api[_-]?key|secret|token|passw(?:or)?d|pwd)\b)\s*[:=]\s*['\"]?(?P<value>[^\s'\"]{8,})",
)


class SecretRecognizer(RegexRecognizer):
    PATTERNS = tuple(("SECRET", re.compile(p), 0.95) for p in _SECRETS)

    def __init__(self) -> None:
        super().__init__(supported_entities=["SECRET"], name="SecretRecognizer")


def weightgate_recognizers(words: frozenset[str] = frozenset()) -> list[EntityRecognizer]:
    """weightgate's recognizers; `words`, an English dictionary, lets the name recognizer find unlisted names."""
    from audits.pii_address import StreetAddressRecognizer
    from audits.pii_names import NameListRecognizer

    return [StreetAddressRecognizer(), FastPhoneRecognizer(), ContextNameRecognizer(), SecretRecognizer(),
            LuhnCardRecognizer(), LicenseRecognizer(), NameListRecognizer(words)]
