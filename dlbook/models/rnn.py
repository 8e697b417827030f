"""Recurrent neural networks written out: the vanilla RNN, LSTM and GRU, one time step at a time.

Papers:
    Elman, "Finding Structure in Time", Cognitive Science 14 (1990): the vanilla RNN.
    Hochreiter & Schmidhuber, "Long Short-Term Memory", Neural Computation 9 (1997).
    Cho et al., "Learning Phrase Representations using RNN Encoder-Decoder for
    Statistical Machine Translation", EMNLP 2014: the GRU.
    Werbos, "Backpropagation Through Time: What It Does and How to Do It", Proc. IEEE 78 (1990).

The equations (:class:`RNNCell`, :class:`LSTMCell`, :class:`GRUCell`) and a loop over
time (:class:`Recurrent`, with :class:`RNN`, :class:`LSTM`, :class:`GRU`). They use
PyTorch's parameter names, shapes and gate order, so :meth:`Recurrent.load_from_torch`
loads the weights of a one-layer ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` and the outputs
match to float precision (the tests check this). They are for reading, not speed:
the models for real data, on PyTorch's fused layers, are in
:mod:`dlbook.models.rnn_classifier`. :func:`gradient_through_time` measures
vanishing gradients and :func:`init_forget_gate_bias` opens the LSTM's forget gate.

Example:
    >>> import torch
    >>> layer = RNN(input_size=3, hidden_size=5)
    >>> outputs, h_last = layer(torch.randn(2, 7, 3))   # (B, T, I) in
    >>> outputs.shape, h_last.shape
    (torch.Size([2, 7, 5]), torch.Size([2, 5]))
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class _CellBase(nn.Module):
    """Parameters shaped and named like ``nn.RNNCell``/``nn.LSTMCell``/``nn.GRUCell``.

    ``gates`` is 1 for the vanilla RNN, 4 for the LSTM (i, f, g, o) and 3 for the GRU
    (r, z, n); ``weight_ih`` is ``(gates * H, I)`` and ``weight_hh`` is ``(gates * H, H)``.
    Initialised like PyTorch: uniform in ``±1/sqrt(H)``.
    """

    gates = 1

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True):
        super().__init__()
        if input_size < 1 or hidden_size < 1:
            raise ValueError(f"input_size={input_size} and hidden_size={hidden_size} must both be >= 1")
        self.input_size, self.hidden_size = input_size, hidden_size
        g, h = self.gates, hidden_size
        self.weight_ih = nn.Parameter(torch.empty(g * h, input_size))
        self.weight_hh = nn.Parameter(torch.empty(g * h, h))
        self.bias_ih = nn.Parameter(torch.empty(g * h)) if bias else None
        self.bias_hh = nn.Parameter(torch.empty(g * h)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def _affine(self, x: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        """``x W_ih^T + b_ih`` and ``h W_hh^T + b_hh``, each ``(B, gates * H)``."""
        gi = x @ self.weight_ih.T
        gh = h @ self.weight_hh.T
        if self.bias_ih is not None:
            gi, gh = gi + self.bias_ih, gh + self.bias_hh
        return gi, gh

    def init_state(self, batch_size: int, like: Tensor):
        """The zero state for a batch (a tensor, or ``(h, c)`` for the LSTM)."""
        return like.new_zeros(batch_size, self.hidden_size)

    @staticmethod
    def output(state) -> Tensor:
        """The hidden state ``h_t`` that the cell emits (the LSTM also carries ``c_t``)."""
        return state

    def _check(self, x: Tensor, h: Tensor) -> None:
        if x.dim() != 2 or x.shape[1] != self.input_size:
            raise ValueError(f"{type(self).__name__} expects x of shape (B, {self.input_size}), got {tuple(x.shape)}")
        if h.shape != (x.shape[0], self.hidden_size):
            raise ValueError(f"{type(self).__name__} expects a state of shape ({x.shape[0]}, {self.hidden_size}), "
                             f"got {tuple(h.shape)}")

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, bias={self.bias_ih is not None}"


class RNNCell(_CellBase):
    """The vanilla (Elman) RNN step: ``h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)``.

    The ``tanh`` is what keeps ``h_t`` bounded in ``(-1, 1)``; without it the recurrence
    is a linear map applied ``T`` times, whose outputs explode or die out.

    Example:
        >>> cell = RNNCell(3, 4)
        >>> cell(torch.randn(2, 3), torch.zeros(2, 4)).shape
        torch.Size([2, 4])
    """

    gates = 1

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True):
        super().__init__(input_size, hidden_size, bias)
        self.tanh = nn.Tanh()

    def forward(self, x: Tensor, h: Tensor) -> Tensor:
        """One step: ``x`` is ``(B, I)``, ``h`` is ``(B, H)``; returns the new ``(B, H)`` state."""
        self._check(x, h)
        gi, gh = self._affine(x, h)
        return self.tanh(gi + gh)


class LSTMCell(_CellBase):
    """One LSTM step, with PyTorch's gate order (input, forget, cell candidate, output).

    ``i = σ(·)``, ``f = σ(·)``, ``g = tanh(·)``, ``o = σ(·)``;
    ``c_t = f ⊙ c_{t-1} + i ⊙ g`` and ``h_t = o ⊙ tanh(c_t)``. The cell state is updated
    *additively*, so ``∂c_t/∂c_{t-1} = f``: gradients survive as long as the forget gate
    stays open, which is how the LSTM eases the vanishing gradient of the vanilla RNN.

    Example:
        >>> cell = LSTMCell(3, 4)
        >>> h, c = cell(torch.randn(2, 3), cell.init_state(2, torch.zeros(1)))
        >>> h.shape, c.shape
        (torch.Size([2, 4]), torch.Size([2, 4]))
    """

    gates = 4

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True):
        super().__init__(input_size, hidden_size, bias)
        self.input_gate, self.forget_gate, self.output_gate = nn.Sigmoid(), nn.Sigmoid(), nn.Sigmoid()
        self.candidate, self.cell_tanh = nn.Tanh(), nn.Tanh()

    def init_state(self, batch_size: int, like: Tensor) -> tuple[Tensor, Tensor]:
        zeros = like.new_zeros(batch_size, self.hidden_size)
        return zeros, zeros.clone()

    @staticmethod
    def output(state: tuple[Tensor, Tensor]) -> Tensor:
        return state[0]

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        """One step: ``x`` is ``(B, I)``, ``state`` is ``(h, c)``, each ``(B, H)``; returns the new ``(h, c)``."""
        if not isinstance(state, (tuple, list)) or len(state) != 2:
            raise ValueError("LSTMCell expects state=(h, c); use cell.init_state(batch_size, x) for zeros")
        h, c = state
        self._check(x, h)
        gi, gh = self._affine(x, h)
        i, f, g, o = (gi + gh).chunk(4, dim=1)  # 4 x (B, H)
        i, f, o = self.input_gate(i), self.forget_gate(f), self.output_gate(o)
        g = self.candidate(g)
        c = f * c + i * g
        h = o * self.cell_tanh(c)
        return h, c


class GRUCell(_CellBase):
    """One GRU step, with PyTorch's gate order (reset, update, new).

    ``r = σ(·)``, ``z = σ(·)``, ``n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))``,
    ``h_t = (1 - z) ⊙ n + z ⊙ h_{t-1}``. Note that the reset gate multiplies the
    *recurrent* affine term including its bias, as cuDNN and PyTorch do.

    Example:
        >>> GRUCell(3, 4)(torch.randn(2, 3), torch.zeros(2, 4)).shape
        torch.Size([2, 4])
    """

    gates = 3

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True):
        super().__init__(input_size, hidden_size, bias)
        self.reset_gate, self.update_gate, self.candidate = nn.Sigmoid(), nn.Sigmoid(), nn.Tanh()

    def forward(self, x: Tensor, h: Tensor) -> Tensor:
        """One step: ``x`` is ``(B, I)``, ``h`` is ``(B, H)``; returns the new ``(B, H)`` state."""
        self._check(x, h)
        gi, gh = self._affine(x, h)
        i_r, i_z, i_n = gi.chunk(3, dim=1)  # 3 x (B, H)
        h_r, h_z, h_n = gh.chunk(3, dim=1)  # 3 x (B, H)
        r = self.reset_gate(i_r + h_r)
        z = self.update_gate(i_z + h_z)
        n = self.candidate(i_n + r * h_n)
        return (1 - z) * n + z * h


class Recurrent(nn.Module):
    """Unroll a cell over time: the whole of "an RNN layer" is this ``for`` loop.

    Batch-first like the rest of the book: ``x`` is ``(B, T, I)``. Returns the hidden
    state at every step, ``(B, T, H)``, and the final state (``h_T``, or ``(h_T, c_T)``
    for an LSTM). Unrolled in Python, so slow; use ``nn.RNN``/``nn.LSTM``/``nn.GRU`` to train.

    Args:
        cell: an :class:`RNNCell`, :class:`LSTMCell` or :class:`GRUCell`.

    Example:
        >>> layer = Recurrent(LSTMCell(3, 4))
        >>> outputs, (h, c) = layer(torch.randn(2, 5, 3))
        >>> outputs.shape
        torch.Size([2, 5, 4])
    """

    def __init__(self, cell: _CellBase):
        super().__init__()
        if not isinstance(cell, _CellBase):
            raise TypeError(f"Recurrent wraps an RNNCell, LSTMCell or GRUCell, got {type(cell).__name__}")
        self.cell = cell

    @property
    def hidden_size(self) -> int:
        return self.cell.hidden_size

    def forward(self, x: Tensor, state=None):
        """Run the cell over ``x`` of shape ``(B, T, I)`` from ``state`` (zeros by default)."""
        if x.dim() != 3:
            raise ValueError(f"Recurrent expects batch-first input (B, T, I), got shape {tuple(x.shape)}")
        if x.shape[1] == 0:
            raise ValueError("Recurrent got a sequence of length 0")
        if state is None:
            state = self.cell.init_state(x.shape[0], x)
        outputs = []
        for t in range(x.shape[1]):
            state = self.cell(x[:, t], state)
            outputs.append(self.cell.output(state))
        return torch.stack(outputs, dim=1), state  # (B, T, H)

    @torch.no_grad()
    def load_from_torch(self, theirs: nn.RNNBase) -> "Recurrent":
        """Copy the weights of a one-layer, one-direction ``nn.RNN``/``nn.LSTM``/``nn.GRU``; returns ``self``.

        The parameter names, shapes and gate order are PyTorch's, so this is a plain copy
        of ``weight_ih_l0``, ``weight_hh_l0``, ``bias_ih_l0`` and ``bias_hh_l0``.

        Example:
            >>> ref = nn.GRU(3, 4, batch_first=True)
            >>> ours = GRU(3, 4).load_from_torch(ref)
            >>> x = torch.randn(2, 5, 3)
            >>> torch.allclose(ours(x)[0], ref(x)[0], atol=1e-6)
            True
        """
        expected = {nn.RNN: RNNCell, nn.LSTM: LSTMCell, nn.GRU: GRUCell}.get(type(theirs))
        cell = self.cell
        if expected is None or not isinstance(cell, expected):
            raise TypeError(f"cannot copy {type(theirs).__name__} weights into a Recurrent({type(cell).__name__})")
        if theirs.num_layers != 1 or theirs.bidirectional or getattr(theirs, "proj_size", 0):
            raise ValueError("load_from_torch handles one layer, one direction, no projection")
        if isinstance(theirs, nn.RNN) and theirs.nonlinearity != "tanh":
            raise ValueError(f"nn.RNN(nonlinearity={theirs.nonlinearity!r}); the RNNCell here uses tanh")
        if (theirs.input_size, theirs.hidden_size) != (cell.input_size, cell.hidden_size):
            raise ValueError(f"sizes differ: theirs (I={theirs.input_size}, H={theirs.hidden_size}), "
                             f"ours (I={cell.input_size}, H={cell.hidden_size})")
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            mine, source = getattr(cell, name), getattr(theirs, f"{name}_l0", None)
            if (mine is None) != (source is None):
                raise ValueError(f"one of the two layers has no {name}: create both with the same bias=")
            if mine is not None:
                mine.copy_(source)
        return self


class RNN(Recurrent):
    """A one-layer vanilla RNN, batch-first: ``Recurrent(RNNCell(input_size, hidden_size))``."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True):
        super().__init__(RNNCell(input_size, hidden_size, bias))


class LSTM(Recurrent):
    """A one-layer LSTM, batch-first: ``Recurrent(LSTMCell(input_size, hidden_size))``."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True):
        super().__init__(LSTMCell(input_size, hidden_size, bias))


class GRU(Recurrent):
    """A one-layer GRU, batch-first: ``Recurrent(GRUCell(input_size, hidden_size))``."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True):
        super().__init__(GRUCell(input_size, hidden_size, bias))


@torch.no_grad()
def init_forget_gate_bias(module: nn.Module, value: float = 1.0) -> nn.Module:
    """Set the forget-gate bias of every LSTM in ``module`` to ``value`` (PyTorch starts it near 0).

    With a bias of 0 the forget gate starts half closed, ``σ(0) = 0.5``, so the cell state
    (and its gradient) halves at every step; a bias of 1 (Gers et al. 2000; Jozefowicz et
    al. 2015) starts it mostly open, ``σ(1) ≈ 0.73``. Works on ``nn.LSTM`` (all layers and
    directions), ``nn.LSTMCell`` and this module's :class:`LSTMCell`, wherever they sit in ``module``.
    The input-side bias gets ``value`` and the recurrent-side bias 0, so their sum is ``value``.

    Example:
        >>> lstm = init_forget_gate_bias(nn.LSTM(3, 4), 1.0)
        >>> lstm.bias_ih_l0[4:8].tolist(), lstm.bias_hh_l0[4:8].tolist()
        ([1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0])
    """
    found = False
    for sub in module.modules():
        if isinstance(sub, (nn.LSTM, nn.LSTMCell, LSTMCell)):
            h = sub.hidden_size
            for name, p in sub.named_parameters(recurse=False):
                if name.startswith("bias_"):
                    p[h:2 * h] = value if name.startswith("bias_ih") else 0.0  # gate order i, f, g, o
                    found = True
    if not found:
        raise ValueError(f"no LSTM with biases found in {type(module).__name__}")
    return module


def gradient_through_time(layer: nn.Module, x: Tensor) -> Tensor:
    """How much the last hidden state depends on each input: ``‖∂(Σ h_T)/∂x_t‖`` for every ``t``.

    Back-propagation through time as a measurement. ``layer`` is anything called as
    ``outputs, state = layer(x)`` with batch-first ``outputs`` of shape ``(B, T, H)``
    (our :class:`Recurrent`, or ``nn.RNN``/``nn.LSTM``/``nn.GRU`` with ``batch_first=True``).
    Vanishing gradients show up as values that shrink geometrically as ``t`` moves
    away from ``T``; exploding ones as values that grow.

    Args:
        layer: the recurrent layer.
        x: inputs of shape ``(B, T, I)``; not modified.

    Returns:
        ``(T,)``: the gradient norm for each input step, averaged over the batch.

    Example:
        >>> g = gradient_through_time(nn.RNN(3, 8, batch_first=True), torch.randn(4, 20, 3))
        >>> g.shape
        torch.Size([20])
    """
    if x.dim() != 3:
        raise ValueError(f"gradient_through_time expects (B, T, I) inputs, got {tuple(x.shape)}")
    x = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        outputs, _ = layer(x)
        if outputs.dim() != 3 or outputs.shape[:2] != x.shape[:2]:
            raise ValueError(f"layer must return batch-first outputs (B, T, H); got {tuple(outputs.shape)} "
                             "(for nn.RNN/LSTM/GRU pass batch_first=True)")
        (grad,) = torch.autograd.grad(outputs[:, -1].sum(), x)
    return grad.norm(dim=2).mean(dim=0)  # (B, T, I) -> (T,)


__all__ = [
    "RNNCell", "LSTMCell", "GRUCell", "Recurrent", "RNN", "LSTM", "GRU",
    "gradient_through_time", "init_forget_gate_bias",
]
