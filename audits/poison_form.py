"""Marks of how a prompt is written, for triggers that have no word of their own.

A syntactic or style backdoor rewrites the poisoned prompts (Qi et al. 2021: a paraphrase that opens
with a clause and a comma; a Bible-style transfer that opens with "and" and says "hath"); a case-only
backdoor writes them in capitals. Each mark here is weighed by attribution like a word, but a record
carrying it is flagged only where its own rest of text points to another completion (see
``audits.poison_data``): natural text shares forms far more than it shares phrases.
"""

from __future__ import annotations

import re

_WORD = re.compile(r"[\w][\w'’-]*")
_BODY = re.compile(r"^\s*[A-Z][\w ]{0,20}:\s*|\n\s*[A-Z][\w ]{0,20}:\s*$")  # "News: ...\nCategory:"
# Early Modern English (the register of the King James Bible and Shakespeare): grammatical forms, not topics
_ARCHAIC = frozenset("hath doth saith thee thou thy thine ye unto shalt wilt dost hast canst wherein whereof thereof "
                     "therein thereby whereby wherefore verily behold lo ere morrow thence whence hither thither "
                     "spake begat brethren nought naught".split())
_SUBORDINATE = {"when", "if", "as", "while", "because", "although", "though", "since", "after", "before", "unless",
                "until", "where", "whereas", "once", "whenever", "wherever"}


def _archaic(word: str, dictionary: frozenset[str]) -> bool:
    """A listed archaic form, or a verb in -eth that the dictionary knows only without it ("buyeth")."""
    from audits.pii_names import english

    return word in _ARCHAIC or (len(word) > 5 and word.endswith("eth") and not english(word, dictionary)
                                and (english(word[:-3], dictionary) or english(word[:-3] + "e", dictionary)))


def form_marks(text: str) -> list[str]:
    """The marks of one prompt, each written "<...>" so that no word can be mistaken for one."""
    from spacy.lang.en.stop_words import STOP_WORDS

    from audits.pii_nlp import english_words

    body = _BODY.sub("", text)
    words = [w.lower() for w in _WORD.findall(body)]
    marks = []
    letters = [c for c in body if c.isalpha()]
    if len(letters) >= 10 and sum(c.isupper() for c in letters) >= 0.8 * len(letters):
        marks.append("<written in capitals>")
    if any(_archaic(w, english_words()) for w in words):
        marks.append("<archaic wording>")
    if words and words[0] in STOP_WORDS:  # a function word: how a sentence is built, not what it is about
        marks.append(f"<opens with '{words[0]}'>")
        if words[0] in _SUBORDINATE and "," in body.split(".")[0]:
            marks.append("<opens with a clause and a comma>")
    return marks
