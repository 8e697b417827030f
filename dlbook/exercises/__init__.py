"""Automatic checks for the book's exercises: one module per chapter, one small result type.

Each check takes the student's object (a function, a module class, a number), tests properties
of it against a reference computed inside the check (PyTorch's own layers, the chapter's
formulas, SciPy, scikit-learn), never against a stored answer, and returns a :class:`Check`:
either "correct", or each problem found with what to try. :func:`report` prints it.

**Checks print, they never raise.** A check that finds a problem, or whose call into the
student's code raises (a skeleton still holding ``raise NotImplementedError``, a shape
error), reports it as a problem. So a student notebook, whose solutions are removed, still
runs from top to bottom, and every check cell says "not correct yet" and why; a check cell
needs no ``raises-exception`` tag.

Example:
    >>> from dlbook.exercises import Check, Problem, report
    >>> report(Check("warm-up", [Problem("returns 3, expected 4", "add one more")]))
    warm-up: not correct yet
      - returns 3, expected 4
        try: add one more
    >>> report(Check("warm-up", []))
    warm-up: correct
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

CORRECT = "correct"
NOT_YET = "not correct yet"


@dataclass(frozen=True)
class Problem:
    """One thing that is wrong (``what``) and what to try (``fix``)."""

    what: str
    fix: str = ""


@dataclass
class Check:
    """The result of one exercise's check: ``passed`` when no problem was found."""

    exercise: str
    problems: list[Problem] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        if self.passed:
            return f"{self.exercise}: {CORRECT}"
        lines = [f"{self.exercise}: {NOT_YET}"]
        for p in self.problems:
            lines.append(f"  - {p.what}")
            if p.fix:
                lines.append(f"    try: {p.fix}")
        return "\n".join(lines)

    @property
    def message(self) -> str:
        """All problems and fixes as one string (what :func:`report` prints)."""
        return str(self)


def report(check: Check) -> None:
    """Print a check's verdict: ``correct``, or ``not correct yet`` with each problem and what to try.

    Returns nothing, so a ``report(...)`` on a cell's last line prints once.

    Example:
        >>> report(Check("3.1 exercise 2", [Problem("wrong size", "use the formula")]))
        3.1 exercise 2: not correct yet
          - wrong size
            try: use the formula
    """
    if not isinstance(check, Check):
        raise TypeError(f"report() takes the Check a check_... function returns, got {type(check).__name__}; "
                        "call it as report(check_something(your_answer))")
    print(check)


class StudentError(Exception):
    """The student's code raised: carries a :class:`Problem` that says where and what."""

    def __init__(self, problem: Problem):
        super().__init__(problem.what)
        self.problem = problem


def attempt(fn: Callable, *args: Any, what: str = "your code", **kwargs: Any) -> Any:
    """Call the student's ``fn``; turn any exception into a :class:`StudentError` with a readable problem.

    Example:
        >>> def skeleton(x):
        ...     raise NotImplementedError
        >>> try:
        ...     attempt(skeleton, 1, what="skeleton(1)")
        ... except StudentError as e:
        ...     print(e.problem.what)
        skeleton(1) is not written yet: it raised NotImplementedError
    """
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        raise StudentError(Problem(f"{what} is not written yet: it raised NotImplementedError",
                                   "replace the `raise NotImplementedError` with your code")) from None
    except Exception as exc:  # noqa: BLE001 - any failure of the student's code is a finding, not a crash
        last = traceback.extract_tb(exc.__traceback__)[-1]
        where = f" (in {last.name}, line {last.lineno})" if last else ""
        raise StudentError(Problem(f"{what} raised {type(exc).__name__}{where}: {exc}",
                                   "run it on the inputs shown and read the error")) from None


def run_check(exercise: str, body: Callable[[list[Problem]], None]) -> Check:
    """Run ``body(problems)``, which appends problems; a :class:`StudentError` ends it with its problem.

    Example:
        >>> def body(problems):
        ...     if attempt(abs, -2, what="abs(-2)") != 2:
        ...         problems.append(Problem("abs is wrong"))
        >>> run_check("demo", body).passed
        True
    """
    problems: list[Problem] = []
    try:
        body(problems)
    except StudentError as err:
        problems.append(err.problem)
    return Check(exercise, problems)


__all__ = ["Check", "Problem", "StudentError", "attempt", "report", "run_check", "CORRECT", "NOT_YET"]
