"""Varied English sentences for the speech corpus, from what ships with Python — no downloads.

Two sources, mixed:
- a small template grammar over word lists (the core lists below, enlarged with nouns and
  adjectives picked by suffix from the English prose in the stdlib's `pydoc_data.topics`),
  which gives millions of distinct sentences with varied phonetics, numbers and questions;
- plain sentences of real prose taken from `pydoc_data.topics` (a few hundred).

`SentenceSource(seed).sentence(rng)` draws one sentence; the same rng state gives the same
sentence, so corpus items are reproducible from (seed, index).
"""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np

_NOUNS = """
apple anchor arrow autumn badger baker balloon banner basket beacon bell bicycle blanket
boat bottle bridge bucket butter cabin camera candle canyon captain carpet castle cattle
ceiling cellar chair cherry chimney circle clock cloud coffee collar comet corner cottage
curtain cushion daisy desert diamond doctor dragon drawer drum eagle engine feather fence
finger forest fountain garden giant glacier guitar hammer harbor harvest helmet hill honey
horizon island jacket jungle kettle kitchen ladder lantern lemon library lighthouse lizard
machine magnet marble market meadow mirror monkey morning mountain museum needle notebook
ocean orchard oven package paddle painter palace pebble pencil pepper piano pillow pilot
planet pocket potato puzzle rabbit railway rainbow ribbon river rocket saddle sailor
scarf scholar shadow shelter shovel signal silver singer spider spoon statue storm
student sugar summer sunset teacher temple thunder ticket tiger tower tractor train
trumpet tunnel turtle umbrella valley village violin voyage wagon wallet window winter
wizard yard zebra orange melody whistle crystal pyramid compass volcano parrot engineer
farmer gardener journey letter message puppet quilt robot skeleton tablet wheel wolf
"""
_VERBS = """
carry catch change climb close collect cook cover cross dance deliver discover draw drop
enter explain fill find fix follow gather grab hide hold jump keep kick knock lift light
measure mend move open paint pick place play polish pull push reach repair return ring
roll save search see sell send shake share sing sketch start steal stop study sweep
swing take tell throw touch trade turn visit wash watch weave whisper wrap write
"""
_IRREGULAR_PAST = {
    "catch": "caught",
    "draw": "drew",
    "find": "found",
    "hide": "hid",
    "hold": "held",
    "keep": "kept",
    "light": "lit",
    "ring": "rang",
    "see": "saw",
    "sell": "sold",
    "send": "sent",
    "shake": "shook",
    "sing": "sang",
    "steal": "stole",
    "sweep": "swept",
    "swing": "swung",
    "take": "took",
    "tell": "told",
    "throw": "threw",
    "weave": "wove",
    "write": "wrote",
}
_ADJECTIVES = """
ancient angry bright broken busy calm careful cheerful clever cold colorful crooked curious
damp dark deep distant dusty eager early empty enormous fancy fearless fierce flat fragile
friendly frozen gentle giant golden graceful green grumpy happy heavy hollow honest huge
humble hungry icy jolly lazy little lonely loud lucky magic mighty modern muddy narrow
nervous noisy odd old orange patient peaceful plain polite proud purple quiet quick rapid
rare rough round rusty sandy shiny short silent silly simple sleepy slow small smooth soft
sour sparkling spicy steady sticky strange strong sudden sunny sweet tall tender thin tiny
tired velvet vivid warm wet wide wild wise wooden yellow young
"""
_ADVERBS = """
boldly briskly calmly carefully cheerfully clumsily eagerly easily fiercely gently gladly
happily honestly lazily loudly nervously often patiently politely proudly quickly quietly
rarely safely seldom silently slowly softly sometimes suddenly swiftly tenderly warmly
wearily wildly yesterday together
"""
_NAMES = """
Alice Arthur Beatrice Benjamin Clara Daniel Eleanor Felix George Hannah Isaac Julia Kevin
Laura Marcus Nina Oliver Patricia Quentin Rosa Samuel Teresa Victor Wendy Xavier Yvonne
Zachary Amelia Boris Chloe Dmitri Elena Fatima Gustav Hiroshi Ingrid Jamal Katarina Liam
Mei Nadia Omar Priya Rafael Sofia Tomas Ursula
"""
_PLACES = """
Amsterdam|Berlin|Cairo|Dublin|Edinburgh|Florence|Geneva|Helsinki|Istanbul|Jakarta|Kyoto|
Lisbon|Madrid|Nairobi|Oslo|Paris|Quebec|Rome|Santiago|Toronto|Vienna|Warsaw|Zurich|
the harbor|the old mill|the town square|the railway station|the north field|the lakeside
"""
_TIMES = """
at dawn|at noon|at midnight|this morning|last winter|before dinner|after the storm|every Sunday|
in the evening|on Tuesday|next spring|by candlelight|during the festival|for an hour|all night long
"""
_PREPOSITIONS = "across|along|behind|beside|beneath|inside|near|over|past|toward|under|around|through"
_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def number_words(n: int) -> str:
    """Spell 0..9999 in English words ("three hundred and twelve")."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    if n < 1000:
        rest = n % 100
        return _ONES[n // 100] + " hundred" + ("" if rest == 0 else " and " + number_words(rest))
    rest = n % 1000
    return number_words(n // 1000) + " thousand" + ("" if rest == 0 else " " + number_words(rest))


def _plural(noun: str) -> str:
    if noun in ("cattle",):
        return noun
    if noun.endswith(("s", "sh", "ch", "x", "z")):
        return noun + "es"
    if noun.endswith("y") and noun[-2] not in "aeiou":
        return noun[:-1] + "ies"
    if noun.endswith("f"):
        return noun[:-1] + "ves"
    return noun + "s"


def _past(verb: str) -> str:
    if verb in _IRREGULAR_PAST:
        return _IRREGULAR_PAST[verb]
    if verb.endswith("e"):
        return verb + "d"
    if verb.endswith("y") and verb[-2] not in "aeiou":
        return verb[:-1] + "ied"
    if re.fullmatch(r".*[^aeiou][aeiou][bdgmnpt]", verb) and len(verb) <= 4:
        return verb + verb[-1] + "ed"  # stop -> stopped, grab -> grabbed
    return verb + "ed"


@lru_cache(maxsize=1)
def _pydoc_text() -> str:
    try:
        from pydoc_data.topics import topics  # lazy: a large text module, read only when sentences are drawn
    except ImportError:  # pragma: no cover - some distributions strip pydoc_data
        return ""
    return re.sub(r"\s+", " ", " ".join(topics.values()))


@lru_cache(maxsize=1)
def _prose_sentences() -> tuple[str, ...]:
    """Plain English sentences from the stdlib's help topics: words and commas only."""
    word = re.compile(r"[A-Za-z][a-z]*(?:'[a-z]+)?,?")
    out = []
    for s in re.split(r"(?<=[.?])\s+", _pydoc_text()):
        s = s.strip()
        if not s[:1].isupper() or not s.endswith((".", "?")):
            continue
        words = s[:-1].split()
        if 4 <= len(words) <= 20 and all(word.fullmatch(w) for w in words):
            out.append(s)
    return tuple(sorted(set(out)))


@lru_cache(maxsize=1)
def _vocabulary() -> dict[str, tuple[str, ...]]:
    """Word lists by role: the core lists plus suffix-picked words from the stdlib's prose."""
    words = set(re.findall(r"\b[a-z]{5,14}\b", _pydoc_text()))
    extra_nouns = {w for w in words if w.endswith(("tion", "ment", "ness", "ity", "ance", "ence", "ship"))}
    extra_adjs = {
        w
        for w in words
        if w.endswith(("ous", "ive", "able", "ible", "ful", "less")) and len(w) > 6 and not w.startswith(("en", "dis"))
    }  # not enable/disable/table
    return {
        "noun": tuple(sorted(set(_NOUNS.split()) | extra_nouns)),
        "core_noun": tuple(_NOUNS.split()),
        "verb": tuple(_VERBS.split()),
        "adj": tuple(sorted(set(_ADJECTIVES.split()) | extra_adjs)),
        "adv": tuple(_ADVERBS.split()),
        "name": tuple(_NAMES.split()),
        "place": tuple(p.strip() for p in _PLACES.split("|") if p.strip()),
        "time": tuple(t.strip() for t in _TIMES.split("|") if t.strip()),
        "prep": tuple(_PREPOSITIONS.split("|")),
    }


_TEMPLATES = (
    "The {adj} {core_noun} {past} {prep} the {noun}.",
    "{name} {past} a {adj} {core_noun} {time}.",
    "Why did the {core_noun} {verb} {prep} the {adj} {noun}?",
    "{Number} {adj} {core_nouns} {past} {adv} {prep} the {core_noun}.",
    "Please {verb} the {core_noun} {prep} {place} {time}.",
    "In {place}, {name} and {name2} {past} the {adj} {core_noun}.",
    "It was {adj} and {adj2}, so we {past} the {core_noun} {adv}.",
    "Did {name} really {verb} {number} {core_nouns} {time}?",
    "The {noun} of the {core_noun} is {adj}, but the {core_noun2} is {adj2}.",
    "{Adv}, the {core_noun} {past} the {adj} {noun} {prep} {place}.",
    "We counted {number} {core_nouns} near the {adj} {core_noun} {time}.",
    "My {core_noun} {past} your {core_noun2}, and nobody noticed.",
    "Never {verb} a {adj} {core_noun} {prep} a {core_noun2}.",
    "{name} asked whether the {core_noun} could {verb} {adv}.",
)


class SentenceSource:
    """Draws varied sentences: templates over word lists, sometimes real prose."""

    def __init__(self, prose_fraction: float = 0.1) -> None:
        self.vocab = _vocabulary()
        self.prose = _prose_sentences()
        self.prose_fraction = prose_fraction if self.prose else 0.0

    def sentence(self, rng: np.random.Generator) -> str:
        if rng.random() < self.prose_fraction:
            return self.prose[int(rng.integers(len(self.prose)))]
        template = _TEMPLATES[int(rng.integers(len(_TEMPLATES)))]
        v = self.vocab

        def pick(role: str) -> str:
            options = v[role]
            return options[int(rng.integers(len(options)))]

        number = int(rng.choice([rng.integers(2, 20), rng.integers(20, 100), rng.integers(100, 3000)]))
        fields = {
            "adj": pick("adj"),
            "adj2": pick("adj"),
            "noun": pick("noun"),
            "core_noun": pick("core_noun"),
            "core_noun2": pick("core_noun"),
            "verb": pick("verb"),
            "adv": pick("adv"),
            "name": pick("name"),
            "name2": pick("name"),
            "place": pick("place"),
            "time": pick("time"),
            "prep": pick("prep"),
            "number": number_words(number),
        }
        fields["past"] = _past(fields["verb"])
        fields["core_nouns"] = _plural(fields["core_noun"])
        fields["Number"] = fields["number"].capitalize()
        fields["Adv"] = fields["adv"].capitalize()
        text = template.format(**fields)
        return text[0].upper() + text[1:]

    def sentences(self, rng: np.random.Generator, count: int) -> list[str]:
        return [self.sentence(rng) for _ in range(count)]
