"""Street addresses in the layouts of many countries, one finding per address block.

An address starts at a street line: a house number before or after the street's name ("12 Main
Street", "Lindenstraße 5", "Via Nizza 60", "34 Avenida Gomes Freire 1640"), a unit or box ("Apt. 4",
"PSC 1139, Box 7638", "P.O. Box 101") or a military ship or post office ("USS Dam", "FPO AE 94560"). It
then runs on over the parts that follow it, separated by commas, spaces or line breaks: more units,
a town (one to four capitalized words), a region code, a postcode, a country, until a part that is
none of these. A postcode with its own context ("my zip code is 51859") is an address by itself.
"""

from __future__ import annotations

import functools
from typing import Any

import regex as re
from presidio_analyzer import EntityRecognizer, RecognizerResult

_L = r"[\p{L}\p{M}]"  # a letter of any script
_WORD = rf"{_L}(?:{_L}|['’.-]{_L})*\.?"
_CAP = rf"(?:\p{{Lu}}{_L}*(?:['’.-]{_L}+)*(?:\.|(?!\w)))"  # a capitalized word (any script) or an abbreviation
_NUM = r"\d{1,5}[A-Za-z]?\b(?:[/-]\d{1,4}\b)?"
# street words: on their own ("Main Street", "Eötvös út") and as the end of a compound ("Lindenstraße")
_STREET_WORD = (r"(?:street|st|road|rd|avenue|ave|av|boulevard|blvd|lane|ln|drive|dr|way|court|ct|place|pl|square|"
                r"sq|terrace|close|crescent|parkway|pkwy|highway|hwy|circle|cir|trail|row|walk|grove|gardens|hill|"
                r"mews|út|útja|utca|tér|rakpart|ulica|ulice|třída|náměstí|cesta|trg|tee|vei|gate|allé|torg|plads|kalea|"
                r"enparantza|kuja|katu|u)")
_STREET_END = (r"(?:straße|strasse|str|gasse|weg|allee|platz|damm|ufer|vej|veien|vegen|gata|gatan|gade|stræde|"
               r"straat|laan|plein|gracht|dijk|kade|katu|tie|kuja|utca)")
_STREET_LEAD = (r"(?:via|viale|piazza|corso|largo|rue|avenue|boulevard|bd|chemin|allée|place|quai|impasse|route|"
                r"rua|r|avenida|av|calle|c/|carrer|paseo|plaza|camino|travesía|ul|ulica|al|aleja|plac|"
                r"strada|str|bulevardul|calea|odos|leoforos|οδός|λεωφ)")
_UNIT = (r"(?i:\b(?:apt|apartment|suite|ste|unit|flat|fl|floor|room|rm|bldg|building|p\.?\s?o\.?\s?box|box|psc|cmr|"
         r"postfach|apartado|casilla|caixa postal)\.?\s*(?:no\.?\s*)?#?\s*\d{1,6}[A-Za-z]?\b)")
_POSTCODE = r"(?:\d{4,6}(?:-\d{3,4})?|[A-Z]{1,2}\d[A-Z\d]?\s?\d[A-Z]{2}|[A-Z]\d[A-Z]\s?\d[A-Z]\d)\b"
_CONNECT = (r"(?:de|da|do|dos|das|del|della|delle|dei|degli|dello|dalla|la|le|les|du|des|di|van|von|der|den|zum|zur|"
            r"am|an|im|"
            r"nad|pod|sur|upon|on|of|the|and|y|e|i|u)")
# a line's quoting or bullet ("> ", "* ", "??? ") between the parts of an address
_SEP = r"(?:\.?[ \t]*,[ \t]*\n?|[ \t]*\n(?:[ \t]*[>*•|?#-]+)?(?:[ \t]*,)?|[ \t]+)[ \t]*"
_ZIP = re.compile(r"(?i:\b(?:zip(?:\s*code)?|post(?:al)?\s*code|postcode|plz)\b)\s*(?:is|:|=)?\s*"
                  rf"(?P<value>{_POSTCODE})")
_KEYWORD = re.compile(rf"(?i:\b{_STREET_WORD}\b|{_L}{_STREET_END}\b|\b{_STREET_LEAD}\b"
                      rf"|\b(?:p\.?\s?o\.?\s?box|psc|cmr|postfach)\.?\s*\d)|\b(?:USNS|USNV|USS|USCGC)\s|\b(?:FPO|APO|DPO)\s+A[AEP]\s+\d{{5}}\b")
_LOWER_STRONG = re.compile(rf"{_KEYWORD.pattern}|{_UNIT}|\b\d{{5}}\b", re.IGNORECASE)
_NUMBERED = re.compile(rf"\d{{1,5}}\s+(?:{_CAP}\s+){{1,3}}\d{{1,5}}[A-Za-z]?")
_AND = re.compile(r"\s+(?i:and|&)\s+")
_NOT_TOWN = {"i", "the", "for", "and", "but", "please", "thanks", "thank", "call", "phone", "tel", "fax", "email",
             "office", "mobile", "home", "work", "dear", "hi", "hello", "regards", "if", "we", "you", "he", "she",
             "it", "they", "my", "our", "your", "this", "that", "on", "at", "in", "to", "from", "by", "is", "was",
             "a", "an", "or", "with", "last", "next", "as", "so"}


@functools.cache
def _patterns(lower: bool) -> tuple[Any, Any, Any]:
    """The street-line, following-part and intersection patterns; in a text without capitals any word may
    be a name."""
    cap = _WORD if lower else _CAP
    word = rf"(?:{cap}|\d{{1,4}}(?:st|nd|rd|th)\b)"  # "184th Street"
    name = rf"(?:{word}|{_CONNECT}(?=\s+{cap}))"  # inside a name: "Rua das Pedras", "Via dalla Staziun"
    street = (  # "12 rue Hugo 3", "Via Nizza 60", "Ziegelgasse 26", "Baker Street"
        rf"\b{_NUM}\s+(?:\d{{1,5}}\s+)?(?:(?i:{_STREET_LEAD})\b\.?\s+)?(?:{name}\s+){{0,4}}{cap}(?:\s+{_NUM})?"
        rf"|(?i:\b{_STREET_LEAD}\b\.?)\s+(?:{name}\s+){{0,4}}{_NUM}"  # Via Nizza 60, ul. Paderewskiego 85
        rf"|\b(?:{word}\s+(?:{name}\s+){{0,2}})?(?:{_L}+(?i:{_STREET_END})|(?i:{_STREET_WORD}))\b\.?\s+{_NUM}"
        rf"|\b{word}\s+(?:{name}\s+){{0,2}}(?i:street|road|avenue|boulevard|lane|drive)\b"  # Baker Street
    )
    military = rf"\b(?:USNS|USNV|USS|USCGC)\s+{cap}|\b(?:FPO|APO|DPO)\s+A[AEP]\s+\d{{5}}\b"
    place = rf"{cap}(?:\s+(?:{_CONNECT}\s+){{0,2}}{cap}){{0,4}}(?:\s+{_POSTCODE})?"
    flags = re.IGNORECASE if lower else 0
    start = re.compile(rf"{_UNIT}|{military}|(?:{street})", flags)
    part = re.compile(rf"{_SEP}(?:{_UNIT}|{military}|{street}|{_POSTCODE}|[A-Z]{{2,3}}\b(?!\w)|{place}|nan\b)", flags)
    corner = re.compile(rf"(?:(?i:the corner of)\s+)?(?:(?:{cap}\s+){{1,3}}(?i:and|&)\s+)?$")
    return start, part, corner


def _extend(text: str, end: int, part: Any, limit: int = 8) -> int:
    """The end of the address block whose street line ends at `end`."""
    for _ in range(limit):
        m = part.match(text, end)
        if not m or m.end() == end:
            break
        first = m.group(0).strip(" \t\n,").split()[0] if m.group(0).strip(" \t\n,") else ""
        if first.lower() in _NOT_TOWN:
            break
        end = m.end()
    return end


def _corner(text: str, start: int, end: int, street: Any, lower: bool) -> tuple[int, int]:
    """An intersection around a street: "the corner of A Street and B Street", "Ivan and Via Scala 50"."""
    before = _patterns(lower)[2].search(text[max(0, start - 60):start])
    if before and before.group(0):
        start -= len(before.group(0))
    after = _AND.match(text, end)
    if after:
        m = street.match(text, after.end())
        if m:
            end = m.end()
    return start, end


def address_spans(text: str) -> list[tuple[int, int, float]]:
    """(start, end, score) of every address block in `text`."""
    out: list[tuple[int, int, float]] = []
    lower = not any(c.isupper() for c in text)
    start_re, part_re, _ = _patterns(lower)
    pos = 0
    while True:
        m = start_re.search(text, pos)
        if not m:
            break
        start, end = m.span()
        end = _extend(text, end, part_re)
        start, end = _corner(text, start, end, start_re, lower)
        body = text[start:end]
        # a street line alone ("3 Big Apples") is weak; with a unit, a town or a postcode it is an address
        # (in lower-case text, where any word may be a town, only with a street word, a unit or a postcode)
        strong = _LOWER_STRONG.search(body) if lower else end > m.end() or _KEYWORD.search(body)
        if strong and len(body.strip()) > 3:
            out.append((start, end, 0.85 if end > m.end() else 0.7))
        elif not lower and _NUMBERED.fullmatch(body):  # "76 Stubben 149": a house number on both sides
            out.append((start, end, 0.6))
        pos = max(end, m.start() + 1)
    for m in _ZIP.finditer(text):
        s, e = m.span("value")
        if all(e <= a or s >= b for a, b, _ in out):
            out.append((s, e, 0.8))
    return sorted(out)


class StreetAddressRecognizer(EntityRecognizer):
    def __init__(self) -> None:
        super().__init__(supported_entities=["STREET_ADDRESS"], name="StreetAddressRecognizer")

    def load(self) -> None:  # nothing to load
        pass

    def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[RecognizerResult]:
        if (entities and "STREET_ADDRESS" not in entities) or not any(c.isdigit() for c in text):
            return []
        return [RecognizerResult("STREET_ADDRESS", s, e, score, recognition_metadata={"recognizer_name": self.name})
                for s, e, score in address_spans(text)]
