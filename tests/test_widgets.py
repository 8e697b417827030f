"""figure_explorer: a picture of the first draw at once, redrawn when a control changes, clear errors."""

import ipywidgets as widgets
import matplotlib
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from dlbook.widgets import figure_explorer  # noqa: E402


def _draw(n):
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.bar(range(n), range(1, n + 1))
    return fig


def test_figure_explorer_draws_at_once_and_redraws_on_change():
    seen = []
    slider = widgets.IntSlider(2, min=1, max=9)
    box = figure_explorer(lambda n: seen.append(n) or _draw(n), {"n": slider})
    picture = box.children[-1]
    first = bytes(picture.value)
    assert first.startswith(b"\x89PNG") and seen == [2]
    slider.value = 7
    assert seen == [2, 7] and bytes(picture.value) != first   # a new picture for the new value
    assert box.children[0].children == (slider,)


def test_figure_explorer_bad_input_is_explained():
    with pytest.raises(ValueError, match="controls is empty"):
        figure_explorer(_draw, {})
    with pytest.raises(TypeError, match="matplotlib Figure"):
        figure_explorer(lambda n: None, {"n": widgets.IntSlider(2)})
