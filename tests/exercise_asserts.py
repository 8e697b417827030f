"""The one assertion the exercise-check tests share: a check rejected an answer and said why."""

from dlbook.exercises import NOT_YET, Check


def rejected(check: Check, *words: str) -> None:
    """The check failed and its message names each of ``words`` (case-insensitive)."""
    assert not check.passed, f"accepted a wrong answer:\n{check}"
    text = str(check).lower()
    assert NOT_YET in text
    for w in words:
        assert w.lower() in text, f"message does not mention {w!r}:\n{check}"
