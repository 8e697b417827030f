"""Tokenizer, vocabulary, padding and the bucketing TextLoader."""

import pytest
import torch

from dlbook.data.text import TextLoader, Vocab, pad_batch, tokenize


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
