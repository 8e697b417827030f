"""Small ipywidgets front-ends for trying a model by hand.

Each function returns a widget box that works in a live notebook (Jupyter, Colab)
and *also* carries a precomputed result for an example input, so the static HTML
book shows what the box does even without a kernel.

Example:
    >>> box = text_explorer(lambda text: f"<b>{len(text.split())}</b> words", example="a fine film")  # doctest: +SKIP
    >>> box                                                                                           # doctest: +SKIP
"""

from __future__ import annotations

import html
from typing import Callable, Mapping

#: The message shown for an empty input.
EMPTY_MESSAGE = "<i>Type a sentence first.</i>"


def text_explorer(render: Callable[[str], str], example: str = "", placeholder: str = "Type a sentence ...",
                  button: str = "Explain", width: str = "100%"):
    """A text box, a button and an HTML area: ``render(text)`` fills the area on click or Enter.

    Any exception raised by ``render`` (e.g. a sentence with no known tokens) is shown in
    the box instead of a traceback, and replaces the previous result.

    Args:
        render: ``text -> HTML``.
        example: shown, already rendered, when the box appears.
        placeholder: greyed hint in the empty text box.
        button: the button's label.
        width: CSS width of the text box.

    Returns:
        an ``ipywidgets.VBox``; its ``.children`` are the text box, the button and the HTML area,
        and ``box.submit(text)`` renders ``text`` programmatically (used by the tests).
    """
    import ipywidgets as widgets

    text = widgets.Text(value=example, placeholder=placeholder, layout=widgets.Layout(width=width),
                        continuous_update=False)
    run = widgets.Button(description=button, button_style="primary", icon="search")
    out = widgets.HTML()

    def show(value: str) -> None:
        if not value.strip():
            out.value = EMPTY_MESSAGE
            return
        try:
            page = render(value)
        except Exception as exc:  # any failure: show it, never leave the previous sentence's explanation
            page = (f"<span style='color:#b91c1c'>Cannot explain this input: {type(exc).__name__}: "
                    f"{html.escape(str(exc))}</span>")
        out.value = page

    run.on_click(lambda _: show(text.value))
    text.observe(lambda change: show(change["new"]), names="value")
    box = widgets.VBox([widgets.HBox([text, run]), out])

    def submit(value: str) -> None:
        if text.value != value:
            text.value = value  # the observer renders it
        else:
            show(value)

    box.submit = submit  # type: ignore[attr-defined]
    if example:
        show(example)
    return box


def sentiment_explorer(predictors: Mapping[str, object], example: str = "", n_steps: int = 32,
                       score: str = "log_odds", target: int | None = 1):
    """Type a sentence, see each model's predicted sentiment and its word attributions.

    Args:
        predictors: ``{name: TextPredictor}`` (see :class:`dlbook.behaviour.TextPredictor`);
            several models are shown one under the other.
        example: a sentence shown, already explained, when the box appears.
        n_steps: Integrated Gradients steps (fewer = faster, less exact).
        score: what the attributions explain (``"log_odds"``: the decision margin).
        target: the class the colours refer to (1 = positive: green words push toward
            positive); None for each model's predicted class.

    Returns:
        the widget box of :func:`text_explorer`.
    """
    from dlbook.viz import attribution_legend

    if not predictors:
        raise ValueError("pass at least one {name: TextPredictor}")

    def render(text: str) -> str:
        rows = []
        names = set()
        for name, predictor in predictors.items():
            [item] = predictor.explain([text], target=target, n_steps=n_steps, score=score)
            names.add(item._name(item.target))
            rows.append(f"<div style='margin:4px 0;line-height:2.0'><b>{html.escape(name)}</b>: {item.to_html()}</div>")
        legend = attribution_legend(names.pop() if len(names) == 1 else "the predicted class")
        return "".join(rows) + legend

    return text_explorer(render, example=example)


__all__ = ["text_explorer", "sentiment_explorer", "figure_explorer", "EMPTY_MESSAGE"]


def figure_explorer(draw: Callable[..., object], controls: Mapping[str, object], dpi: int = 80):
    """Controls above a picture: ``draw(**values)`` makes a matplotlib figure, shown as a PNG, redrawn on each change.

    The picture is an ``ipywidgets.Image``, not an ``Output`` widget: ``widgets.interactive``'s
    Output widget has left notebook runs waiting forever on an idle kernel (jupyter/nbclient#312).
    The first picture is drawn at once, so a saved notebook already holds it.

    Args:
        draw: takes the controls' values as keyword arguments, returns a ``matplotlib.figure.Figure``.
        controls: name -> ipywidgets control (a slider, a dropdown); the name is ``draw``'s argument.
        dpi: resolution of the PNG.

    Example:
        >>> import ipywidgets as widgets, matplotlib.pyplot as plt
        >>> def draw(n):
        ...     fig, ax = plt.subplots()
        ...     ax.plot(range(n))
        ...     return fig
        >>> box = figure_explorer(draw, {"n": widgets.IntSlider(3, min=1, max=9)})
        >>> box.children[-1].format, bytes(box.children[-1].value[:4])
        ('png', b'\\x89PNG')
    """
    import io

    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    if not controls:
        raise ValueError("controls is empty: pass at least one widget, e.g. {'n': ipywidgets.IntSlider(3)}")

    def png() -> bytes:
        fig = draw(**{name: control.value for name, control in controls.items()})
        if not hasattr(fig, "savefig"):
            raise TypeError(f"draw returned {type(fig).__name__}; it must return a matplotlib Figure")
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
        plt.close(fig)
        return buffer.getvalue()

    picture = widgets.Image(value=png(), format="png")

    def redraw(_change=None) -> None:
        picture.value = png()

    for control in controls.values():
        control.observe(redraw, names="value")
    return widgets.VBox([widgets.HBox(list(controls.values())), picture])
