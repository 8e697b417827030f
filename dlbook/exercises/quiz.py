"""Concept quizzes: JupyterQuiz questions written inline as Python data, with a static fallback.

:func:`quiz` checks the questions (each has exactly the fields JupyterQuiz reads, at least one
correct answer), shows them with ``jupyterquiz.display_quiz`` and, above it, the same questions
as plain HTML with the answers folded in a ``<details>``. A small script hides that text once
the interactive quiz has drawn itself, so a page whose JavaScript does not run (a static
viewer, a reader without JavaScript) still shows every question and answer.

Example:
    >>> questions = [{"question": "Which loss for one-of-K classification?", "type": "multiple_choice",
    ...               "answers": [{"answer": "cross-entropy on logits", "correct": True, "feedback": "Yes."},
    ...                           {"answer": "MSE on sigmoids", "correct": False, "feedback": "No."}]}]
    >>> check_questions(questions)
    >>> print(fallback_html(questions, "q1")[:51])
    <div class="dlbook-quiz-fallback" id="q1-fallback">
"""

from __future__ import annotations

import html
import re

CHOICE_TYPES = ("multiple_choice", "many_choice")


def check_questions(questions: list[dict]) -> None:
    """Raise ``ValueError`` naming the question and field that JupyterQuiz could not use.

    Example:
        >>> check_questions([{"question": "?", "type": "multiple_choice", "answers": []}])
        Traceback (most recent call last):
        ...
        ValueError: quiz question 1 ('?'): needs a non-empty list of answers
    """
    if not isinstance(questions, list) or not questions:
        raise ValueError("quiz() needs a non-empty list of question dicts (JupyterQuiz's format)")
    for n, q in enumerate(questions, 1):
        label = f"quiz question {n} ({str(q.get('question', ''))[:40]!r})" if isinstance(q, dict) else f"quiz question {n}"
        if not isinstance(q, dict) or not isinstance(q.get("question"), str) or not q["question"].strip():
            raise ValueError(f"{label}: needs a 'question' string")
        if q.get("type") not in CHOICE_TYPES:
            raise ValueError(f"{label}: 'type' must be one of {CHOICE_TYPES}, got {q.get('type')!r}")
        answers = q.get("answers")
        if not isinstance(answers, list) or not answers:
            raise ValueError(f"{label}: needs a non-empty list of answers")
        for a in answers:
            if not isinstance(a, dict) or not isinstance(a.get("answer"), str) or not isinstance(a.get("correct"), bool):
                raise ValueError(f"{label}: every answer needs an 'answer' string and a 'correct' True/False, got {a!r}")
        n_correct = sum(a["correct"] for a in answers)
        if n_correct == 0:
            raise ValueError(f"{label}: no answer is marked correct")
        if q["type"] == "multiple_choice" and n_correct != 1:
            raise ValueError(f"{label}: a multiple_choice question has exactly one correct answer "
                             f"({n_correct} are marked); use type 'many_choice' for several")


def fallback_html(questions: list[dict], quiz_id: str) -> str:
    """The questions as plain HTML, answers and feedback folded in a ``<details>``."""
    esc = html.escape
    items, keys = [], []
    for q in questions:
        options = "".join(f"<li>{esc(a['answer'])}</li>" for a in q["answers"])
        kind = " (one or more answers)" if q["type"] == "many_choice" else ""
        items.append(f"<li><p>{esc(q['question'])}{kind}</p><ul>{options}</ul></li>")
        right = "; ".join(esc(a["answer"]) + (f" ({esc(a['feedback'])})" if a.get("feedback") else "")
                          for a in q["answers"] if a["correct"])
        keys.append(f"<li>{right}</li>")
    return (f'<div class="dlbook-quiz-fallback" id="{quiz_id}-fallback">'
            f"<p><em>The quiz as text (the interactive version needs JavaScript):</em></p>"
            f"<ol>{''.join(items)}</ol>"
            f"<details><summary>Answers</summary><ol>{''.join(keys)}</ol></details></div>")


def _hide_fallback_js(quiz_id: str) -> str:
    """Hide the fallback once JupyterQuiz has drawn a question into its container (polls for 10 s)."""
    return (f"(function () {{ var tries = 0; (function poll() {{"
            f" var box = document.getElementById('{quiz_id}');"
            f" var fallback = document.getElementById('{quiz_id}-fallback');"
            f" if (box && fallback && box.querySelector('.Quiz')) {{ fallback.style.display = 'none'; return; }}"
            f" if (++tries < 50) {{ setTimeout(poll, 200); }} }})(); }})();")


def quiz(questions: list[dict], shuffle_answers: bool = False) -> None:
    """Show a JupyterQuiz quiz of inline ``questions``, with the static fallback above it.

    Args:
        questions: JupyterQuiz's question dicts: ``question``, ``type`` (``multiple_choice`` or
            ``many_choice``), ``answers`` (each ``answer``, ``correct``, optional ``feedback``).
        shuffle_answers: JupyterQuiz's option; off, so the page and its fallback list answers alike.
    """
    from IPython.display import HTML, Javascript, display
    from IPython.utils.capture import capture_output
    from jupyterquiz import display_quiz

    check_questions(questions)
    with capture_output(display=True) as captured:
        display_quiz(questions, shuffle_answers=shuffle_answers)
    html_out = next((o.data["text/html"] for o in captured.outputs if "text/html" in o.data), "")
    found = re.search(r'<div id="([A-Za-z]+)"', html_out)
    if not found:
        raise RuntimeError("jupyterquiz.display_quiz produced no quiz container; check the installed "
                           "jupyterquiz version (the book pins 2.9.6.4)")
    quiz_id = found.group(1)
    display(HTML(fallback_html(questions, quiz_id)))
    for out in captured.outputs:
        display(out.data, raw=True)
    display(Javascript(_hide_fallback_js(quiz_id)))
