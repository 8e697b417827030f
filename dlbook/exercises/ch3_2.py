"""Checks for the exercises of chapter 3.2 (recurrent networks).

* :func:`check_rnn_cell`: the "find the bug" exercise on the source article's vanilla RNN (no tanh,
  and an ``i2o`` layer that reads the output from the *previous* state), checked against
  ``nn.RNN`` with the student's ``i2h`` weights copied in, and for a bounded state over a long
  sequence.
* :func:`check_lstm_step`: one LSTM step from the chapter's equations, checked against ``nn.LSTMCell``.
* :func:`check_clip_grad_norm`: clipping by the total norm, checked against
  ``torch.nn.utils.clip_grad_norm_``.

Example:
    >>> from dlbook.exercises import report
    >>> report(check_clip_grad_norm(lambda grads, max_norm: grads))
    3.2 exercise 3 (gradient clipping): not correct yet
      - gradients of total norm 10 come back with norm 10, expected 1 (max_norm = 1)
        try: scale every gradient by max_norm / total_norm when total_norm > max_norm
"""

from __future__ import annotations

import itertools
from typing import Callable, Sequence

import torch
from torch import nn

from dlbook.exercises import Check, Problem, attempt, run_check

I, H, O = 3, 5, 2  # input, hidden and output sizes the RNN check uses: all different, so no layer fits two roles


def _linears(module: nn.Module, n_in: int, n_out: int) -> list[tuple[str, nn.Linear]]:
    return [(name, m) for name, m in module.named_modules()
            if isinstance(m, nn.Linear) and m.in_features == n_in and m.out_features == n_out]


def check_rnn_cell(cell_cls: Callable[[int, int, int], nn.Module]) -> Check:
    """Check the article-style RNN cell ``cell_cls(input_size, hidden_size, output_size)``.

    Its ``forward(input (B, I), hidden (B, H))`` returns ``(output (B, O), hidden (B, H))``. It keeps
    the article's ``i2h = nn.Linear(input_size + hidden_size, hidden_size)``; the check copies
    ``i2h``'s weights into ``nn.RNN`` (``W_ih | W_hh`` side by side) and compares the states over a
    sequence, runs 200 steps to see the state stay bounded, and requires the output to be a
    linear layer of the **new** state.

    Example:
        >>> class Cell(nn.Module):
        ...     def __init__(self, i, h, o):
        ...         super().__init__()
        ...         self.i2h, self.h2o = nn.Linear(i + h, h), nn.Linear(h, o)
        ...     def forward(self, x, hidden):
        ...         hidden = torch.tanh(self.i2h(torch.cat((x, hidden), 1)))
        ...         return self.h2o(hidden), hidden
        >>> check_rnn_cell(Cell).passed
        True
    """

    def body(problems: list[Problem]) -> None:
        cell = attempt(cell_cls, I, H, O, what=f"{getattr(cell_cls, '__name__', 'the class')}({I}, {H}, {O})")
        i2h = getattr(cell, "i2h", None)
        if not isinstance(i2h, nn.Linear) or (i2h.in_features, i2h.out_features) != (I + H, H):
            problems.append(Problem("the cell has no i2h = nn.Linear(input_size + hidden_size, hidden_size)",
                                    "keep the article's i2h layer: the check reads W_ih and W_hh from it"))
            return
        torch.manual_seed(0)
        reference = nn.RNN(I, H, batch_first=True)
        with torch.no_grad():  # nn.RNN with i2h's weights: [W_ih | W_hh] = i2h.weight, one bias
            reference.weight_ih_l0.copy_(i2h.weight[:, :I])
            reference.weight_hh_l0.copy_(i2h.weight[:, I:])
            reference.bias_ih_l0.copy_(i2h.bias)
            reference.bias_hh_l0.zero_()
        x = torch.randn(4, 10, I)  # (B, T, I)
        h = torch.zeros(4, H)
        states, outputs, previous = [], [], []
        with torch.no_grad():
            for t in range(x.shape[1]):
                previous.append(h)
                step = attempt(cell, x[:, t], h, what=f"cell(input of shape {(4, I)}, hidden of shape {(4, H)})")
                if not (isinstance(step, tuple) and len(step) == 2):
                    problems.append(Problem(f"forward returns {type(step).__name__}, expected (output, hidden)"))
                    return
                out, h = step
                if tuple(h.shape) != (4, H) or tuple(out.shape) != (4, O):
                    problems.append(Problem(f"forward returns output {tuple(out.shape)} and hidden "
                                            f"{tuple(h.shape)}, expected {(4, O)} and {(4, H)}"))
                    return
                states.append(h)
                outputs.append(out)
            expected, _ = reference(x)  # (B, T, H)
        ours = torch.stack(states, 1)  # (B, T, H)
        if not torch.allclose(ours, expected, atol=1e-5):
            linear = i2h(torch.cat((x[:, 0], previous[0]), 1))
            no_tanh = torch.allclose(states[0], linear, atol=1e-6)
            problems.append(Problem(
                "the hidden states differ from nn.RNN with the same weights"
                + (": the new state is i2h(combined) itself, with no tanh, so the recurrence is linear" if no_tanh else
                   f" (largest difference {(ours - expected).abs().max():.3g})"),
                "hidden = torch.tanh(self.i2h(combined)): h_t = tanh(W_ih x_t + W_hh h_(t-1) + b)"))
        _check_bounded(cell, i2h, problems)
        _check_output(cell, x, previous, states, outputs, problems)

    return run_check("3.2 exercise 1 (the article's vanilla RNN)", body)


def _check_bounded(cell: nn.Module, i2h: nn.Linear, problems: list[Problem]) -> None:
    """200 steps with recurrent weights of gain 1.1: a tanh keeps |h| <= 1, a linear recurrence grows ~1.1^t."""
    torch.manual_seed(1)
    saved = [p.detach().clone() for p in i2h.parameters()]
    with torch.no_grad():
        i2h.weight[:, :I].copy_(0.5 * torch.randn(H, I))
        i2h.weight[:, I:].copy_(nn.init.orthogonal_(torch.empty(H, H), gain=1.1))  # every |eigenvalue| = 1.1
        i2h.bias.zero_()
        h, biggest = torch.zeros(1, H), 0.0
        for t in range(200):
            _, h = cell(torch.randn(1, I), h)
            biggest = max(biggest, h.abs().max().item())
        for p, s in zip(i2h.parameters(), saved):
            p.copy_(s)
    if not biggest <= 1.0:
        problems.append(Problem(
            f"the state is unbounded: with recurrent weights of gain 1.1, max |h_t| reached {biggest:.3g} in "
            "200 steps", "squash the state with tanh, which keeps every unit in (-1, 1)"))


def _check_output(cell, x, previous, states, outputs, problems: list[Problem]) -> None:
    readers = _linears(cell, H, O)
    from_old = [name for name, m in _linears(cell, I + H, O)
                if torch.allclose(m(torch.cat((x[:, 0], previous[0]), 1)), outputs[0], atol=1e-6)]
    if from_old or not readers:
        problems.append(Problem(
            "the output is computed " + (f"by {from_old[0]} from combined = [x_t, h_(t-1)], that is from the "
                                         "previous state" if from_old else "without a layer that reads the state"),
            "output = self.h2o(hidden) after the new hidden state, with h2o = nn.Linear(hidden_size, output_size): "
            "y_t = W_hy h_t + b_y"))
        return
    if not any(all(torch.allclose(m(h), out, atol=1e-6) for h, out in zip(states, outputs)) for _, m in readers):
        problems.append(Problem(f"the output is not {readers[0][0]}(new hidden state)",
                                "compute the new hidden state first, then output = self.h2o(hidden)"))


def check_lstm_step(fn: Callable) -> Check:
    """Check ``fn(x, h, c, W_ih, W_hh, b_ih, b_hh) -> (h_new, c_new)`` against ``nn.LSTMCell``.

    The weights are PyTorch's: ``W_ih`` is ``(4H, I)`` with the gates in the order i, f, g, o.

    Example:
        >>> def step(x, h, c, W_ih, W_hh, b_ih, b_hh):
        ...     i, f, g, o = (x @ W_ih.T + b_ih + h @ W_hh.T + b_hh).chunk(4, dim=1)
        ...     c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        ...     return torch.sigmoid(o) * torch.tanh(c), c
        >>> check_lstm_step(step).passed
        True
    """

    def body(problems: list[Problem]) -> None:
        torch.manual_seed(0)
        ref = nn.LSTMCell(4, 6)
        x, h, c = torch.randn(3, 4), torch.randn(3, 6), torch.randn(3, 6)
        args = (ref.weight_ih, ref.weight_hh, ref.bias_ih, ref.bias_hh)
        with torch.no_grad():
            got = attempt(fn, x, h, c, *args, what="lstm_step(x (3, 4), h (3, 6), c (3, 6), ...)")
            h_ref, c_ref = ref(x, (h, c))
        if not (isinstance(got, tuple) and len(got) == 2 and all(isinstance(t, torch.Tensor) for t in got)):
            problems.append(Problem(f"returns {type(got).__name__}, expected the tuple (h_new, c_new)"))
            return
        h_new, c_new = got
        if tuple(h_new.shape) != (3, 6) or tuple(c_new.shape) != (3, 6):
            problems.append(Problem(f"returns shapes {tuple(h_new.shape)} and {tuple(c_new.shape)}, expected (3, 6)"))
            return
        if torch.allclose(h_new, h_ref, atol=1e-5) and torch.allclose(c_new, c_ref, atol=1e-5):
            return
        gates = (x @ args[0].T + args[2] + h @ args[1].T + args[3]).chunk(4, dim=1)
        for order in itertools.permutations(range(4)):
            i, f, g, o = (gates[k] for k in order)
            c_try = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            if order != (0, 1, 2, 3) and torch.allclose(c_new, c_try, atol=1e-5):
                names = "".join("ifgo"[k] for k in order)
                problems.append(Problem(f"the gates are read in the order {', '.join(names)}",
                                        "PyTorch stacks them as i, f, g, o: i, f, g, o = gates.chunk(4, dim=1)"))
                return
        if not torch.allclose(c_new, c_ref, atol=1e-5):
            problems.append(Problem(f"c_new differs from nn.LSTMCell's by up to {(c_new - c_ref).abs().max():.3g}",
                                    "c_t = sigmoid(f) * c_(t-1) + sigmoid(i) * tanh(g)"))
        elif torch.allclose(h_new, torch.sigmoid(gates[3]) * c_new, atol=1e-5):
            problems.append(Problem("h_new = o * c_t: the tanh of the cell state is missing",
                                    "h_t = sigmoid(o) * tanh(c_t)"))
        else:
            problems.append(Problem(f"h_new differs from nn.LSTMCell's by up to {(h_new - h_ref).abs().max():.3g}",
                                    "h_t = sigmoid(o) * tanh(c_t), with the new c_t"))

    return run_check("3.2 exercise 2 (one LSTM step)", body)


def _reference_clip(grads: Sequence[torch.Tensor], max_norm: float) -> list[torch.Tensor]:
    params = [nn.Parameter(torch.zeros_like(g)) for g in grads]
    for p, g in zip(params, grads):
        p.grad = g.clone()
    torch.nn.utils.clip_grad_norm_(params, max_norm)
    return [p.grad for p in params]


def check_clip_grad_norm(fn: Callable[[list[torch.Tensor], float], list[torch.Tensor]]) -> Check:
    """Check ``fn(grads, max_norm)``: all gradients scaled by one factor so their total norm is at most ``max_norm``.

    Checked against ``torch.nn.utils.clip_grad_norm_``, with a total norm above and one below the threshold.

    Example:
        >>> def clip(grads, max_norm):
        ...     total = torch.sqrt(sum((g ** 2).sum() for g in grads))
        ...     return [g * min(1.0, max_norm / (total.item() + 1e-6)) for g in grads]
        >>> check_clip_grad_norm(clip).passed
        True
    """

    def body(problems: list[Problem]) -> None:
        g = torch.Generator().manual_seed(0)
        base = [torch.randn(5, 3, generator=g), torch.randn(7, generator=g), torch.randn(2, 2, 2, generator=g)]
        total = torch.sqrt(sum((t ** 2).sum() for t in base))
        for target, max_norm in ((10.0, 1.0), (0.5, 1.0), (40.0, 5.0)):
            grads = [t * (target / total) for t in base]  # total norm exactly `target`
            got = attempt(fn, [t.clone() for t in grads], max_norm, what=f"clip(grads, max_norm={max_norm})")
            if not isinstance(got, (list, tuple)) or len(got) != len(grads):
                problems.append(Problem(f"returns {type(got).__name__}, expected a list of {len(grads)} tensors"))
                return
            expected = _reference_clip(grads, max_norm)
            if all(torch.allclose(a, b, atol=1e-5) for a, b in zip(got, expected)):
                continue
            norm = torch.sqrt(sum((t ** 2).sum() for t in got)).item()
            want = min(target, max_norm)
            flat_got, flat_in = torch.cat([t.flatten() for t in got]), torch.cat([t.flatten() for t in grads])
            cosine = torch.cosine_similarity(flat_got, flat_in, dim=0).item()
            if target < max_norm:
                problems.append(Problem(f"gradients of total norm {target:g}, below max_norm = {max_norm:g}, "
                                        f"come back with norm {norm:.3g}", "leave them unchanged: scale by "
                                        "min(1, max_norm / total_norm)"))
            elif cosine < 0.9999:
                problems.append(Problem(f"the clipped gradients point elsewhere (cosine {cosine:.4f} with the "
                                        "originals): each tensor was clipped on its own, or by value",
                                        "compute ONE total norm over all tensors, then scale them all by the same factor"))
            else:
                problems.append(Problem(f"gradients of total norm {target:g} come back with norm {norm:.3g}, "
                                        f"expected {want:g} (max_norm = {max_norm:g})",
                                        "scale every gradient by max_norm / total_norm when total_norm > max_norm"))
            return

    return run_check("3.2 exercise 3 (gradient clipping)", body)
