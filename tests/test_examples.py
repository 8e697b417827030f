"""The docstring examples of every dlbook module run and print what they say."""

import doctest
import importlib
import pkgutil

import matplotlib
import pytest

import dlbook

matplotlib.use("Agg")

# Every module of the package, found by walking it, so a new module's examples run without a list to edit.
MODULES = sorted(m.name for m in pkgutil.walk_packages(dlbook.__path__, "dlbook."))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    failures, _ = doctest.testmod(importlib.import_module(name),
                                  optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    assert failures == 0
