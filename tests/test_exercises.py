"""Every exercise check accepts a correct answer and rejects wrong ones, saying what is wrong.

The correct answers here are written independently of the exercise notebooks' solutions (those are
checked by tests/test_student.py); the wrong ones are the source article's code and the usual slips.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlbook.exercises import Check, Problem, attempt, report, run_check
from dlbook.exercises import ch3_1, ch3_2, ch3_3, ch4_2
from dlbook.exercises.quiz import check_questions, fallback_html
from exercise_asserts import rejected  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")




# --------------------------------------------------------------------------- the checker itself

def test_report_prints_verdict_and_fixes(capsys):
    report(Check("ex", [Problem("it is 3", "make it 4")]))
    assert capsys.readouterr().out.splitlines() == ["ex: not correct yet", "  - it is 3", "    try: make it 4"]
    report(Check("ex"))
    assert capsys.readouterr().out == "ex: correct\n"
    with pytest.raises(TypeError, match="report"):
        report("correct")


def test_student_exceptions_become_problems_not_crashes():
    def broken(x):
        return x[10]

    check = run_check("ex", lambda problems: attempt(broken, [1], what="broken([1])"))
    rejected(check, "broken([1]) raised IndexError")
    check = run_check("ex", lambda problems: attempt(lambda: (_ for _ in ()).throw(NotImplementedError())))
    rejected(check, "not written yet")


# --------------------------------------------------------------------------- 3.1

class ArticleLeNet(nn.Module):
    """The source article's LeNet-5: no padding on C1, view(-1, 16*5*5), sigmoid output."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 6, 5), nn.Conv2d(6, 16, 5)
        self.fc1, self.fc2, self.fc3 = nn.Linear(400, 120), nn.Linear(120, 84), nn.Linear(84, 10)

    def body(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        return F.max_pool2d(F.relu(self.conv2(x)), 2)

    def head(self, x):
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))

    def forward(self, x):
        return torch.sigmoid(self.head(self.body(x).view(-1, 16 * 5 * 5)))


class PaddedLeNet(ArticleLeNet):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)

    def forward(self, x):
        return self.head(self.body(x).flatten(1))


class PaddedSigmoidLeNet(PaddedLeNet):
    def forward(self, x):
        return torch.sigmoid(super().forward(x))


class TanhLeNet(PaddedLeNet):
    def forward(self, x):
        x = F.max_pool2d(torch.tanh(self.conv1(x)), 2)
        x = F.max_pool2d(torch.tanh(self.conv2(x)), 2)
        return self.head(x.flatten(1))


def test_lenet_check_accepts_the_repair_and_dlbooks_lenet():
    from dlbook.models.lenet import LeNet5

    assert ch3_1.check_lenet(PaddedLeNet).passed
    assert ch3_1.check_lenet(LeNet5).passed


def test_lenet_check_rejects_the_articles_version_naming_shape_and_mixed_batch():
    check = ch3_1.check_lenet(ArticleLeNet)
    rejected(check, "16*4*4 = 256", "padding=2", "returns 16 rows", "mixing images")


def test_lenet_check_rejects_sigmoid_outputs_and_other_activations():
    rejected(ch3_1.check_lenet(PaddedSigmoidLeNet), "logits")
    rejected(ch3_1.check_lenet(TanhLeNet), "same weights")


def test_conv_output_size_check():
    assert ch3_1.check_conv_output_size(lambda s, k, stride=1, padding=0: (s + 2 * padding - k) // stride + 1).passed
    rejected(ch3_1.check_conv_output_size(lambda s, k, stride=1, padding=0: (s + 2 * padding - k) / stride + 1), "int")
    rejected(ch3_1.check_conv_output_size(lambda s, k, stride=1, padding=0: (s - k) // stride + 1), "F.conv2d gives")
    rejected(ch3_1.check_conv_output_size(lambda s, k, stride=1, padding=0: (s + 2 * padding - k) // stride), "one short")


def _sobel(images, scale=255.0, padding=1):
    x = images.double().div(scale).unsqueeze(1)
    kx = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=torch.float64)
    g = F.conv2d(x, torch.stack([kx, kx.T]).unsqueeze(1), padding=padding)
    return g.pow(2).sum(1).sqrt()


def test_sobel_check_against_scipy():
    images = torch.randint(0, 256, (3, 12, 12), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    assert ch3_1.check_sobel_magnitude(_sobel, images).passed
    rejected(ch3_1.check_sobel_magnitude(lambda im: _sobel(im, scale=1.0), images), "255 times")
    rejected(ch3_1.check_sobel_magnitude(lambda im: _sobel(im, padding=0), images), "padding=1")
    with pytest.raises(ValueError, match="uint8"):
        ch3_1.check_sobel_magnitude(_sobel, images.float())


# --------------------------------------------------------------------------- 3.2

class ArticleRNN(nn.Module):
    def __init__(self, input_size, hidden_size, output_size):
        super().__init__()
        self.i2h = nn.Linear(input_size + hidden_size, hidden_size)
        self.i2o = nn.Linear(input_size + hidden_size, output_size)

    def forward(self, x, hidden):
        combined = torch.cat((x, hidden), 1)
        return self.i2o(combined), self.i2h(combined)


class TanhOnlyRNN(ArticleRNN):
    def forward(self, x, hidden):
        combined = torch.cat((x, hidden), 1)
        return self.i2o(combined), torch.tanh(self.i2h(combined))


class ElmanRNN(nn.Module):
    def __init__(self, input_size, hidden_size, output_size):
        super().__init__()
        self.i2h, self.readout = nn.Linear(input_size + hidden_size, hidden_size), nn.Linear(hidden_size, output_size)

    def forward(self, x, hidden):
        hidden = torch.tanh(self.i2h(torch.cat((x, hidden), 1)))
        return self.readout(hidden), hidden


def test_rnn_check_accepts_a_correct_cell_under_any_output_name():
    assert ch3_2.check_rnn_cell(ElmanRNN).passed


def test_rnn_check_rejects_the_articles_cell_naming_tanh_unbounded_state_and_i2o():
    rejected(ch3_2.check_rnn_cell(ArticleRNN), "no tanh", "unbounded", "by i2o", "previous state")
    check = ch3_2.check_rnn_cell(TanhOnlyRNN)
    rejected(check, "previous state")
    assert "unbounded" not in str(check)


def _lstm_step(x, h, c, W_ih, W_hh, b_ih, b_hh, order=(0, 1, 2, 3), cell_tanh=True):
    gates = (x @ W_ih.T + b_ih + h @ W_hh.T + b_hh).chunk(4, dim=1)
    i, f, g, o = (gates[k] for k in order)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * (torch.tanh(c) if cell_tanh else c), c


def test_lstm_step_check_against_lstmcell():
    assert ch3_2.check_lstm_step(_lstm_step).passed
    rejected(ch3_2.check_lstm_step(lambda *a: _lstm_step(*a, order=(0, 1, 3, 2))), "order i, f, o, g")
    rejected(ch3_2.check_lstm_step(lambda *a: _lstm_step(*a, cell_tanh=False)), "tanh of the cell state")


def _total(grads):
    return math.sqrt(sum(float((g ** 2).sum()) for g in grads))


def test_clip_check_against_clip_grad_norm():
    assert ch3_2.check_clip_grad_norm(lambda gs, m: [g * min(1.0, m / (_total(gs) + 1e-6)) for g in gs]).passed
    rejected(ch3_2.check_clip_grad_norm(lambda gs, m: [g * m / _total(gs) for g in gs]), "below max_norm")
    rejected(ch3_2.check_clip_grad_norm(lambda gs, m: [g * min(1.0, m / g.norm().item()) for g in gs]), "point elsewhere")


# --------------------------------------------------------------------------- 3.3

class ArticleMHA(nn.Module):
    def __init__(self, d_model, num_heads, correct=False):
        super().__init__()
        self.h, self.d_k, self.correct = num_heads, d_model // num_heads, correct
        self.W_q, self.W_k, self.W_v, self.W_o = (nn.Linear(d_model, d_model) for _ in range(4))

    def split(self, x):
        B, T, D = x.shape
        if self.correct:
            return x.view(B, T, self.h, self.d_k).transpose(1, 2)  # (B, H, T, d_k)
        return x.view(B, self.h, T, self.d_k)  # the article's

    def forward(self, Q, K, V, mask=None):
        B, T, D = Q.shape
        q, k, v = self.split(self.W_q(Q)), self.split(self.W_k(K)), self.split(self.W_v(V))
        scores = q @ k.transpose(-2, -1) / np.sqrt(self.d_k)
        if mask is not None:
            scores = scores.masked_fill(mask == 0, -1e9)
        out = scores.softmax(-1) @ v  # (B, H, T, d_k)
        out = out.transpose(1, 2).reshape(B, T, D) if self.correct else out.reshape(B, T, D)
        return self.W_o(out), scores.softmax(-1)


def test_mha_check_accepts_the_correct_split_and_rejects_the_articles():
    assert ch3_3.check_multihead_attention(lambda d, h: ArticleMHA(d, h, correct=True)).passed
    rejected(ch3_3.check_multihead_attention(ArticleMHA), "nn.MultiheadAttention", "mix positions",
             "padding", "view(B, T, H, d_k).transpose(1, 2)")


def _attention(q, k, v, mask=None, scale=True, dim=-1, invert=False):
    scores = q @ k.transpose(-2, -1) / (math.sqrt(q.shape[-1]) if scale else 1.0)
    if mask is not None:
        scores = scores.masked_fill(mask if invert else ~mask, float("-inf"))
    return (scores.softmax(dim) @ v).nan_to_num()


def test_attention_check_against_sdpa():
    assert ch3_3.check_attention(_attention).passed
    rejected(ch3_3.check_attention(lambda q, k, v, mask=None: _attention(q, k, v, mask, scale=False)), "sqrt(d_k)")
    rejected(ch3_3.check_attention(lambda q, k, v, mask=None: _attention(q, k, v, mask, dim=-2)), "over the queries")
    rejected(ch3_3.check_attention(lambda q, k, v, mask=None: _attention(q, k, v, None)), "mask is ignored")
    rejected(ch3_3.check_attention(lambda q, k, v, mask=None: _attention(q, k, v, mask, invert=True)), "wrong way round")


def _pe(max_len, d_model, swap=False, concat=False):
    angle = torch.arange(max_len)[:, None] / 10000 ** (torch.arange(0, d_model, 2)[None, :] / d_model)
    sin, cos = torch.sin(angle), torch.cos(angle[:, : d_model // 2])
    if concat:
        return torch.cat([sin, cos], 1)
    pe = torch.zeros(max_len, d_model)
    pe[:, 0::2], pe[:, 1::2] = (torch.cos(angle), torch.sin(angle[:, : d_model // 2])) if swap else (sin, cos)
    return pe


def test_positional_encoding_check_against_numpy_formula():
    from dlbook.models.transformer import sinusoidal_positional_encoding

    assert ch3_3.check_positional_encoding(_pe).passed
    assert ch3_3.check_positional_encoding(sinusoidal_positional_encoding).passed
    rejected(ch3_3.check_positional_encoding(lambda L, d: _pe(L, d, swap=True)), "swapped")
    rejected(ch3_3.check_positional_encoding(lambda L, d: _pe(L, d, concat=True)), "interleave")


# --------------------------------------------------------------------------- 4.2

SENTENCES = [[5, 9, 2, 7], [3], [8, 8, 4, 2, 6, 9, 3], [4, 2]]


def test_last_states_check_against_sentences_run_alone():
    good = lambda out, lengths: out[torch.arange(len(out)), lengths - 1]  # noqa: E731
    assert ch4_2.check_last_states(good, SENTENCES).passed
    assert ch4_2.check_last_states(good).passed
    rejected(ch4_2.check_last_states(lambda out, lengths: out[:, -1], SENTENCES), "padding steps", "lengths - 1")
    rejected(ch4_2.check_last_states(lambda out, lengths: out[torch.arange(len(out)), lengths], SENTENCES), "IndexError")
    with pytest.raises(ValueError, match="different lengths"):
        ch4_2.check_last_states(good, [[1, 2], [3, 4]])


def test_masked_max_check_against_sentences_run_alone():
    def pool(out, lengths, fill=float("-inf")):
        real = torch.arange(out.shape[1])[None, :, None] < lengths[:, None, None]
        return out.masked_fill(~real, fill).max(dim=1).values

    assert ch4_2.check_masked_max(pool, SENTENCES).passed
    rejected(ch4_2.check_masked_max(lambda out, lengths: out.max(dim=1).values), "padding steps too")
    rejected(ch4_2.check_masked_max(lambda out, lengths: pool(out, lengths, 0.0)), "float('-inf')")


def test_f1_check_against_sklearn():
    def f1(pred, y):
        tp = int(((pred == 1) & (y == 1)).sum())
        return 2 * tp / (2 * tp + int(((pred == 1) & (y == 0)).sum()) + int(((pred == 0) & (y == 1)).sum())) if tp else 0.0

    assert ch4_2.check_f1(f1).passed
    y = torch.tensor([1, 0, 1, 1, 0])
    assert ch4_2.check_f1(f1, torch.tensor([1, 1, 0, 1, 0]), y).passed
    rejected(ch4_2.check_f1(lambda p, y: float((p == y).float().mean())), "the accuracy")
    with pytest.raises(ValueError, match="both"):
        ch4_2.check_f1(f1, torch.tensor([1, 0]))


# --------------------------------------------------------------------------- quiz data

QUESTION = {"question": "Q?", "type": "multiple_choice",
            "answers": [{"answer": "a", "correct": True, "feedback": "yes"}, {"answer": "b", "correct": False}]}


def test_quiz_questions_are_validated_with_the_question_named():
    check_questions([QUESTION])
    with pytest.raises(ValueError, match="no answer is marked correct"):
        check_questions([{**QUESTION, "answers": [{"answer": "a", "correct": False}]}])
    with pytest.raises(ValueError, match="exactly one correct"):
        check_questions([{**QUESTION, "answers": [{"answer": "a", "correct": True}, {"answer": "b", "correct": True}]}])
    with pytest.raises(ValueError, match="question 2"):
        check_questions([QUESTION, {**QUESTION, "type": "numeric"}])


def test_quiz_fallback_lists_questions_and_folds_answers():
    text = fallback_html([{**QUESTION, "question": "Is <b> escaped?"}], "abc")
    assert 'id="abc-fallback"' in text and "Is &lt;b&gt; escaped?" in text
    assert text.index("<details>") < text.index("a (yes)")
