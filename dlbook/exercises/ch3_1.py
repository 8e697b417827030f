"""Checks for the exercises of chapter 3.1 (convolutional networks).

* :func:`check_lenet`: the "find the bug" exercise on the source article's LeNet-5 (no padding on
  C1, a flatten that expects 16*5*5, a sigmoid output), checked against ``dlbook``'s LeNet-5 with
  the student's weights copied in.
* :func:`check_conv_output_size`: the output-size formula, checked against the shapes
  ``F.conv2d`` and ``F.max_pool2d`` actually produce.
* :func:`check_sobel_magnitude`: an edge filter on real images, checked against SciPy's
  ``ndimage.sobel``.

Example:
    >>> from dlbook.exercises import report
    >>> report(check_conv_output_size(lambda size, kernel, stride=1, padding=0:
    ...        (size + 2 * padding - kernel) // stride + 1))
    3.1 exercise 2 (output size): correct
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dlbook.exercises import Check, Problem, StudentError, attempt, run_check

LENET_FIX = ("without padding, C1 turns 28x28 into 24x24 (28 - 5 + 1), S2 gives 12, C3 8, S4 4: 16*4*4 = 256 "
             "features per image, not the 16*5*5 = 400 the flatten and fc1 expect. Give C1 padding=2, which "
             "gives LeNet-5's 1998 shapes on 28x28 images, and flatten per image (x.flatten(1) or "
             "x.view(x.shape[0], -1)), never view(-1, ...)")


def _reference_lenet() -> nn.Module:
    from dlbook.models.lenet import LeNet5

    return LeNet5()


def check_lenet(model_cls: Callable[[], nn.Module]) -> Check:
    """Check a LeNet-5 class for 1x28x28 images and 10 classes (built as ``model_cls()``).

    It must return one row of 10 **logits** per image for any batch size, each row depending on
    its own image only, have LeNet-5's parameter shapes (61,706 parameters), and, with its weights
    copied into ``dlbook.models.lenet.LeNet5``, compute the same outputs.

    Example:
        >>> from dlbook.models.lenet import LeNet5
        >>> check_lenet(LeNet5).passed
        True
    """

    def body(problems: list[Problem]) -> None:
        model = attempt(model_cls, what=f"{getattr(model_cls, '__name__', 'the class')}()")
        if not isinstance(model, nn.Module):
            problems.append(Problem(f"calling the class gave a {type(model).__name__}, not an nn.Module",
                                    "pass the class itself, e.g. check_lenet(LeNet)"))
            return
        model.eval()
        g = torch.Generator().manual_seed(0)
        outputs = {}
        for batch in (8, 25):
            x = torch.randn(batch, 1, 28, 28, generator=g)  # (B, 1, 28, 28)
            try:
                with torch.no_grad():
                    out = attempt(model, x, what=f"the forward pass on a batch of shape {tuple(x.shape)}")
            except StudentError as err:
                problems.append(Problem(err.problem.what, LENET_FIX))
                continue
            if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[1] != 10:
                shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                problems.append(Problem(f"for a batch of {batch} images the model returns {shape}, "
                                        f"expected ({batch}, 10): one row of 10 class scores per image"))
                return
            if out.shape[0] != batch:
                problems.append(Problem(
                    f"for a batch of {batch} images the model returns {out.shape[0]} rows: "
                    f"a flatten with view(-1, ...) re-cut the batch's features into rows of 400, mixing images "
                    f"(here {batch} x 256 numbers made {out.shape[0]} rows without an error)",
                    "flatten per image, x.flatten(1), so that a wrong size fails loudly instead"))
                continue
            outputs[batch] = (x, out)
        if problems:
            return
        x, out = outputs[25]
        with torch.no_grad():
            alone = torch.cat([model(x[i:i + 1]) for i in (0, 7, 24)])
        if not torch.allclose(alone, out[[0, 7, 24]], atol=1e-5):
            problems.append(Problem("an image's scores change with the other images of its batch",
                                    "flatten per image, x.flatten(1); no batch statistics in eval mode"))
        if bool(((out >= 0) & (out <= 1)).all()):
            sums_to_one = torch.allclose(out.sum(1), torch.ones(len(out)), atol=1e-4)
            problems.append(Problem(
                "all outputs lie in [0, 1]" + (" and each row sums to 1 (a softmax)" if sums_to_one else
                                               " (a sigmoid?)") + ": the output layer must return logits",
                "return self.fc3(x) as it is; nn.CrossEntropyLoss applies log-softmax inside the loss, and "
                "ten sigmoids are not a distribution over ten classes"))
        reference = _reference_lenet().eval()
        ours = [tuple(p.shape) for p in model.parameters()]
        theirs = [tuple(p.shape) for p in reference.parameters()]
        n_ours, n_theirs = sum(p.numel() for p in model.parameters()), sum(p.numel() for p in reference.parameters())
        if ours != theirs:
            problems.append(Problem(
                f"the parameters have shapes {ours} ({n_ours:,} in all); LeNet-5 with the 1998 shapes "
                f"has {theirs} ({n_theirs:,})", "C1 5x5 with padding 2, C3 5x5, then 400 -> 120 -> 84 -> 10"))
            return
        if problems:
            return
        with torch.no_grad():
            for mine, ref in zip(model.parameters(), reference.parameters()):
                ref.copy_(mine)
            x8, out8 = outputs[8]
            expected = reference(x8)
        if not torch.allclose(out8, expected, atol=1e-5):
            problems.append(Problem(
                f"with the same weights it computes other outputs than LeNet-5 (ReLU, 2x2 max-pool, C1 "
                f"padded by 2): largest difference {(out8 - expected).abs().max():.3g}",
                "apply ReLU after C1, C3, fc1 and fc2, max-pool 2x2 after each convolution, nothing after fc3"))

    return run_check("3.1 exercise 1 (the article's LeNet-5)", body)


CONV_CASES = [(28, 5, 1, 0), (28, 5, 1, 2), (14, 5, 1, 0), (32, 3, 1, 1), (32, 3, 2, 1), (17, 3, 2, 0),
              (13, 3, 2, 0), (28, 2, 2, 0), (7, 7, 1, 3), (9, 4, 3, 1), (224, 11, 4, 2), (5, 5, 1, 0)]


def _measured_size(size: int, kernel: int, stride: int, padding: int) -> int:
    x = torch.zeros(1, 1, size, size)
    return F.conv2d(x, torch.zeros(1, 1, kernel, kernel), stride=stride, padding=padding).shape[-1]


def check_conv_output_size(fn: Callable[..., int]) -> Check:
    """Check ``fn(size, kernel, stride=1, padding=0)`` against the sizes ``F.conv2d`` produces.

    Example:
        >>> check_conv_output_size(lambda size, kernel, stride=1, padding=0: size - kernel + 1).passed
        False
    """

    def body(problems: list[Problem]) -> None:
        for size, kernel, stride, padding in CONV_CASES:
            got = attempt(fn, size, kernel, stride=stride, padding=padding,
                          what=f"conv_output_size({size}, {kernel}, stride={stride}, padding={padding})")
            expected = _measured_size(size, kernel, stride, padding)
            if isinstance(got, float) or not isinstance(got, (int, np.integer)):
                problems.append(Problem(f"returns {got!r} ({type(got).__name__}), a size must be an int",
                                        "divide with // (floor division), not /"))
                return
            if got != expected:
                fix = "the formula is (size + 2 * padding - kernel) // stride + 1"
                if got == expected - 1:
                    fix = "you are one short: count the first position of the kernel too (+ 1)"
                elif padding and got == (size + padding - kernel) // stride + 1:
                    fix = "padding is added on both sides: + 2 * padding"
                problems.append(Problem(
                    f"conv_output_size({size}, {kernel}, stride={stride}, padding={padding}) returns {got}, "
                    f"but F.conv2d gives an output of size {expected}", fix))
                return
        pooled = F.max_pool2d(torch.zeros(1, 1, 28, 28), 2).shape[-1]
        got = attempt(fn, 28, 2, stride=2, what="conv_output_size(28, 2, stride=2)")
        if got != pooled:
            problems.append(Problem(f"for a 2x2 max-pool with stride 2 it gives {got}, F.max_pool2d gives {pooled}"))

    return run_check("3.1 exercise 2 (output size)", body)


def sobel_reference(images: torch.Tensor) -> np.ndarray:
    """Gradient magnitude of ``uint8 (N, H, W)`` images scaled to [0, 1], by SciPy, zero padding."""
    from scipy import ndimage

    x = images.numpy().astype(np.float64) / 255
    gx = np.stack([ndimage.sobel(im, axis=1, mode="constant", cval=0.0) for im in x])
    gy = np.stack([ndimage.sobel(im, axis=0, mode="constant", cval=0.0) for im in x])
    return np.hypot(gx, gy)


def check_sobel_magnitude(fn: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor) -> Check:
    """Check ``fn(images)``: the Sobel gradient magnitude of ``uint8 (N, H, W)`` images, against SciPy.

    ``fn`` scales pixels to [0, 1], convolves with the Sobel x and y kernels with zero padding 1
    (so the output keeps the size ``(N, H, W)``) and returns ``sqrt(gx**2 + gy**2)``.

    Example:
        >>> images = torch.randint(0, 256, (2, 8, 8), dtype=torch.uint8)
        >>> check_sobel_magnitude(lambda im: im.float(), images).passed
        False
    """
    if not isinstance(images, torch.Tensor) or images.dim() != 3 or images.dtype != torch.uint8:
        raise ValueError(f"check_sobel_magnitude needs uint8 images of shape (N, H, W), got "
                         f"{getattr(images, 'dtype', type(images))} {tuple(getattr(images, 'shape', ()))}")

    def body(problems: list[Problem]) -> None:
        got = attempt(fn, images.clone(), what=f"your function on images of shape {tuple(images.shape)}")
        if not isinstance(got, torch.Tensor):
            problems.append(Problem(f"returns a {type(got).__name__}, expected a tensor"))
            return
        got = got.detach().to(torch.float64).squeeze(1) if got.dim() == 4 else got.detach().to(torch.float64)
        if tuple(got.shape) != tuple(images.shape):
            problems.append(Problem(f"returns shape {tuple(got.shape)} for images of shape {tuple(images.shape)}",
                                    "pad by 1 (padding=1) so that a 3x3 kernel keeps the image size"))
            return
        expected = torch.from_numpy(sobel_reference(images))
        if torch.allclose(got, expected, atol=1e-4):
            return
        if torch.allclose(got, 255 * expected, rtol=1e-3, atol=1e-2):
            problems.append(Problem("the values are 255 times too large", "scale the pixels to [0, 1] first"))
        else:
            problems.append(Problem(
                f"differs from SciPy's Sobel magnitude by up to {(got - expected).abs().max():.3g}",
                "Sobel x = [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], Sobel y its transpose; magnitude "
                "sqrt(gx**2 + gy**2) of both, on images / 255 with zero padding 1"))

    return run_check("3.1 exercise 3 (edges of real images)", body)
