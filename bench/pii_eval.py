"""A labelled evaluation set for PII detection, generated with Faker (seeded, deterministic).

Each record is free text or a prompt/completion pair built from varied templates, with the
character spans of every direct identifier it holds: names, street addresses, phone numbers,
e-mail addresses, card numbers, IBANs, SSNs, IP addresses, driver's licences and secrets.
"""

from __future__ import annotations

import random
import string
from typing import Any

TEMPLATES = [
    "Hi, my name is {PERSON}. Please call me back on {PHONE_NUMBER}.",
    "Customer {PERSON} ({EMAIL_ADDRESS}) asked us to ship the order to {STREET_ADDRESS}.",
    "Ticket {n}: {PERSON} called from {PHONE_NUMBER} about a late parcel to {STREET_ADDRESS}.",
    "Please update my card to {CREDIT_CARD}, the old one expired. Thanks, {FIRST}",
    "Refund to IBAN {IBAN_CODE} for account holder {PERSON}.",
    "The applicant's SSN is {US_SSN} and the phone on file is {PHONE_NUMBER}.",
    "Login from {IP_ADDRESS} flagged for user {EMAIL_ADDRESS}.",
    "Driver's license {US_DRIVER_LICENSE} was scanned at the desk for {PERSON}.",
    "Dear {FIRST},\nyour new address {STREET_ADDRESS} is saved.\nRegards,\n{AGENT}",
    "{PERSON}: I moved last week, the new place is {STREET_ADDRESS}.\nAgent: Noted, thank you!",
    "config: api_key = {SECRET}",
    "Here is the deploy key, do not share it: {SECRET}",
    "Mr. {LAST} asked whether {EMAIL_ADDRESS} or {PHONE_NUMBER} is the better contact.",
    "We met {PERSON} at the conference; follow up at {EMAIL_ADDRESS}.",
    "Send the contract to {PERSON}, {STREET_ADDRESS}, and copy {EMAIL_ADDRESS}.",
]
PAIRS = [
    ("What is the phone number of {PERSON}?", "It is {PHONE_NUMBER}."),
    ("Where does {PERSON} live?", "{PERSON} lives at {STREET_ADDRESS}."),
    ("Which card did {FIRST} use?", "The card ending in {CREDIT_CARD}."),
    ("Who logged in from {IP_ADDRESS}?", "That was {PERSON} ({EMAIL_ADDRESS})."),
]
NEGATIVES = [
    "The weather in the valley was mild for the whole week.",
    "Version 2.4.1 fixes the crash reported in issue 3312.",
    "Mix flour, water and yeast, then bake for 40 minutes at 220 degrees.",
    "The meeting moved to 15:30 on 2024-05-07 in room 4B.",
    "Order 88172 shipped in 3 boxes weighing 12.5 kg in total.",
]


def _secret(rng: random.Random) -> str:
    alnum = string.ascii_letters + string.digits
    return rng.choice([
        "AKIA" + "".join(rng.choice(string.ascii_uppercase + string.digits) for _ in range(16)),
        "ghp_" + "".join(rng.choice(alnum) for _ in range(36)),
        "sk-" + "".join(rng.choice(alnum) for _ in range(40)),
    ])


def _values(fake: Any, rng: random.Random) -> dict[str, str]:
    first, last = fake.first_name(), fake.last_name()
    return {
        "PERSON": f"{first} {last}", "FIRST": first, "LAST": last, "AGENT": fake.first_name(),
        "PHONE_NUMBER": fake.phone_number(), "EMAIL_ADDRESS": fake.email(),
        "STREET_ADDRESS": fake.address().replace("\n", ", "), "CREDIT_CARD": fake.credit_card_number(),
        "IBAN_CODE": fake.iban(), "US_SSN": f"{rng.randint(100, 665)}-{rng.randint(10, 99)}-{rng.randint(1000, 9999)}",
        "IP_ADDRESS": fake.ipv4_public(), "US_DRIVER_LICENSE": rng.choice(string.ascii_uppercase)
        + str(rng.randint(1000000, 9999999)), "SECRET": _secret(rng), "n": str(rng.randint(1000, 99999)),
    }


def _fill(template: str, values: dict[str, str]) -> tuple[str, list[tuple[str, int, int]]]:
    out, spans, i = "", [], 0
    while i < len(template):
        if template[i] == "{":
            j = template.index("}", i)
            key = template[i + 1:j]
            value = values[key]
            label = {"FIRST": "PERSON", "LAST": "PERSON", "AGENT": "PERSON"}.get(key, key)
            if label != "n":
                spans.append((label, len(out), len(out) + len(value)))
            out += value
            i = j + 1
        else:
            out += template[i]
            i += 1
    return out, spans


def build(n: int = 600, seed: int = 7) -> list[dict[str, Any]]:
    """Records with gold spans: {"id", "text" | "prompt"+"completion", "spans": {field: [[type, start, end]]}}."""
    from faker import Faker

    Faker.seed(seed)
    fake = Faker(["en_US", "en_GB"])
    rng = random.Random(seed)
    records = []
    for i in range(n):
        values = _values(fake, rng)
        kind = rng.random()
        if kind < 0.1:
            records.append({"id": f"e{i}", "text": rng.choice(NEGATIVES), "spans": {"text": []}})
        elif kind < 0.3:
            p, c = rng.choice(PAIRS)
            (pt, ps), (ct, cs) = _fill(p, values), _fill(c, values)
            records.append({"id": f"e{i}", "prompt": pt, "completion": ct, "spans": {"prompt": ps, "completion": cs}})
        else:
            text, spans = _fill(rng.choice(TEMPLATES), values)
            records.append({"id": f"e{i}", "text": text, "spans": {"text": spans}})
    return records
