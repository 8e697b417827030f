"""The budget switch: one environment variable decides how big every notebook runs.

``DLBOOK_BUDGET=full`` (the default) is what readers run and what the book's
numbers come from; ``DLBOOK_BUDGET=smoke`` shrinks data sizes and epochs so CI
can execute every notebook in minutes. Smoke changes sizes, never which code runs.

Example:
    >>> from dlbook import budget
    >>> epochs = budget.pick(full=12, smoke=1)
"""

from __future__ import annotations

import os
from typing import TypeVar

ENV_VAR = "DLBOOK_BUDGET"
BUDGETS = ("full", "smoke")

T = TypeVar("T")


def current() -> str:
    """Return the active budget, ``"full"`` or ``"smoke"``.

    Raises:
        ValueError: if ``DLBOOK_BUDGET`` holds anything else.
    """
    value = os.environ.get(ENV_VAR, "full").strip().lower() or "full"
    if value not in BUDGETS:
        raise ValueError(
            f"{ENV_VAR}={value!r} is not a budget; set it to 'full' (real training, "
            f"the default) or 'smoke' (tiny sizes for CI), e.g. `export {ENV_VAR}=smoke`."
        )
    return value


def is_smoke() -> bool:
    """True when running in the smoke budget."""
    return current() == "smoke"


def pick(full: T, smoke: T) -> T:
    """Return ``full`` or ``smoke`` according to the active budget.

    Example:
        >>> n_train = pick(full=60_000, smoke=2_000)
    """
    return smoke if is_smoke() else full
