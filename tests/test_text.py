"""Tokenizer, vocabulary, padding and the bucketing TextLoader."""

import pytest
import torch

from dlbook.data.text import (PAD_INDEX, TextLoader, Vocab, check_token_batch, masked_mean, pad_batch,
                              padding_mask, tokenize)


# -- tokenize -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("text,tokens", [
    ("Hello, world!", ["hello", ",", "world", "!"]),
    ("I don't know; it isn't.", ["i", "do", "n't", "know", ";", "it", "is", "n't", "."]),
    ("They CAN'T and won't", ["they", "ca", "n't", "and", "wo", "n't"]),
    ("it's what we've got", ["it", "'s", "what", "we", "'ve", "got"]),
    ("Café crème à la mode", ["café", "crème", "à", "la", "mode"]),
    ("Don’t", ["do", "n't"]),  # a curly apostrophe counts as '
    ("wait... -- a re-imagining (sort of)", ["wait", "...", "--", "a", "re-imagining", "(", "sort", "of", ")"]),
    ("the u.s. paid $3.5 for 1,000", ["the", "u.s.", "paid", "$", "3.5", "for", "1,000"]),
    ("北京 is big 😀", ["北京", "is", "big", "😀"]),
    ("", []),
    ("   \n\t ", []),
    ("\u200b", []),                                       # a zero-width space alone: nothing
    ("good\u200bfilm", ["good", "film"]),                  # ... between words: a word break
    ("\ufeffgreat\u00adness \u200ewow\u200d", ["greatness", "wow"]),  # BOM, soft hyphen, marks: dropped
])
def test_tokenize(text, tokens):
    assert tokenize(text) == tokens


@pytest.mark.parametrize("text,tokens", [
    ("cafe\u0301 cre\u0300me", ["café", "crème"]),              # NFD input: composed first, one word each
    ("İstanbul", ["i\u0307stanbul"]),                          # lower() of İ keeps its dot as a mark
    ("हिन्दी भाषा", ["हिन्दी", "भाषा"]),                           # Devanagari vowel signs and virama
    ("مَرْحَبًا بِكُمْ", ["مَرْحَبًا", "بِكُمْ"]),                     # Arabic with harakat
    ("שָׁלוֹם עוֹלָם", ["שָׁלוֹם", "עוֹלָם"]),                       # Hebrew with niqqud
    ("สวัสดีครับ ไทย", ["สวัสดีครับ", "ไทย"]),                    # Thai: no spaces, one token per run
    ("naïve-ish ǆ", ["naïve-ish", "ǆ"]),
    ("Е\u0308жик и И\u0306од", ["ёжик", "и", "йод"]),           # Cyrillic, decomposed
    ("❤\ufe0f good", ["❤\ufe0f", "good"]),                     # an emoji keeps its variation selector
    ("good\x00film \x1b[31mred\x7f", ["goodfilm", "[", "31mred"]),  # NUL, ESC, DEL: dropped, never tokens
    ("\x00\x01\x1b\x9b", []),
    ("good\tfilm\nend\x85now", ["good", "film", "end", "now"]),   # whitespace controls still split words
])
def test_tokenize_keeps_combining_marks_in_words_and_drops_controls(text, tokens):
    assert tokenize(text) == tokens


def test_tokenize_normalises_so_composed_and_decomposed_text_agree():
    import unicodedata

    for text in ["Café crème brûlée", "Ça va, Ñandú?", "Tiếng Việt rất hay", "İstanbul'da"]:
        assert tokenize(unicodedata.normalize("NFD", text)) == tokenize(text)
    for token in tokenize("Tiếng Việt rất hay हिन्दी مَرْحَبًا שָׁלוֹם"):
        assert all(unicodedata.category(c)[0] in "LMN" for c in token)  # words only: no stray marks


def test_tokenize_agrees_with_sst_tokenisation():
    sst_line = "they presume their audience wo n't sit still for a sociology lesson -lrb- however -rrb- ."
    assert tokenize(sst_line) == sst_line.split()
    raw = "They presume their audience won't sit still."
    assert tokenize(raw) == "they presume their audience wo n't sit still .".split()
    assert tokenize("`` great '' ...") == ["``", "great", "''", "..."]


def test_tokenize_rejects_non_strings():
    with pytest.raises(TypeError, match="expects a str"):
        tokenize(None)


# -- Vocab --------------------------------------------------------------------------------------------


CORPUS = [tokenize(t) for t in ["a good film .", "a bad film .", "a good , good cast ."]]


def test_vocab_specials_order_and_unknown_words():
    vocab = Vocab.build(CORPUS)
    assert vocab.itos[:2] == ["<pad>", "<unk>"] and vocab.pad_index == 0 and vocab.unk_index == 1
    assert vocab.itos[2:5] == [".", "a", "good"]  # most frequent first (3, 3, 3), ties alphabetical
    ids = vocab.encode(tokenize("a terrible film"))
    assert ids == [vocab["a"], vocab.unk_index, vocab["film"]]
    assert vocab.decode(ids) == ["a", "<unk>", "film"]
    assert vocab.decode(torch.tensor(ids + [0, 0]), skip_pad=True) == ["a", "<unk>", "film"]
    assert "film" in vocab and "terrible" not in vocab and vocab["terrible"] == 1


def test_vocab_min_freq_and_max_size():
    assert Vocab.build(CORPUS, min_freq=2).itos == ["<pad>", "<unk>", ".", "a", "good", "film"]
    assert len(Vocab.build(CORPUS, max_size=4)) == 4
    assert Vocab.build(CORPUS, max_size=4).itos == ["<pad>", "<unk>", ".", "a"]


def test_vocab_coverage_and_round_trip():
    vocab = Vocab.build(CORPUS, min_freq=2)
    assert vocab.coverage([["a", "film"], ["bad", "x"]]) == 0.5
    assert Vocab(vocab.itos).itos == vocab.itos  # save vocab.itos, restore with Vocab(itos)
    with pytest.raises(ValueError, match="undefined"):
        vocab.coverage([[]])


def test_vocab_errors_are_clear():
    vocab = Vocab.build(CORPUS)
    with pytest.raises(TypeError, match="tokenize"):
        vocab.encode("a good film")
    with pytest.raises(TypeError, match="token lists"):
        Vocab.build(["a good film"])
    with pytest.raises(IndexError, match="outside the vocabulary"):
        vocab.decode([999])
    with pytest.raises(ValueError, match="starts with"):
        Vocab(["a", "b"])
    with pytest.raises(ValueError, match="min_freq"):
        Vocab.build(CORPUS, min_freq=0)


# -- pad_batch ----------------------------------------------------------------------------------------


def test_pad_batch_shapes_values_and_lengths():
    tokens, lengths = pad_batch([[5, 6, 7], [8], torch.tensor([9, 10])], pad_index=0)
    assert tokens.shape == (3, 3) and tokens.dtype == torch.int64 and lengths.dtype == torch.int64
    assert tokens.tolist() == [[5, 6, 7], [8, 0, 0], [9, 10, 0]] and lengths.tolist() == [3, 1, 2]
    assert pad_batch([[1], [2]], pad_index=-1)[0].tolist() == [[1], [2]]
    tokens, lengths = pad_batch([[], [3]], pad_index=0)
    assert tokens.tolist() == [[0], [3]] and lengths.tolist() == [0, 1]
    with pytest.raises(ValueError, match="at least one"):
        pad_batch([])


def test_pad_index_is_the_one_padding_id():
    assert PAD_INDEX == 0 and Vocab.pad_index == PAD_INDEX and Vocab.build([["a"]]).itos[PAD_INDEX] == "<pad>"
    assert pad_batch([[5, 6], [7]])[0].tolist() == [[5, 6], [7, PAD_INDEX]]
    assert TextLoader([[1]], [0], 1).pad_index == PAD_INDEX


# -- check_token_batch, padding_mask, masked_mean -----------------------------------------------------


def test_check_token_batch_returns_int64_tokens_and_cpu_int64_lengths():
    tokens, lengths = check_token_batch(torch.tensor([[4, 6], [5, 0]], dtype=torch.int32), torch.tensor([2, 1]))
    assert tokens.dtype == torch.int64 and tokens.tolist() == [[4, 6], [5, 0]]
    assert lengths.dtype == torch.int64 and lengths.device.type == "cpu" and lengths.tolist() == [2, 1]
    tokens, lengths = check_token_batch([[4, 6]], [2])  # lists are accepted
    assert tokens.tolist() == [[4, 6]] and lengths.tolist() == [2]
    tokens, lengths = check_token_batch(*pad_batch([[1, 2, 3], [4]]))
    assert lengths.tolist() == [3, 1]


@pytest.mark.parametrize("tokens,lengths,message", [
    (torch.tensor([4, 6]), [2], r"shape \(B, T\)"),                         # rank 1
    (torch.zeros(1, 2, 3, dtype=torch.int64), [2], r"shape \(B, T\)"),      # rank 3
    (torch.tensor([[0.5, 1.0]]), [2], "integer token ids"),                 # float ids
    (torch.tensor([[4, 6]]), torch.tensor([2.0]), "lengths must be integers"),
    (torch.tensor([[4, 6]]), torch.tensor([True]), "lengths must be integers"),
    (torch.tensor([[4, 6], [5, 0]]), [2], r"shape \(2,\)"),                 # one length for two rows
    (torch.tensor([[4, 6]]), [[2]], r"shape \(1,\)"),                       # (B, 1) lengths
    (torch.zeros(0, 3, dtype=torch.int64), torch.zeros(0, dtype=torch.int64), "empty"),
    (torch.tensor([[4, 6], [5, 0]]), [2, 0], r"\[1, 2\].*drop empty"),      # an empty sentence
    (torch.tensor([[4, 6], [5, 0]]), [3, 1], r"\[1, 2\]"),                  # longer than T
])
def test_check_token_batch_errors_say_what_is_wrong(tokens, lengths, message):
    with pytest.raises(ValueError, match=message):
        check_token_batch(tokens, lengths)


def test_padding_mask_marks_real_tokens():
    assert padding_mask(torch.tensor([3, 1])).tolist() == [[True, True, True], [True, False, False]]
    mask = padding_mask(torch.tensor([2, 1]), max_len=4)
    assert mask.dtype == torch.bool and mask.tolist() == [[True, True, False, False], [True, False, False, False]]
    tokens, lengths = pad_batch([[5, 6, 7], [8]])
    assert padding_mask(lengths).equal(tokens != PAD_INDEX)
    for lengths, max_len, message in [(torch.tensor([[1]]), None, "1-D integer"),
                                      (torch.tensor([1.0]), None, "1-D integer"),
                                      (torch.tensor([0, 2]), None, "at least 1"),
                                      (torch.tensor([3]), 2, "exceeds max_len=2")]:
        with pytest.raises(ValueError, match=message):
            padding_mask(lengths, max_len)


def test_masked_mean_averages_real_tokens_only():
    x = torch.tensor([[[1.0, 10.0], [3.0, 30.0], [100.0, 100.0]], [[5.0, 6.0], [7.0, 8.0], [9.0, 9.0]]])
    mask = padding_mask(torch.tensor([2, 1]), max_len=3)
    assert masked_mean(x, mask).tolist() == [[2.0, 20.0], [5.0, 6.0]]
    assert masked_mean(x, mask.long()).equal(masked_mean(x, mask))  # a 0/1 attention mask works too
    assert masked_mean(x, torch.zeros(2, 3, dtype=torch.bool)).equal(torch.zeros(2, 2))  # no NaN
    assert masked_mean(x.bfloat16(), mask).dtype == torch.bfloat16
    with pytest.raises(ValueError, match=r"x \(B, T, D\) and mask \(B, T\)"):
        masked_mean(x, mask[:, :2])


# -- TextLoader ---------------------------------------------------------------------------------------


def random_texts(n=1000, seed=0):
    """Sequences whose first token is their own index, with lengths 1..60, and labels = index % 2."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, 61, (n,), generator=g).tolist()
    seqs = [[i] + [7] * (length - 1) for i, length in enumerate(lengths)]
    return seqs, torch.arange(n) % 2


def seen(loader):
    out = []
    for (tokens, lengths), labels in loader:
        first = tokens[:, 0]
        assert labels.equal(first % 2)  # labels stay with their texts
        assert (tokens != 0).sum(1).equal(lengths - (first == 0).long())  # lengths are the true lengths
        out += first.tolist()
    return out


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("bucket", [False, True])
def test_text_loader_yields_every_example_exactly_once(shuffle, bucket):
    seqs, labels = random_texts()
    loader = TextLoader(seqs, labels, batch_size=32, shuffle=shuffle, bucket=bucket, chunk_batches=5)
    assert len(loader) == 32
    for _ in range(2):
        order = seen(loader)
        assert sorted(order) == list(range(1000))
        assert loader.last_indices.tolist() == order
    if not (shuffle or bucket):
        assert order == list(range(1000))


def test_bucketing_cuts_padding():
    seqs, labels = random_texts()

    def padded_cells(loader):
        return sum(tokens.numel() for (tokens, _), _ in loader)

    plain = padded_cells(TextLoader(seqs, labels, 32, shuffle=True, bucket=False))
    bucketed = padded_cells(TextLoader(seqs, labels, 32, shuffle=True, bucket=True))
    real = sum(len(s) for s in seqs)
    assert bucketed < 0.65 * plain and bucketed >= real
    print(f"\npadded cells: {plain} without bucketing, {bucketed} with; {real} real tokens")


def test_text_loader_shuffle_is_reproducible_and_resumable():
    seqs, labels = random_texts(200)
    make = lambda seed=0: TextLoader(seqs, labels, 16, shuffle=True, seed=seed, chunk_batches=3)  # noqa: E731
    a = make()
    first, second = seen(a), seen(a)
    assert first != second
    b = make()
    assert [seen(b), seen(b)] == [first, second]
    assert seen(make(seed=1)) != first
    c = make()
    c.set_epoch(1)
    assert seen(c) == second


def test_text_loader_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match="3 sequences but 2 labels"):
        TextLoader([[1], [2], [3]], [0, 1], 2)
    with pytest.raises(ValueError, match="batch_size=0"):
        TextLoader([[1]], [0], 0)
