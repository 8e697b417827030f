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
    >>> import torch
    >>> tests = [BehaviourTest("polarity", "MFT", "vocabulary", texts=["good", "bad"], expected=[1, 0])]
    >>> always_positive = lambda texts: torch.tensor([[0.1, 0.9]] * len(texts))
    >>> run_suite(always_positive, tests).pass_rate
    0.5

The package: :mod:`~dlbook.behaviour.predictor` (:class:`TextPredictor`),
:mod:`~dlbook.behaviour.suite` (:class:`BehaviourTest`, :func:`run_suite`, :func:`template`)
and :mod:`~dlbook.behaviour.sst` (:func:`sst_suite`).
"""

from dlbook.behaviour.predictor import TextPredictor
from dlbook.behaviour.sst import NAMES, NEGATIVE_ADJ, NEUTRAL_CLAUSES, NOUNS, POSITIVE_ADJ, sst_suite
from dlbook.behaviour.suite import BehaviourResult, BehaviourTest, SuiteResult, run_suite, template

__all__ = [
    "TextPredictor", "BehaviourTest", "BehaviourResult", "SuiteResult", "run_suite", "template", "sst_suite",
    "POSITIVE_ADJ", "NEGATIVE_ADJ", "NOUNS", "NAMES", "NEUTRAL_CLAUSES",
]
