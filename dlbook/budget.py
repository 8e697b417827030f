"""The budget switch: one environment variable decides how big every notebook runs.

``DLBOOK_BUDGET=full`` (the default) is what readers run and what the book's
numbers come from; ``DLBOOK_BUDGET=smoke`` shrinks data sizes and epochs so CI
can execute every notebook in minutes. Smoke changes sizes, never which code runs.

Chapters choose sizes with ``run.pick(full=..., smoke=...)`` on the :class:`~dlbook.notebook.Run`
that :func:`dlbook.notebook.setup` returns; this module only reads the switch.

Example:
    >>> from dlbook import budget
    >>> budget.current() in ("full", "smoke")
    True
"""

from __future__ import annotations

import os

ENV_VAR = "DLBOOK_BUDGET"
BUDGETS = ("full", "smoke")


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
