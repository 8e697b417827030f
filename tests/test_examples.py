"""The docstring examples of the models, interpret, viz and behaviour modules run and print what they say."""

import doctest
import importlib

import matplotlib
import pytest

matplotlib.use("Agg")

MODULES = [
    "dlbook.models", "dlbook.models.rnn", "dlbook.models.rnn_classifier", "dlbook.models.transformer",
    "dlbook.models.transformer_classifier", "dlbook.models.pretrained", "dlbook.models.vgg", "dlbook.models.lenet",
    "dlbook.interpret", "dlbook.interpret._common", "dlbook.interpret.text", "dlbook.interpret.image", "dlbook.viz",
    "dlbook.behaviour", "dlbook.behaviour.predictor", "dlbook.behaviour.suite", "dlbook.behaviour.sst",
    "dlbook.metrics",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    failures, _ = doctest.testmod(importlib.import_module(name),
                                  optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    assert failures == 0
