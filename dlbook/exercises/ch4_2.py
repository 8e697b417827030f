"""Checks for the exercises of chapter 4.2 (SST-2 sentiment classification).

* :func:`check_last_states` and :func:`check_masked_max`: reading a padded batch of LSTM outputs
  correctly (the state after each sentence's last real word; the maximum over its real words),
  checked against running every sentence alone, without padding, through the same LSTM.
* :func:`check_f1`: the F1 score of the positive class, checked against scikit-learn.

Both sequence checks take the sentences to batch as token-id lists, e.g. SST-2 sentences encoded
with the chapter's vocabulary; without them they make random ones.

Example:
    >>> from dlbook.exercises import report
    >>> report(check_last_states(lambda out, lengths: out[:, -1]))  # doctest: +ELLIPSIS
    4.2 exercise 1 (the last real state): not correct yet
      - for sentences shorter than the longest in the batch, ...
        try: ...
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from dlbook.exercises import Check, Problem, attempt, run_check


def _batch(sentences: Sequence[Sequence[int]] | None, hidden: int = 6):
    """A padded batch of LSTM outputs and, per sentence, the outputs of the same LSTM run on it alone."""
    from dlbook.data.text import pad_batch

    g = torch.Generator().manual_seed(0)
    if sentences is None:
        sentences = [torch.randint(2, 50, (n,), generator=g).tolist() for n in (9, 3, 6, 1, 9, 4)]
    sentences = [list(s) for s in sentences if len(s) > 0]
    if len(sentences) < 2 or len({len(s) for s in sentences}) < 2:
        raise ValueError("the check needs at least two non-empty sentences of different lengths")
    vocab = max(max(s) for s in sentences) + 1
    torch.manual_seed(0)
    embedding, lstm = nn.Embedding(vocab, 8, padding_idx=0), nn.LSTM(8, hidden, batch_first=True)
    tokens, lengths = pad_batch(sentences)  # (B, T), (B,)
    with torch.no_grad():
        out, _ = lstm(embedding(tokens))  # (B, T, H): pads included, after each sentence's end
        alone = [lstm(embedding(torch.tensor([s])))[0][0] for s in sentences]  # each (len, H)
    return out, lengths, alone


def _call(fn, out, lengths, what):
    got = attempt(fn, out.clone(), lengths.clone(), what=f"{what}(outputs of shape {tuple(out.shape)}, lengths of shape {tuple(lengths.shape)})")
    if not isinstance(got, torch.Tensor) or tuple(got.shape) != (out.shape[0], out.shape[2]):
        shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
        return None, Problem(f"returns {shape}, expected ({out.shape[0]}, {out.shape[2]}): one vector per sentence")
    return got, None


def check_last_states(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                      sentences: Sequence[Sequence[int]] | None = None) -> Check:
    """Check ``fn(outputs (B, T, H), lengths (B,)) -> (B, H)``: each sentence's output at its last real word.

    Example:
        >>> pick = lambda out, lengths: out[torch.arange(len(out)), lengths - 1]
        >>> check_last_states(pick).passed
        True
    """

    def body(problems: list[Problem]) -> None:
        out, lengths, alone = _batch(sentences)
        got, problem = _call(fn, out, lengths, "last_states")
        if problem:
            problems.append(problem)
            return
        expected = torch.stack([a[-1] for a in alone])  # (B, H): the last step of each sentence run alone
        wrong = [i for i in range(len(alone)) if not torch.allclose(got[i], expected[i], atol=1e-6)]
        if not wrong:
            return
        short = [i for i in wrong if lengths[i] < lengths.max()]
        if torch.allclose(got, out[:, -1]):
            problems.append(Problem(
                f"for sentences shorter than the longest in the batch, out[:, -1] is the output after "
                f"{int(lengths.max() - lengths[short[0]])} padding steps, not after the sentence's last word "
                f"(sentence {short[0]}, {int(lengths[short[0]])} words)",
                "index each row at its own last word: out[torch.arange(B), lengths - 1]"))
        elif torch.allclose(got[lengths > 1], out[torch.arange(len(out)), lengths - 2][lengths > 1]):
            problems.append(Problem("it picks the word before the last one", "positions count from 0: the last is lengths - 1"))
        else:
            problems.append(Problem(f"sentences {wrong} get another vector than the same LSTM gives when the sentence "
                                    "runs alone", "out[torch.arange(B), lengths - 1]"))

    return run_check("4.2 exercise 1 (the last real state)", body)


def check_masked_max(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                     sentences: Sequence[Sequence[int]] | None = None) -> Check:
    """Check ``fn(outputs (B, T, H), lengths (B,)) -> (B, H)``: the element-wise maximum over each sentence's real steps.

    Example:
        >>> def pool(out, lengths):
        ...     real = torch.arange(out.shape[1])[None, :, None] < lengths[:, None, None]
        ...     return out.masked_fill(~real, float("-inf")).max(dim=1).values
        >>> check_masked_max(pool).passed
        True
    """

    def body(problems: list[Problem]) -> None:
        out, lengths, alone = _batch(sentences)
        got, problem = _call(fn, out, lengths, "masked_max")
        if problem:
            problems.append(problem)
            return
        expected = torch.stack([a.max(dim=0).values for a in alone])  # (B, H)
        if torch.allclose(got, expected, atol=1e-6):
            return
        real = torch.arange(out.shape[1])[None, :, None] < lengths[:, None, None]  # (B, T, 1)
        if torch.allclose(got, out.max(dim=1).values):
            problems.append(Problem("the maximum runs over the padding steps too: where the LSTM's output after the "
                                    "sentence is larger, the pooled vector comes from padding",
                                    "mask the padding before the max: out.masked_fill(~real, float('-inf'))"))
        elif torch.allclose(got, out.masked_fill(~real, 0.0).max(dim=1).values):
            problems.append(Problem("padding filled with 0 wins over units whose real outputs are all negative",
                                    "fill the padding with float('-inf'), not 0"))
        else:
            problems.append(Problem(f"differs from the maximum over each sentence run alone by up to "
                                    f"{(got - expected).abs().max():.3g}", "max over dim=1 of the masked outputs"))

    return run_check("4.2 exercise 2 (max-pooling over real words)", body)


def check_f1(fn: Callable[[torch.Tensor, torch.Tensor], float], predictions: torch.Tensor | None = None,
             targets: torch.Tensor | None = None) -> Check:
    """Check ``fn(predictions, targets) -> float``: F1 of the positive class (1), against scikit-learn.

    With no positive predictions (precision 0/0) the F1 is 0, as scikit-learn's ``zero_division=0``.
    ``predictions`` and ``targets`` (0/1 tensors of one shape), when given, are checked too, e.g. a
    real classifier's predictions on SST-2.

    Example:
        >>> def f1(pred, y):
        ...     tp = ((pred == 1) & (y == 1)).sum().item()
        ...     fp, fn = ((pred == 1) & (y == 0)).sum().item(), ((pred == 0) & (y == 1)).sum().item()
        ...     return 2 * tp / (2 * tp + fp + fn) if tp else 0.0
        >>> check_f1(f1).passed
        True
    """
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

    if (predictions is None) != (targets is None):
        raise ValueError("check_f1: pass both predictions and targets, or neither")
    if predictions is not None and (predictions.shape != targets.shape or predictions.dim() != 1):
        raise ValueError(f"check_f1: predictions {tuple(predictions.shape)} and targets {tuple(targets.shape)} "
                         "must be 1-D tensors of one length")

    def body(problems: list[Problem]) -> None:
        g = torch.Generator().manual_seed(0)
        y = (torch.rand(200, generator=g) < 0.3).long()
        cases = {"random predictions": (torch.rand(200, generator=g) < 0.4).long(),
                 "no positive predictions": torch.zeros(200, dtype=torch.long),
                 "mostly right predictions": torch.where(torch.rand(200, generator=g) < 0.85, y, 1 - y)}
        cases = {name: (pred, y) for name, pred in cases.items()}
        if predictions is not None:
            cases["the predictions you passed"] = (predictions.long(), targets.long())
        for name, (pred, y) in cases.items():
            got = attempt(fn, pred.clone(), y.clone(), what=f"f1 on {name}")
            try:
                got = float(got)
            except (TypeError, ValueError):
                problems.append(Problem(f"returns {type(got).__name__}, expected a number"))
                return
            expected = f1_score(y.numpy(), pred.numpy(), zero_division=0)
            if abs(got - expected) < 1e-6:
                continue
            others = {"the accuracy": accuracy_score(y, pred),
                      "the precision": precision_score(y, pred, zero_division=0),
                      "the recall": recall_score(y, pred, zero_division=0),
                      "the F1 of the negative class": f1_score(y, pred, pos_label=0, zero_division=0),
                      "the macro F1 (mean over both classes)": f1_score(y, pred, average="macro", zero_division=0)}
            what = next((k for k, v in others.items() if abs(got - v) < 1e-6), None)
            if got != got:  # NaN
                problems.append(Problem(f"on {name} it returns nan: precision is 0/0 there",
                                        "return 0.0 when there are no true positives"))
            elif what:
                problems.append(Problem(f"on {name} it returns {got:.4f}, which is {what}; the F1 of the positive "
                                        f"class is {expected:.4f}", "F1 = 2 P R / (P + R) = 2 TP / (2 TP + FP + FN)"))
            else:
                problems.append(Problem(f"on {name} it returns {got:.4f}, scikit-learn's f1_score gives {expected:.4f}",
                                        "F1 = 2 TP / (2 TP + FP + FN), with class 1 as positive"))
            return

    return run_check("4.2 exercise 3 (F1 of the positive class)", body)
