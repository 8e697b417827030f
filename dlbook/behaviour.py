"""Behavioural tests for text classifiers, after CheckList.

Paper:
    Ribeiro, Wu, Guestrin & Singh, "Beyond Accuracy: Behavioral Testing of NLP Models
    with CheckList", ACL 2020.

Accuracy on a held-out set says how often a model is right on sentences like the
training ones; behavioural tests ask whether it has the *capabilities* we assume,
one at a time, with inputs written for the purpose. Three kinds of test:

* **MFT** (minimum functionality): inputs with known labels, usually filled in from a
  template (``"the film is not {pos_adj} ."`` must be negative);
* **INV** (invariance): a perturbation that should *not* change the prediction
  (appending a neutral clause, swapping a person's name);
* **DIR** (directional): a perturbation that should change it in a known way
  (negating a sentence flips its label).

:class:`TextPredictor` turns any ``model(tokens, lengths)`` classifier plus its text
encoding into a function ``texts -> probabilities`` (and explanations), which is all
the tests need; :func:`sst_suite` builds a suite for binary sentiment and
:func:`run_suite` reports the pass rate of each test, with failing examples.

Example:
    >>> tests = [BehaviourTest("polarity", "MFT", "vocabulary", texts=["good", "bad"], expected=[1, 0])]
    >>> always_positive = lambda texts: torch.tensor([[0.1, 0.9]] * len(texts))
    >>> run_suite(always_positive, tests).pass_rate
    0.5
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
from torch import Tensor, nn

KINDS = ("MFT", "INV", "DIR")
EXPECTATIONS = ("same", "flip")

# --------------------------------------------------------------------------------------
# The model under test: texts -> probabilities
# --------------------------------------------------------------------------------------


class TextPredictor:
    """Wrap a ``model(tokens, lengths) -> logits`` classifier and its encoding as ``texts -> probabilities``.

    Args:
        model: the classifier (put in eval mode for every call).
        encode: ``text -> (ids, shown)``: the token ids the model reads and the tokens to
            show for them (same length), e.g. from :meth:`for_vocab` or :meth:`for_wordpiece`.
        class_names: for display.
        pad_index: the padding id.
        batch_size: texts per forward pass.
        amp_dtype: autocast to this dtype for predictions (e.g. ``torch.bfloat16``, as the
            Trainer does on a CPU that supports it); None: float32.
        baseline_index: the token of the Integrated Gradients baseline in :meth:`explain`
            (default: ``pad_index``).
        keep_tokens: token ids kept as they are in that baseline (e.g. ``[CLS]``, ``[SEP]``).

    Example:
        >>> from dlbook.data.text import Vocab, tokenize
        >>> from dlbook.models.rnn import RNNClassifier, RNNClassifierConfig
        >>> vocab = Vocab.build([tokenize("a good film"), tokenize("a bad film")])
        >>> predictor = TextPredictor.for_vocab(RNNClassifier(RNNClassifierConfig.tiny(len(vocab))), vocab)
        >>> predictor(["A good film!", "a bad one"]).shape
        torch.Size([2, 2])
    """

    def __init__(self, model: nn.Module, encode: Callable[[str], tuple[list[int], list[str]]],
                 class_names: Sequence[str] = ("negative", "positive"), pad_index: int = 0, batch_size: int = 256,
                 amp_dtype: torch.dtype | None = None, baseline_index: int | None = None,
                 keep_tokens: Sequence[int] = ()):
        self.model, self.encode = model, encode
        self.class_names, self.pad_index, self.batch_size = tuple(class_names), pad_index, int(batch_size)
        self.amp_dtype = amp_dtype
        self.baseline_index = pad_index if baseline_index is None else baseline_index
        self.keep_tokens = tuple(keep_tokens)

    @classmethod
    def for_vocab(cls, model: nn.Module, vocab, tokenize: Callable[[str], list[str]] | None = None,
                  **kwargs) -> "TextPredictor":
        """For models over a word :class:`~dlbook.data.text.Vocab`; unknown words are shown as ``word*``.

        Pass ``baseline_index=vocab.unk_index`` for an all-``<unk>`` attribution baseline.
        """
        if tokenize is None:
            from dlbook.data.text import tokenize

        def encode(text: str) -> tuple[list[int], list[str]]:
            words = tokenize(text)
            return vocab.encode(words), [w if w in vocab else f"{w}*" for w in words]

        return cls(model, encode, pad_index=vocab.pad_index, **kwargs)

    @classmethod
    def for_wordpiece(cls, model: nn.Module, tokenizer, max_length: int = 64, **kwargs) -> "TextPredictor":
        """For :class:`~dlbook.models.pretrained.EncoderClassifier` and its WordPiece tokenizer.

        The attribution baseline keeps ``[CLS]`` and ``[SEP]`` and replaces the other pieces
        by ``[PAD]`` (pass ``baseline_index=tokenizer.unk_token_id`` for ``[UNK]``).
        """
        from dlbook.models.pretrained import encode_texts

        def encode(text: str) -> tuple[list[int], list[str]]:
            [ids] = encode_texts(tokenizer, [text], max_length=max_length)
            return ids, list(tokenizer.convert_ids_to_tokens(ids))

        kwargs.setdefault("keep_tokens", (tokenizer.cls_token_id, tokenizer.sep_token_id))
        return cls(model, encode, pad_index=int(tokenizer.pad_token_id or 0), **kwargs)

    def batch(self, texts: Sequence[str]) -> tuple[Tensor, Tensor, list[list[str]]]:
        """``(tokens (B, T), lengths (B,), shown tokens)`` for ``texts``; empty texts are an error."""
        from dlbook.data.text import pad_batch

        if isinstance(texts, str):
            raise TypeError("pass a list of texts; wrap a single text as [text]")
        blank = [i for i, t in enumerate(texts) if not isinstance(t, str) or not t.strip()]
        if blank:
            raise ValueError(f"text {blank[0]} ({texts[blank[0]]!r}) is empty: there is nothing to classify")
        encoded = [self.encode(t) for t in texts]
        empty = [i for i, (ids, _) in enumerate(encoded) if len(ids) == 0]
        if empty:
            raise ValueError(f"text {empty[0]} ({texts[empty[0]]!r}) has no tokens: there is nothing to classify")
        tokens, lengths = pad_batch([ids for ids, _ in encoded], self.pad_index)
        return tokens, lengths, [shown for _, shown in encoded]

    @torch.no_grad()
    def __call__(self, texts: Sequence[str]) -> Tensor:
        """Class probabilities ``(N, K)`` on the CPU."""
        texts = list(texts)
        if not texts:
            raise ValueError("no texts to predict")
        from dlbook.train.device import autocast

        device = _device_of(self.model)
        was_training = self.model.training
        self.model.eval()
        out = []
        try:
            for start in range(0, len(texts), self.batch_size):
                tokens, lengths, _ = self.batch(texts[start:start + self.batch_size])
                with autocast(device, self.amp_dtype):
                    logits = self.model(tokens.to(device), lengths)
                out.append(logits.float().softmax(dim=1).cpu())
        finally:
            self.model.train(was_training)
        return torch.cat(out)

    def predict(self, texts: Sequence[str]) -> Tensor:
        """Predicted classes ``(N,)``."""
        return self(texts).argmax(dim=1)

    def explain(self, texts: Sequence[str], labels: Sequence[int] | None = None, target=None, **kwargs):
        """Predict and explain: one :class:`dlbook.interpret.WordAttribution` per text.

        ``kwargs`` go to :func:`dlbook.interpret.word_attributions` (``score``, ``n_steps``,
        ``baseline_index`` to override this predictor's baseline, ...).
        """
        from dlbook.interpret import explain_text

        kwargs.setdefault("baseline_index", self.baseline_index)
        kwargs.setdefault("keep_tokens", self.keep_tokens)
        tokens, lengths, shown = self.batch(list(texts))
        return explain_text(self.model, tokens, lengths, shown, target=target, labels=labels,
                            class_names=self.class_names, **kwargs)


def _device_of(model: nn.Module) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


# --------------------------------------------------------------------------------------
# Tests and suites
# --------------------------------------------------------------------------------------


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
    """Fill ``pattern``'s ``{slot}``s with every combination of the given words.

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


# --------------------------------------------------------------------------------------
# A suite for binary sentiment (SST-2), in SST's own lower-cased, tokenised style
# --------------------------------------------------------------------------------------

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


__all__ = [
    "TextPredictor", "BehaviourTest", "BehaviourResult", "SuiteResult", "run_suite", "template", "sst_suite",
    "POSITIVE_ADJ", "NEGATIVE_ADJ", "NOUNS", "NAMES", "NEUTRAL_CLAUSES",
]
