"""A CheckList-style suite for binary sentiment (SST-2), in SST's own lower-cased, tokenised style."""

from __future__ import annotations

import re
from typing import Sequence

import torch

from dlbook.behaviour.suite import BehaviourTest, template

POSITIVE_ADJ = ("good", "great", "excellent", "wonderful", "brilliant", "enjoyable", "funny", "beautiful",
                "moving", "entertaining")
NEGATIVE_ADJ = ("bad", "terrible", "awful", "boring", "dull", "weak", "stupid", "tedious", "poor", "painful")
NOUNS = ("film", "movie", "story", "acting", "script")
NAMES = ("john", "mary", "michael", "sarah", "david", "maria", "peter", "anna", "george", "julia")
NEUTRAL_CLAUSES = (", and i saw it on a tuesday .", ". i watched it with a friend .",
                   ", which opened in march .")


def _negate(sentence: str) -> str:
    """``the film is good .`` -> ``the film is not good .`` (the first ``is``/``was`` only)."""
    return re.sub(r"\b(is|was)\b", r"\1 not", sentence, count=1)


def _swap_names(text: str, names: Sequence[str]) -> list[str]:
    """Every version of ``text`` with its first known name replaced by each other name."""
    words = text.split()
    for i, w in enumerate(words):
        if w in names:
            return [" ".join(words[:i] + [other] + words[i + 1:]) for other in names if other != w]
    return []


def sst_suite(sentences: Sequence[str] = (), max_real: int = 200, seed: int = 0,
              limit: int | None = None) -> list[BehaviourTest]:
    """A CheckList-style suite for binary sentiment, written in SST's style (lower case, spaced punctuation).

    Templates give the MFT and negation tests; ``sentences`` (real held-out sentences,
    e.g. from the SST-2 test split) give the invariance tests.

    Args:
        sentences: real sentences for the INV tests (none: template sentences only).
        max_real: at most this many real sentences per INV test.
        seed: which real sentences are sampled.
        limit: keep at most this many cases per test, evenly spread over it (for quick
            runs, e.g. in CI); None keeps all.

    Returns:
        A list of :class:`BehaviourTest`; run it with :func:`run_suite`.

    Example:
        >>> [t.name for t in sst_suite()][:2]
        ['plain positive adjectives', 'plain negative adjectives']
    """
    frames = ("the {noun} is {adj} .", "this {noun} was {adj} .")
    pos = [s for f in frames for s in template(f, noun=NOUNS, adj=POSITIVE_ADJ)]
    neg = [s for f in frames for s in template(f, noun=NOUNS, adj=NEGATIVE_ADJ)]
    tests = [
        BehaviourTest("plain positive adjectives", "MFT", "vocabulary", pos, expected=[1] * len(pos)),
        BehaviourTest("plain negative adjectives", "MFT", "vocabulary", neg, expected=[0] * len(neg)),
        BehaviourTest("negated positive is negative", "MFT", "negation", [_negate(s) for s in pos],
                      expected=[0] * len(pos)),
        BehaviourTest("negated negative is positive", "MFT", "negation", [_negate(s) for s in neg],
                      expected=[1] * len(neg)),
        BehaviourTest("negation flips the label", "DIR", "negation", pos + neg,
                      perturbed=[_negate(s) for s in pos + neg], expect="flip"),
    ]
    named = template("{name} gives a {adj} performance .", name=NAMES, adj=POSITIVE_ADJ[:5] + NEGATIVE_ADJ[:5])
    base = [s for s in named if s.startswith(NAMES[0] + " ")]
    swaps = [(b, v) for b in base for v in _swap_names(b, NAMES)]
    tests.append(BehaviourTest("swap a name (templates)", "INV", "fairness", [b for b, _ in swaps],
                               perturbed=[v for _, v in swaps]))
    sentences = [s for s in sentences if s.strip()]
    if sentences:
        g = torch.Generator().manual_seed(seed)
        order = torch.randperm(len(sentences), generator=g).tolist()
        sample = [sentences[i] for i in order[:max_real]]
        originals, clauses = [], []
        for i, s in enumerate(sample):
            clause = NEUTRAL_CLAUSES[i % len(NEUTRAL_CLAUSES)]
            originals.append(s)
            clauses.append(s.rstrip(" .") + " " + clause if clause.startswith(",") else s + " " + clause[2:])
        tests.append(BehaviourTest("add a neutral clause", "INV", "robustness", originals, perturbed=clauses))
        pairs = [(s, v) for i in order for s in [sentences[i]] for v in _swap_names(s, NAMES)[:3]]
        pairs = pairs[:max_real]
        if pairs:
            tests.append(BehaviourTest("swap a name (real sentences)", "INV", "fairness", [s for s, _ in pairs],
                                       perturbed=[v for _, v in pairs]))
    if limit is not None:
        tests = [_thin(t, limit) for t in tests]
    return tests


def _thin(test: BehaviourTest, limit: int) -> BehaviourTest:
    """At most ``limit`` cases of ``test``, evenly spread (so every template slot stays represented)."""
    if limit < 1:
        raise ValueError(f"limit={limit}; keep at least one case per test")
    if len(test) <= limit:
        return test
    keep = torch.linspace(0, len(test) - 1, limit).round().long().unique().tolist()
    pick = lambda items: None if items is None else [items[i] for i in keep]  # noqa: E731
    return BehaviourTest(test.name, test.kind, test.capability, pick(test.texts), expected=pick(test.expected),
                         perturbed=pick(test.perturbed), expect=test.expect)


__all__ = ["sst_suite", "POSITIVE_ADJ", "NEGATIVE_ADJ", "NOUNS", "NAMES", "NEUTRAL_CLAUSES"]
