"""TextVectorization and StringLookup (fastnn/preprocessing_text.py).

Keras' own layers need TensorFlow, which is not installed here, so the oracles are (1) the
examples of Keras' documentation, with the outputs Keras prints, and (2) a reference written
from Keras' code (keras/src/layers/preprocessing/index_lookup.py): its ``np.lexsort((tokens,
counts))[::-1]`` order, ``log(1 + N / (1 + df))`` idf weights, OOV idf the mean, loops for the
encodings. Many random corpora; the learning test classifies the shipped English words.
"""

import os
import pickle
import re
from collections import Counter

import numpy as np
import pytest

import fastnn as fnn
from fastnn.datasets.words import load_words

PUNCT = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\''


# ---------------------------------------------------------------------- the reference
def ref_vocab(docs, max_tokens, specials, removed=()):
    counts = Counter(t for d in docs for t in d)
    for s in (*specials, *removed):
        counts.pop(s, None)
    tokens = np.array(list(counts), dtype=object)
    if not len(tokens):
        return []
    c = np.array([counts[t] for t in tokens])
    order = np.lexsort((tokens.astype(str), c))[::-1]         # Keras' finalize_state
    if max_tokens:
        order = order[:max_tokens - len(specials)]
    return [str(t) for t in tokens[order]]


def ref_idf(docs, vocab):
    df = np.array([sum(t in d for d in docs) for t in vocab], float)
    return np.log(1 + len(docs) / (1 + df)).astype(np.float32)


def ref_standardize(text, mode):
    if mode in ("lower", "lower_and_strip_punctuation"):     # tf.strings.lower: ASCII only
        text = "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in text)
    if mode in ("strip_punctuation", "lower_and_strip_punctuation"):
        text = "".join(ch for ch in text if ch not in PUNCT)
    return text


def ref_tokens(text, standardize, split, ngrams):
    text = ref_standardize(text, standardize)
    ascii_space = " \t\n\v\f\r"
    if split == "whitespace":                                  # tf.strings.split: ASCII only
        words = "".join(" " if c in ascii_space else c for c in text).split(" ")
        words = [w for w in words if w]
    else:
        words = list(text) if split == "character" else [text]
    if ngrams is None:
        return words
    widths = range(1, ngrams + 1) if isinstance(ngrams, int) else ngrams
    return [" ".join(words[i:i + n]) for n in widths for i in range(len(words) - n + 1)]


def random_corpus(rng, n_docs, n_words=30):
    words = ["".join(rng.choice(list("abcdeXY"), rng.integers(1, 4))) for _ in range(n_words)]
    words += ["Hello,", "world!", "it's", "ÉTÉ", "naïve", "a\u00a0b", "x\u3000Y", "\vZ\r"]
    docs = []
    for _ in range(n_docs):
        k = rng.integers(0, 12)
        docs.append(" ".join(rng.choice(words, k, p=None)) + rng.choice(["", " ", "  .", "\t"]))
    return docs


# ---------------------------------------------------------------------- Keras' documentation
def test_keras_doc_text_vectorization_int():
    vec = fnn.TextVectorization(max_tokens=5000, output_mode="int", output_sequence_length=4)
    vec.adapt(["foo bar", "bar baz", "baz bada boom"])
    assert vec([["foo qux bar"], ["qux baz"]]).tolist() == [[4, 1, 3, 0], [1, 2, 0, 0]]
    assert vec.get_vocabulary() == ["", "[UNK]", "baz", "bar", "foo", "boom", "bada"]


def test_keras_doc_text_vectorization_vocabulary():
    vec = fnn.TextVectorization(max_tokens=5000, output_mode="int", output_sequence_length=4,
                                vocabulary=["earth", "wind", "and", "fire"])
    assert vec(["earth wind and fire", "fire and earth"]).tolist() == [[2, 3, 4, 5],
                                                                      [5, 4, 2, 0]]
    assert vec.vocabulary_size() == 6


def test_keras_doc_string_lookup():
    vocab = ["a", "b", "c", "d"]
    data = [["a", "c", "d"], ["d", "z", "b"]]
    assert fnn.StringLookup(vocabulary=vocab)(data).tolist() == [[1, 3, 4], [4, 0, 2]]
    assert fnn.StringLookup(vocabulary=vocab, output_mode="one_hot")(["a", "z"]).tolist() == \
        [[0, 1, 0, 0, 0], [1, 0, 0, 0, 0]]
    assert fnn.StringLookup(vocabulary=vocab, output_mode="multi_hot")(data).tolist() == \
        [[0, 1, 0, 1, 1], [1, 0, 1, 0, 1]]
    counted = fnn.StringLookup(vocabulary=vocab, output_mode="count")(
        [["a", "c", "d", "d"], ["d", "z", "b", "z"]])
    assert counted.tolist() == [[0, 1, 0, 1, 2], [2, 0, 1, 0, 1]]
    tfidf = fnn.StringLookup(output_mode="tf_idf", vocabulary=vocab,
                             idf_weights=[0.25, 0.75, 0.6, 0.4])(
        [["a", "c", "d", "d"], ["d", "z", "b", "z"]])
    np.testing.assert_allclose(tfidf, [[0, 0.25, 0, 0.6, 0.8], [1.0, 0, 0.75, 0, 0.4]],
                               rtol=1e-6)
    inv = fnn.StringLookup(vocabulary=vocab, invert=True)([[1, 3, 4], [4, 0, 2]])
    assert inv.tolist() == [["a", "c", "d"], ["d", "[UNK]", "b"]]
    masked = fnn.StringLookup(vocabulary=vocab, mask_token="")
    assert masked([["a", "c", ""], ["", "z", "b"]]).tolist() == [[2, 4, 0], [0, 1, 3]]
    assert masked.get_vocabulary() == ["", "[UNK]", "a", "b", "c", "d"]
    with_oov = fnn.StringLookup(vocabulary=vocab, num_oov_indices=2)
    out = with_oov(data)
    assert out[0].tolist() == [2, 4, 5] and out[1, 0] == 5 and out[1, 2] == 3
    assert out[1, 1] == 1               # Keras' documented output: FarmHash puts "z" in 1


def test_keras_doc_string_lookup_adapt():
    data = [["a", "c", "d"], ["d", "z", "b"]]
    layer = fnn.StringLookup()
    layer.adapt(data)
    assert layer.get_vocabulary() == ["[UNK]", "d", "z", "c", "b", "a"]


# ---------------------------------------------------------------------- random corpora
@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("standardize", ["lower_and_strip_punctuation", "lower",
                                         "strip_punctuation", None])
def test_vocabulary_and_int_output_match_the_reference(seed, standardize):
    rng = np.random.default_rng(seed)
    docs = random_corpus(rng, int(rng.integers(1, 40)))
    max_tokens = [None, 2, 5, 17][seed % 4]
    split = ["whitespace", "character"][seed % 2]
    ngrams = [None, 2, (1, 3), None][seed % 4 // 1 % 4]
    length = [None, 3, 8][seed % 3]
    vec = fnn.TextVectorization(max_tokens=max_tokens, standardize=standardize, split=split,
                                ngrams=ngrams, output_sequence_length=length)
    vec.adapt(docs)
    toks = [ref_tokens(d, standardize, split, ngrams) for d in docs]
    vocab = ["", "[UNK]"] + ref_vocab(toks, max_tokens, ["", "[UNK]"])
    assert vec.get_vocabulary() == vocab
    assert vec.vocabulary_size() == len(vocab)
    queries = random_corpus(rng, 7)
    out = vec(queries)
    index = {t: i for i, t in enumerate(vocab)}
    width = length if length is not None else max(
        len(ref_tokens(q, standardize, split, ngrams)) for q in queries)
    assert out.shape == (7, width) and out.dtype == np.int64
    for row, q in zip(out, queries):
        ids = [index.get(t, 1) for t in ref_tokens(q, standardize, split, ngrams)][:width]
        assert row.tolist() == ids + [0] * (width - len(ids))


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("mode", ["multi_hot", "count", "tf_idf"])
def test_encoded_outputs_match_the_reference(seed, mode):
    rng = np.random.default_rng(100 + seed)
    docs = random_corpus(rng, int(rng.integers(2, 30)))
    max_tokens = [None, 4, 12][seed % 3]
    pad = max_tokens is not None and seed % 2 == 0
    vec = fnn.TextVectorization(max_tokens=max_tokens, output_mode=mode, ngrams=seed % 3 or None,
                                pad_to_max_tokens=pad)
    vec.adapt(docs)
    toks = [ref_tokens(d, "lower_and_strip_punctuation", "whitespace", seed % 3 or None)
            for d in docs]
    learned = ref_vocab(toks, max_tokens, ["[UNK]"])
    vocab = ["[UNK]"] + learned            # no padding index outside "int" mode (Keras)
    assert vec.get_vocabulary() == vocab
    depth = max_tokens if pad else len(vocab)
    queries = random_corpus(rng, 5)
    out = vec(queries)
    assert out.shape == (5, depth) and out.dtype == np.float32
    idf = np.zeros(depth)
    if mode == "tf_idf":
        w = ref_idf([set(t) for t in toks], learned)
        idf[0] = np.float32(w.mean()) if w.size else 0
        idf[1:len(vocab)] = w
        np.testing.assert_allclose(vec.idf_weights, idf, rtol=1e-6)
    index = {t: i for i, t in enumerate(vocab)}
    for row, q in zip(out, queries):
        expect = np.zeros(depth)
        for t in ref_tokens(q, "lower_and_strip_punctuation", "whitespace", seed % 3 or None):
            expect[index.get(t, 0)] += 1
        if mode == "multi_hot":
            expect = np.minimum(expect, 1)
        elif mode == "tf_idf":
            expect = expect * idf
        np.testing.assert_allclose(row, expect, rtol=1e-6)


@pytest.mark.parametrize("seed", range(8))
def test_string_lookup_matches_the_reference(seed):
    rng = np.random.default_rng(200 + seed)
    pool = ["".join(rng.choice(list("pqrs"), rng.integers(1, 3))) for _ in range(12)]
    data = rng.choice(pool, (int(rng.integers(1, 20)), 3))
    mask = "" if seed % 2 else None
    n_oov = [1, 0, 2, 1][seed % 4]
    max_tokens = [None, 6][seed % 2]
    layer = fnn.StringLookup(max_tokens=max_tokens, mask_token=mask, num_oov_indices=n_oov)
    layer.adapt(data)
    specials = ([mask] if mask is not None else []) + ["[UNK]"] * n_oov
    vocab = specials + ref_vocab([list(r) for r in data], max_tokens,
                                 specials, removed=["[UNK]"])
    assert layer.get_vocabulary() == vocab
    index = {t: i for i, t in enumerate(vocab) if i >= len(specials)}
    if n_oov == 0:
        known = np.array([[t for t in vocab][-1]] * 3)
        assert layer(known).tolist() == [index[t] for t in known]
        with pytest.raises(ValueError, match="num_oov_indices=0"):
            layer(["never seen"])
        return
    queries = np.array(list(rng.choice(pool + ["zz"], 10)) + ([""] if mask is not None else []))
    out = layer(queries)
    for q, i in zip(queries, out):
        if mask is not None and q == mask:
            assert i == 0
        elif q in index:
            assert i == index[q]
        else:
            assert len(specials) - n_oov <= i < len(specials)
    back = fnn.StringLookup(vocabulary=layer.get_vocabulary(), mask_token=mask,
                            num_oov_indices=n_oov, invert=True)
    assert [back(np.array([i]))[0] for i in out if i >= len(specials)] == \
        [q for q, i in zip(queries, out) if i >= len(specials)]


def test_callables_for_standardize_and_split():
    vec = fnn.TextVectorization(standardize=np.char.upper,
                                split=lambda s: re.split(r"[-\s]+", s.strip()))
    vec.adapt(["ab-cd ab", "cd-ef"])
    assert vec.get_vocabulary() == ["", "[UNK]", "CD", "AB", "EF"]
    assert vec(["ef-ab zz"]).tolist() == [[4, 3, 1]]
    with pytest.raises(ValueError, match="callable"):
        vec.get_config()
    with pytest.raises(TypeError, match="standardize must return an array of 2 strings"):
        fnn.TextVectorization(standardize=lambda a: a[:1]).adapt(["a", "b"])


def test_split_none_and_unicode():
    """As Keras' TensorFlow ops: ASCII letters lowered only, ASCII whitespace only splits."""
    vec = fnn.TextVectorization(split=None, standardize="lower")
    vec.adapt(["Straße", "STRAßE", "Ünïcode"])
    assert vec.get_vocabulary() == ["", "[UNK]", "straße", "Ünïcode"]
    assert vec([b"STRASSE", "\u00fcn\u00efcode".encode(), "Ünïcode"]).tolist() == [[1], [1], [3]]
    words = fnn.TextVectorization()
    words.adapt(["a\u00a0b c\td\ne"])
    assert words.get_vocabulary() == ["", "[UNK]", "e", "d", "c", "a\u00a0b"]


# ---------------------------------------------------------------------- state
def _fitted(mode="tf_idf"):
    vec = fnn.TextVectorization(max_tokens=50, output_mode=mode, ngrams=2)
    vec.adapt(random_corpus(np.random.default_rng(7), 25))
    return vec


@pytest.mark.parametrize("mode", ["int", "multi_hot", "tf_idf"])
def test_pickle_assets_and_config_round_trip(mode, tmp_path):
    vec = _fitted(mode)
    queries = random_corpus(np.random.default_rng(8), 6)
    expect = vec(queries)
    same = pickle.loads(pickle.dumps(vec))
    np.testing.assert_array_equal(same(queries), expect)
    vec.save_assets(str(tmp_path))
    assert os.path.exists(tmp_path / "vocabulary.json")
    fresh = fnn.TextVectorization(max_tokens=50, output_mode=mode, ngrams=2)
    fresh.load_assets(str(tmp_path))
    np.testing.assert_array_equal(fresh(queries), expect)
    config = vec.get_config()
    assert "vocabulary" not in config         # adapted: the state is in the assets, as Keras
    given = fnn.TextVectorization(max_tokens=50, output_mode=mode, ngrams=2,
                                  vocabulary=vec.get_vocabulary(),
                                  idf_weights=vec.idf_weights if mode == "tf_idf" else None)
    np.testing.assert_allclose(given(queries), expect, rtol=1e-6)
    rebuilt = fnn.TextVectorization.from_config(given.get_config())
    np.testing.assert_allclose(rebuilt(queries), expect, rtol=1e-6)
    with pytest.raises(ValueError, match="adapt"):
        given.adapt(["x"])


def test_string_lookup_pickles_and_joblib():
    layer = fnn.StringLookup(output_mode="count")
    layer.adapt(["x", "y", "y", "z"])
    same = pickle.loads(pickle.dumps(layer))
    assert same.get_vocabulary() == layer.get_vocabulary()
    np.testing.assert_array_equal(same([["y", "y", "q"]]), [[1, 2, 0, 0]])
    joblib = pytest.importorskip("joblib")
    import io
    buf = io.BytesIO()
    joblib.dump(layer, buf)
    buf.seek(0)
    assert joblib.load(buf).get_vocabulary() == ["[UNK]", "y", "z", "x"]


# ---------------------------------------------------------------------- bad inputs
BAD = [
    (lambda: fnn.TextVectorization(max_tokens=1), ValueError, "max_tokens"),
    (lambda: fnn.TextVectorization(max_tokens=2.5), TypeError, "max_tokens"),
    (lambda: fnn.TextVectorization(standardize="upper"), ValueError, "standardize"),
    (lambda: fnn.TextVectorization(split="comma"), ValueError, "split"),
    (lambda: fnn.TextVectorization(ngrams=0), ValueError, "ngrams"),
    (lambda: fnn.TextVectorization(ngrams=(1, "2")), ValueError, "ngrams"),
    (lambda: fnn.TextVectorization(output_mode="one_hot"), ValueError, "output_mode"),
    (lambda: fnn.TextVectorization(output_sequence_length=0), ValueError,
     "output_sequence_length"),
    (lambda: fnn.TextVectorization(output_mode="count", output_sequence_length=3), ValueError,
     "output_sequence_length"),
    (lambda: fnn.TextVectorization(sparse=True), ValueError, "sparse"),
    (lambda: fnn.TextVectorization(ragged=True), ValueError, "ragged"),
    (lambda: fnn.TextVectorization(encoding="latin-1"), ValueError, "encoding"),
    (lambda: fnn.TextVectorization(pad_to_max_tokens=True), ValueError, "max_tokens"),
    (lambda: fnn.TextVectorization(output_mode="tf_idf", vocabulary=["a"]), ValueError,
     "idf_weights"),
    (lambda: fnn.TextVectorization(vocabulary=["a"], idf_weights=[1.0]), ValueError,
     "idf_weights"),
    (lambda: fnn.TextVectorization(vocabulary="abc"), TypeError, "vocabulary"),
    (lambda: fnn.TextVectorization(vocabulary=["a", "a"]), ValueError, "repeated"),
    (lambda: fnn.TextVectorization(vocabulary=[]), ValueError, "vocabulary"),
    (lambda: fnn.TextVectorization(max_tokens=3, vocabulary=["a", "b"]), ValueError,
     "max_tokens"),
    (lambda: fnn.TextVectorization().adapt([1, 2]), TypeError, "data"),
    (lambda: fnn.TextVectorization()([["a", "b"]]), ValueError, "shape"),
    (lambda: fnn.StringLookup(num_oov_indices=-1), ValueError, "num_oov_indices"),
    (lambda: fnn.StringLookup(output_mode="bag"), ValueError, "output_mode"),
    (lambda: fnn.StringLookup(invert=True, output_mode="count"), ValueError, "invert"),
    (lambda: fnn.StringLookup(mask_token=0), TypeError, "mask_token"),
    (lambda: fnn.StringLookup(oov_token=None), TypeError, "oov_token"),
    (lambda: fnn.StringLookup(vocabulary=["a", "[UNK]"], invert=True), ValueError, "OOV"),
    (lambda: fnn.StringLookup(mask_token="", vocabulary=["a", ""]), ValueError, "mask"),
    (lambda: fnn.StringLookup(vocabulary=["a"], invert=True)([0.5]), ValueError, "integer"),
    (lambda: fnn.StringLookup(output_mode="tf_idf", vocabulary=["a"], idf_weights=[1, 2]),
     ValueError, "idf_weights"),
    (lambda: fnn.StringLookup(output_mode="tf_idf", vocabulary=["a"],
                              idf_weights=[float("nan")]), ValueError, "idf_weights"),
]


@pytest.mark.parametrize("make,exc,word", BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_bad_inputs_are_refused_by_name(make, exc, word):
    with pytest.raises(exc, match=word):
        make()


# ---------------------------------------------------------------------- learning
SUFFIXES = ("ness", "tion", "ing", "ly")


def _suffix_task(split):
    words = [w for w in load_words(split) if w.endswith(SUFFIXES)]
    labels = np.array([next(i for i, s in enumerate(SUFFIXES) if w.endswith(s))
                       for w in words])
    return words, labels


@pytest.mark.parametrize("backend", ["numpy", "fast"])
def test_learns_word_suffixes_from_character_trigrams(backend):
    """The shipped English words ending in -ness, -tion, -ing or -ly: a bag of character
    1- to 3-grams (tf-idf) and a softmax layer name the ending of unseen words."""
    words, y = _suffix_task("train")
    vwords, vy = _suffix_task("validation")
    vec = fnn.TextVectorization(max_tokens=3000, split="character", ngrams=3,
                                output_mode="tf_idf")
    vec.adapt(words)
    x, vx = vec(words), vec(vwords)
    model = fnn.Sequential([fnn.Dense(4, activation="softmax")], input_dim=x.shape[1],
                           seed=0, backend=backend)
    model.compile(loss="sparse_categorical_crossentropy", optimizer=fnn.Adam(0.01),
                  metrics=["accuracy"])
    model.fit(x, y, epochs=5, batch_size=64, verbose=0)
    majority = np.bincount(vy).max() / len(vy)
    accuracy = model.evaluate(vx, vy, verbose=0)["accuracy"]
    assert majority < 0.45 and accuracy > 0.9
