"""Behavioural tests (MFT, INV, DIR) and running them against ``texts -> probabilities``.

See :mod:`dlbook.behaviour` for the three kinds and an example.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
from torch import Tensor

KINDS = ("MFT", "INV", "DIR")
EXPECTATIONS = ("same", "flip")


@dataclass
class BehaviourTest:
    """One behavioural test: a capability, a kind, and its cases.

    Attributes:
        name: what is tested, e.g. ``"negated positive is negative"``.
        kind: ``"MFT"``, ``"INV"`` or ``"DIR"``.
        capability: the group it belongs to (``"negation"``, ``"robustness"``, ``"fairness"`` ...).
        texts: MFT: the inputs; INV/DIR: the original inputs.
        expected: MFT only: the label each text must get.
        perturbed: INV/DIR only: the perturbed version of each text.
        expect: INV/DIR only: ``"same"`` (the prediction must not change) or ``"flip"``
            (it must change).
    """

    name: str
    kind: str
    capability: str
    texts: list[str]
    expected: list[int] | None = None
    perturbed: list[str] | None = None
    expect: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind={self.kind!r}; use one of {KINDS}")
        if not self.texts:
            raise ValueError(f"test {self.name!r} has no cases")
        if self.kind == "MFT":
            if self.expected is None or len(self.expected) != len(self.texts):
                raise ValueError(f"MFT {self.name!r} needs one expected label per text")
        else:
            if self.perturbed is None or len(self.perturbed) != len(self.texts):
                raise ValueError(f"{self.kind} {self.name!r} needs one perturbed text per original")
            if self.expect is None:
                self.expect = "same" if self.kind == "INV" else "flip"
            if self.expect not in EXPECTATIONS:
                raise ValueError(f"expect={self.expect!r}; use one of {EXPECTATIONS}")

    def __len__(self) -> int:
        return len(self.texts)


@dataclass
class BehaviourResult:
    """The outcome of one :class:`BehaviourTest`."""

    test: BehaviourTest
    passed: Tensor  # (N,) bool
    pred: Tensor  # (N,) predicted label of each text
    pred_perturbed: Tensor | None = None  # (N,) for INV/DIR

    @property
    def pass_rate(self) -> float:
        return float(self.passed.float().mean())

    def failures(self, n: int = 3) -> list[str]:
        """Up to ``n`` failing cases, written out."""
        out, t = [], self.test
        for i in torch.nonzero(~self.passed).flatten().tolist()[:n]:
            if t.kind == "MFT":
                out.append(f"{t.texts[i]!r}: expected {t.expected[i]}, got {int(self.pred[i])}")
            else:
                out.append(f"{t.texts[i]!r} -> {int(self.pred[i])}; {t.perturbed[i]!r} -> "
                           f"{int(self.pred_perturbed[i])}")
        return out


@dataclass
class SuiteResult:
    """Results of a suite: ``pass_rate`` over all cases, and a table per test."""

    results: list[BehaviourResult] = field(default_factory=list)

    @property
    def n_cases(self) -> int:
        return sum(len(r.test) for r in self.results)

    @property
    def pass_rate(self) -> float:
        """Fraction of all cases passed (every case weighs the same)."""
        passed = sum(int(r.passed.sum()) for r in self.results)
        return passed / max(1, self.n_cases)

    @property
    def mean_test_pass_rate(self) -> float:
        """The average of the tests' pass rates (every test weighs the same)."""
        return sum(r.pass_rate for r in self.results) / max(1, len(self.results))

    def table(self, class_names: Sequence[str] | None = None):
        """A pandas DataFrame: one row per test with kind, capability, cases, pass rate and one failure."""
        import pandas as pd

        rows = []
        for r in self.results:
            fail = r.failures(1)
            example = fail[0] if fail else ""
            if class_names is not None and example:
                example = re.sub(r"(-> |expected |got )(\d)", lambda m: m.group(1) + class_names[int(m.group(2))],
                                 example)
            rows.append({"test": r.test.name, "kind": r.test.kind, "capability": r.test.capability,
                         "cases": len(r.test), "pass rate": round(r.pass_rate, 3), "a failing case": example})
        return pd.DataFrame(rows)


def run_suite(predict_proba: Callable[[list[str]], Tensor], tests: Sequence[BehaviourTest]) -> SuiteResult:
    """Run every test against ``predict_proba`` (``texts -> (N, K)`` probabilities or scores).

    All texts are predicted in one call (duplicates once), so a suite costs one pass
    over its distinct sentences.
    """
    if not tests:
        raise ValueError("the suite is empty")
    distinct = sorted({t for test in tests for t in test.texts + (test.perturbed or [])})
    scores = torch.as_tensor(predict_proba(distinct))
    if scores.dim() != 2 or scores.shape[0] != len(distinct):
        raise ValueError(f"predict_proba must return (N, K) scores for N={len(distinct)} texts, got "
                         f"{tuple(scores.shape)}")
    label = dict(zip(distinct, scores.argmax(dim=1).tolist()))
    results = []
    for test in tests:
        pred = torch.tensor([label[t] for t in test.texts])
        if test.kind == "MFT":
            results.append(BehaviourResult(test, pred == torch.tensor(test.expected), pred))
            continue
        pred_p = torch.tensor([label[t] for t in test.perturbed])
        passed = pred == pred_p if test.expect == "same" else pred != pred_p
        results.append(BehaviourResult(test, passed, pred, pred_p))
    return SuiteResult(results)


def template(pattern: str, **slots: Sequence[str]) -> list[str]:
    """Fill the ``{slot}`` placeholders of ``pattern`` with every combination of the given words.

    Example:
        >>> template("the {thing} is {adj} .", thing=["film", "plot"], adj=["good"])
        ['the film is good .', 'the plot is good .']
    """
    names = re.findall(r"{(\w+)}", pattern)
    missing = sorted(set(names) - set(slots))
    if missing:
        raise ValueError(f"no words given for slot(s) {missing} of {pattern!r}")
    keys = list(dict.fromkeys(names))
    return [pattern.format(**dict(zip(keys, combo))) for combo in itertools.product(*(slots[k] for k in keys))]


__all__ = ["KINDS", "EXPECTATIONS", "BehaviourTest", "BehaviourResult", "SuiteResult", "run_suite", "template"]
