"""dlbook.behaviour (CheckList-style tests, TextPredictor) and dlbook.widgets.

Also covers the text pipeline end to end, text -> tokens -> ids -> padded/packed
batch -> prediction: unknown words, empty strings, non-ASCII text, and that a
sentence gets the same prediction alone or in a padded batch.
"""

import pytest
import torch

from dlbook.behaviour import NAMES, POSITIVE_ADJ, BehaviourTest, TextPredictor, run_suite, sst_suite, template
from dlbook.data.text import Vocab, tokenize
from dlbook.models.rnn_classifier import RNNClassifier, RNNClassifierConfig

TRAIN = ["a good film .", "a bad film .", "the acting is great", "the plot is dull", "not good at all"]


@pytest.fixture()
def vocab():
    return Vocab.build([tokenize(t) for t in TRAIN])


@pytest.fixture()
def predictor(vocab):
    torch.manual_seed(0)
    model = RNNClassifier(RNNClassifierConfig.tiny(vocab_size=len(vocab), dropout=0.3))
    return TextPredictor.for_vocab(model, vocab)


def keyword_model(texts):
    """Positive iff it has a positive adjective xor a "not": a stand-in with known behaviour."""
    out = []
    for t in texts:
        words = t.split()
        positive = any(w in POSITIVE_ADJ for w in words) != ("not" in words)
        out.append([0.2, 0.8] if positive else [0.8, 0.2])
    return torch.tensor(out)


# -- templates and tests ------------------------------------------------------------------


def test_template_fills_every_combination_and_names_missing_slots():
    assert template("{a} {b} {a}", a=["x", "y"], b=["1"]) == ["x 1 x", "y 1 y"]
    assert len(template("{n} is {adj}", n=["a", "b", "c"], adj=["p", "q"])) == 6
    with pytest.raises(ValueError, match=r"\['adj'\]"):
        template("the film is {adj}", noun=["x"])


def test_behaviour_test_validation():
    with pytest.raises(ValueError, match="kind"):
        BehaviourTest("t", "XYZ", "c", ["a"], expected=[1])
    with pytest.raises(ValueError, match="one expected label"):
        BehaviourTest("t", "MFT", "c", ["a", "b"], expected=[1])
    with pytest.raises(ValueError, match="perturbed"):
        BehaviourTest("t", "INV", "c", ["a", "b"], perturbed=["a"])
    with pytest.raises(ValueError, match="no cases"):
        BehaviourTest("t", "MFT", "c", [], expected=[])
    with pytest.raises(ValueError, match="expect"):
        BehaviourTest("t", "DIR", "c", ["a"], perturbed=["b"], expect="up")
    assert BehaviourTest("t", "INV", "c", ["a"], perturbed=["b"]).expect == "same"
    assert BehaviourTest("t", "DIR", "c", ["a"], perturbed=["b"]).expect == "flip"


def test_run_suite_counts_passes_exactly():
    tests = [
        BehaviourTest("mft", "MFT", "vocabulary", ["good", "bad", "not good"], expected=[1, 0, 0]),
        BehaviourTest("inv", "INV", "robustness", ["good", "bad"], perturbed=["good , ok", "good"]),
        BehaviourTest("dir", "DIR", "negation", ["good", "great"], perturbed=["not good", "great !"]),
    ]
    result = run_suite(keyword_model, tests)
    assert [r.pass_rate for r in result.results] == [1.0, 0.5, 0.5]
    assert result.n_cases == 7 and result.pass_rate == pytest.approx(5 / 7)
    assert result.mean_test_pass_rate == pytest.approx(2 / 3)
    table = result.table(class_names=("negative", "positive"))
    assert list(table["cases"]) == [3, 2, 2]
    assert "'bad' -> negative; 'good' -> positive" in table.loc[1, "a failing case"]
    assert result.results[2].failures() == ["'great' -> 1; 'great !' -> 1"]


def test_run_suite_rejects_bad_predictors():
    tests = [BehaviourTest("mft", "MFT", "v", ["good"], expected=[1])]
    with pytest.raises(ValueError, match=r"\(N, K\)"):
        run_suite(lambda texts: torch.zeros(len(texts)), tests)
    with pytest.raises(ValueError, match="empty"):
        run_suite(keyword_model, [])


def test_sst_suite_structure_and_negation():
    tests = sst_suite()
    by_name = {t.name: t for t in tests}
    assert {t.kind for t in tests} == {"MFT", "DIR", "INV"}
    neg = by_name["negated positive is negative"]
    assert neg.texts[0] == "the film is not good ." and set(neg.expected) == {0}
    flips = by_name["negation flips the label"]
    assert all(p.replace(" not", "", 1) == t for t, p in zip(flips.texts, flips.perturbed))
    names = by_name["swap a name (templates)"]
    assert all(t.split()[0] == NAMES[0] and p.split()[0] in NAMES[1:] for t, p in zip(names.texts, names.perturbed))
    # the keyword model knows negation, so it passes the negation tests
    result = run_suite(keyword_model, tests)
    rates = {r.test.name: r.pass_rate for r in result.results}
    assert rates["negated positive is negative"] == rates["negated negative is positive"] == 1.0
    assert rates["negation flips the label"] == rates["swap a name (templates)"] == 1.0


def test_sst_suite_limit_keeps_few_evenly_spread_cases():
    full, small = sst_suite(), sst_suite(limit=10)
    assert [t.name for t in small] == [t.name for t in full] and all(len(t) == 10 for t in small)
    negated = {t.name: t for t in small}["negated positive is negative"]
    assert negated.texts[0] == "the film is not good ." and len(set(negated.texts)) == 10
    flips = {t.name: t for t in small}["negation flips the label"]
    assert all(p.replace(" not", "", 1) == t for t, p in zip(flips.texts, flips.perturbed))
    with pytest.raises(ValueError, match="limit"):
        sst_suite(limit=0)


def test_sst_suite_with_real_sentences_is_seeded():
    sentences = [f"john liked part {i} of it ." for i in range(30)] + [f"a plain sentence {i} ." for i in range(30)]
    a, b = sst_suite(sentences, max_real=20, seed=1), sst_suite(sentences, max_real=20, seed=1)
    clause = {t.name: t for t in a}["add a neutral clause"]
    assert len(clause) == 20 and clause.texts == {t.name: t for t in b}["add a neutral clause"].texts
    assert all(p != t and p.startswith(t.rstrip(" .")) for t, p in zip(clause.texts, clause.perturbed))
    swapped = {t.name: t for t in a}["swap a name (real sentences)"]
    assert 0 < len(swapped) <= 20 and all("john" not in p for p in swapped.perturbed)


# -- TextPredictor: the text pipeline end to end --------------------------------------------


def test_predictor_probabilities_and_batch_invariance(predictor):
    texts = ["A good film!", "the plot is dull , and the acting is not great .", "bad", "good good good good good"]
    probs = predictor(texts)
    assert probs.shape == (4, 2) and torch.allclose(probs.sum(1), torch.ones(4))
    one_by_one = torch.cat([predictor([t]) for t in texts])
    assert torch.allclose(probs, one_by_one, atol=1e-6)  # padding + packing change nothing
    predictor.batch_size = 3
    assert torch.allclose(predictor(texts), probs, atol=1e-6)
    assert predictor.predict(texts).tolist() == probs.argmax(1).tolist()


def test_predictor_unknown_words_non_ascii_and_empty_text(predictor, vocab):
    tokens, lengths, shown = predictor.batch(["a crème brûlée film", "Good."])
    assert lengths.tolist() == [4, 2]
    assert tokens[0, 1].item() == vocab.unk_index and tokens[0, 2].item() == vocab.unk_index
    assert shown[0] == ["a", "crème*", "brûlée*", "film"] and shown[1] == ["good", "."]
    assert predictor(["東京 ünïcödé"]).shape == (1, 2)  # all unknown: still a prediction
    with pytest.raises(ValueError, match="empty"):
        predictor(["a good film", "   "])
    silent = TextPredictor(predictor.model, encode=lambda text: ([], []))  # an encoder that drops everything
    with pytest.raises(ValueError, match="no tokens"):
        silent(["a good film"])
    with pytest.raises(TypeError, match="list of texts"):
        predictor.batch("a good film")
    with pytest.raises(ValueError, match="no texts"):
        predictor([])


def test_wordpiece_predictor_rejects_empty_text_and_reads_raw_text():
    from dlbook.models.pretrained import EncoderClassifier, EncoderClassifierConfig, load_tokenizer

    model = EncoderClassifier(EncoderClassifierConfig.tiny())
    predictor = TextPredictor.for_wordpiece(model, load_tokenizer("tiny-random"), max_length=16)
    assert predictor(["A fine film!", "crème brûlée"]).shape == (2, 2)
    tokens, lengths, shown = predictor.batch(["a b c"])
    assert shown[0][0] == "[CLS]" and shown[0][-1] == "[SEP]" and lengths.tolist() == [5]
    with pytest.raises(ValueError, match="empty"):
        predictor([""])
    [item] = predictor.explain(["a b c"], target=1, n_steps=16)
    assert item.scores[0] == 0 and item.scores[-1] == 0  # [CLS] and [SEP] stay in the baseline


def test_predictor_restores_training_mode_and_explains(predictor, vocab):
    predictor.model.train()
    predictor(["a good film"])
    assert predictor.model.training
    unk = TextPredictor.for_vocab(predictor.model, vocab, baseline_index=vocab.unk_index)
    [pad_item], [unk_item] = predictor.explain(["a good film"], target=1), unk.explain(["a good film"], target=1)
    assert not torch.allclose(pad_item.scores, unk_item.scores)  # the baseline matters
    [item] = predictor.explain(["a good film ."], labels=[1], target=1, n_steps=16)
    assert item.words == ["a", "good", "film", "."] and item.label == 1 and item.scores.shape == (4,)
    assert predictor.model.training


def test_predictor_precision_is_the_one_name_for_precision(predictor, vocab):
    texts = ["a good film", "the plot is dull"]
    bf16 = TextPredictor.for_vocab(predictor.model, vocab, precision="bf16")
    assert torch.allclose(bf16(texts), predictor(texts), atol=0.05)  # bfloat16 keeps ~3 digits
    with pytest.raises(ValueError, match="precision"):
        TextPredictor.for_vocab(predictor.model, vocab, precision="half")
    with pytest.raises(TypeError, match="amp_dtype"):
        TextPredictor.for_vocab(predictor.model, vocab, amp_dtype=torch.bfloat16)


# -- widgets ------------------------------------------------------------------------------


def test_text_explorer_renders_example_submit_empty_and_errors():
    from dlbook.widgets import EMPTY_MESSAGE, text_explorer

    def render(text):
        if "boom" in text:
            raise ValueError("cannot <explode>")
        return f"<b>{len(text.split())}</b>"

    box = text_explorer(render, example="a fine film")
    out = box.children[-1]
    assert out.value == "<b>3</b>"
    box.submit("two words")
    assert out.value == "<b>2</b>"
    box.submit("two words")  # same text again still renders
    assert out.value == "<b>2</b>"
    box.submit("  ")
    assert out.value == EMPTY_MESSAGE
    box.submit("boom")
    assert "Cannot explain" in out.value and "&lt;explode&gt;" in out.value


@pytest.mark.parametrize("error", [KeyError("no such word"), IndexError("index 0 is out of bounds"),
                                   TypeError("bad type"), AssertionError("n_steps")])
def test_text_explorer_never_keeps_the_previous_explanation(error):
    """Any error replaces the previous sentence's explanation with a message (it used to stay on the page)."""
    from dlbook.widgets import text_explorer

    def render(text):
        if "boom" in text:
            raise error
        return f"<b>{text}</b>"

    box = text_explorer(render, example="a fine film")
    out = box.children[-1]
    box.submit("boom")
    assert "a fine film" not in out.value and "Cannot explain" in out.value
    assert type(error).__name__ in out.value


def test_sentiment_explorer_shows_each_model(predictor):
    from dlbook.widgets import sentiment_explorer

    box = sentiment_explorer({"tiny LSTM": predictor, "same again": predictor}, example="a good film", n_steps=8)
    html = box.children[-1].value
    assert html.count("predicted:") == 2 and "tiny LSTM" in html and "positive" in html
    with pytest.raises(ValueError):
        sentiment_explorer({})
