"""Metrics against their reference packages (sacrebleu, rouge-score) and hand computations."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchlm.metrics import BLEU_TOKENIZERS, bleu, perplexity, rouge

sacrebleu = pytest.importorskip("sacrebleu")
rouge_scorer = pytest.importorskip("rouge_score.rouge_scorer")

# Pieces that exercise every tokenizer rule: punctuation, numbers with . , -, HTML entities,
# <skipped>, contractions, accents, Chinese, general punctuation, mixed case.
PIECES = [
    "the", "The", "cat", "sat", "on", "mat", "dog", "a", "is", "under", "bed", "THE",
    "3.14", "1,000", "2-3", "10-", "-5", "U.S.", "e.g.", "can't", "e-mail", "$5", "50%",
    "(", ")", ",", ".", "!", "?", ";", ":", "\"", "'", "-", "--", "...", "/", "@", "#",
    "&amp;", "&quot;", "&lt;", "&gt;", "&", "<skipped>", "[x]", "{y}", "a_b", "~", "`",
    "naïve", "Über", "東京", "你好", "。", "，", "…", "—", "“", "”", "→", "½", "１２",
]
SEPARATORS = [" ", " ", " ", "", "  ", "\t", "\n", "-\n", "\u3000"]


@st.composite
def sentences(draw, max_pieces=12):
    pieces = draw(st.lists(st.sampled_from(PIECES), max_size=max_pieces))
    text = ""
    for piece in pieces:
        text += draw(st.sampled_from(SEPARATORS)) + piece
    return text + draw(st.sampled_from(["", " ", "\n", " ."]))


# ----------------------------------------------------------------------------- BLEU
def sacrebleu_score(hypotheses, streams, tokenize="13a"):
    return sacrebleu.corpus_bleu(hypotheses, streams, tokenize=tokenize).score


@st.composite
def corpora(draw):
    """(hypotheses, reference streams): hypotheses are often edits of a reference, so that
    matches of every order occur."""
    n_segments = draw(st.integers(1, 5))
    n_streams = draw(st.integers(1, 3))
    streams = [[draw(sentences()) for _ in range(n_segments)] for _ in range(n_streams)]
    hypotheses = []
    for i in range(n_segments):
        if draw(st.booleans()):
            base = streams[draw(st.integers(0, n_streams - 1))][i]
            hypotheses.append(base[:draw(st.integers(0, len(base)))] + draw(sentences(3)))
        else:
            hypotheses.append(draw(sentences()))
    return hypotheses, streams


@pytest.mark.parametrize("tokenize", ["13a", "zh", "none"])
@settings(max_examples=100, deadline=None)
@given(corpus=corpora())
def test_bleu_matches_sacrebleu(tokenize, corpus):
    hypotheses, streams = corpus
    expected = sacrebleu_score(hypotheses, streams, tokenize)
    assert bleu(hypotheses, streams, tokenize=tokenize) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("tokenize", ["13a", "zh"])
@settings(max_examples=300, deadline=None)
@given(line=st.text(st.characters(blacklist_categories=["Cs"]), max_size=40) | sentences())
def test_tokenizers_match_sacrebleu(tokenize, line):
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a
    from sacrebleu.tokenizers.tokenizer_zh import TokenizerZh

    reference_tokenizer = {"13a": Tokenizer13a, "zh": TokenizerZh}[tokenize]()
    assert BLEU_TOKENIZERS[tokenize](line) == reference_tokenizer(line).split()


def test_zh_tokenizer_splits_the_same_characters_as_sacrebleu():
    from sacrebleu.tokenizers.tokenizer_zh import TokenizerZh

    reference_tokenizer = TokenizerZh()
    # every code point in the blocks where sacrebleu's table starts or ends a range
    blocks = [(0x1F00, 0x3500), (0x4D00, 0x4F00), (0x9F00, 0xA000), (0xF800, 0x10000)]
    code_points = [c for lo, hi in blocks for c in range(lo, hi) if not 0xD800 <= c < 0xE000]
    code_points += [0x1F600, 0x20000, 0x2A6D6, 0x2F800, 0x2FA1D]
    for c in code_points:
        line = f"a{chr(c)}b"
        assert BLEU_TOKENIZERS["zh"](line) == reference_tokenizer(line).split(), hex(c)


FIXED_CORPUS = [
    ("The cat sat on the mat.", "The cat is on the mat."),
    ("It costs $3.50, not 3,000 dollars!", "It costs $ 3.50 -- not 3,000 dollars."),
    ("", "An empty hypothesis still counts its reference length."),
    ("Dr. Smith's e-mail: smith@example.org (2019-2020).",
     "Dr. Smith's email is smith@example.org"),
    ("&quot;Quoted&quot; &amp; escaped &lt;tags&gt;", "\"Quoted\" & escaped <tags>"),
    ("He said: \"no\"... then left—quickly.", "He said \"no\" and then left quickly."),
    ("Numbers 1.5 2,5 3-4 5- -6", "Numbers 1.5 2,5 3-4 5 - 6"),
    ("我们 在 北京。", "我们在北京。"),
]


def test_bleu_fixed_corpus_matches_sacrebleu():
    hypotheses = [h for h, _ in FIXED_CORPUS]
    references = [r for _, r in FIXED_CORPUS]
    for tokenize in ("13a", "zh", "none"):
        expected = sacrebleu_score(hypotheses, [references], tokenize)
        assert bleu(hypotheses, references, tokenize=tokenize) == pytest.approx(expected)


def test_bleu_multiple_and_missing_references_match_sacrebleu():
    hypotheses = ["the cat sat on the mat", "a dog ran in the park today", "hello there"]
    streams = [
        ["the cat is on the mat", "a dog ran through the park", "hello"],
        ["there is a cat on the mat", None, "hello there , friend"],
        [None, "today a dog ran in a park", None],
    ]
    assert bleu(hypotheses, streams) == pytest.approx(sacrebleu_score(hypotheses, streams))


def test_bleu_by_hand():
    # hyp: the cat sat on the mat / ref: the cat is on the mat (6 tokens each, BP = 1)
    # 1-grams 5/6, 2-grams 3/5 (the cat, on the, the mat), 3-grams 1/4 (on the mat),
    # 4-grams 0/3 -> exp smoothing 1 / (2 * 3)
    expected = 100 * (5 / 6 * 3 / 5 * 1 / 4 * 1 / 6) ** (1 / 4)
    assert bleu(["the cat sat on the mat"], ["the cat is on the mat"]) == pytest.approx(expected)
    # every n-gram of "the cat sat on" matches; c = 4 < r = 6, so BP = exp(1 - 6/4)
    expected = 100 * math.exp(1 - 6 / 4)
    assert bleu(["the cat sat on"], ["the cat sat on the mat"]) == pytest.approx(expected)


def test_bleu_edge_cases():
    assert bleu([""], ["a reference"]) == 0.0
    assert bleu(["one two three"], ["one two three"]) == 0.0  # no 4-gram at all
    assert bleu(["a b c d e"], ["a b c d e"]) == pytest.approx(100.0)


@pytest.mark.parametrize("call, error, words", [
    (lambda: bleu("a b c", ["a b c"]), TypeError, "hypotheses must be a list"),
    (lambda: bleu([], []), ValueError, "at least one hypothesis"),
    (lambda: bleu(["a"], ["a", "b"]), ValueError, "2 segments but there are 1"),
    (lambda: bleu(["a"], ["a"], tokenize="intl"), ValueError, "unknown tokenize='intl'"),
    (lambda: bleu(["a"], [[None]]), ValueError, "no reference"),
    (lambda: bleu(["a"], [[3]]), TypeError, "references[0][0] must be a string"),
])
def test_bleu_bad_input(call, error, words):
    with pytest.raises(error, match="bleu: ") as info:
        call()
    assert words in str(info.value)


# ----------------------------------------------------------------------------- ROUGE
SCORER = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=False)


def assert_rouge_matches(hypothesis, reference):
    expected = SCORER.score(reference, hypothesis)
    got = rouge(hypothesis, reference)
    assert set(got) == set(expected)
    for name, score in expected.items():
        assert got[name].precision == pytest.approx(score.precision)
        assert got[name].recall == pytest.approx(score.recall)
        assert got[name].fmeasure == pytest.approx(score.fmeasure)


@settings(max_examples=300, deadline=None)
@given(hypothesis=sentences(16), reference=sentences(16))
def test_rouge_matches_rouge_score(hypothesis, reference):
    assert_rouge_matches(hypothesis, reference)


@settings(max_examples=100, deadline=None)
@given(reference=sentences(16), cut=st.integers(0, 40), extra=sentences(4))
def test_rouge_matches_rouge_score_on_near_copies(reference, cut, extra):
    assert_rouge_matches(reference[cut:] + extra, reference)


@pytest.mark.parametrize("hypothesis, reference", [
    ("", ""),
    ("", "something"),
    ("!!! ???", "..."),
    ("The CAT, the cat; THE cat.", "the cat"),
    ("İstanbul Kelvin K 3.14 naïve café", "istanbul kelvin 3 14 naive cafe"),
])
def test_rouge_fixed_cases_match_rouge_score(hypothesis, reference):
    assert_rouge_matches(hypothesis, reference)


def test_rouge_by_hand():
    scores = rouge("the cat was found under the bed", "the cat was under the bed")
    # unigrams: 6 of the 7 hypothesis tokens match (the x2, cat, was, under, bed)
    assert scores["rouge1"].precision == pytest.approx(6 / 7)
    assert scores["rouge1"].recall == pytest.approx(6 / 6)
    # bigrams: the cat, cat was, under the, the bed -> 4 of 6 (hyp) and of 5 (ref)
    assert scores["rouge2"].precision == pytest.approx(4 / 6)
    assert scores["rouge2"].recall == pytest.approx(4 / 5)
    assert scores["rouge2"].fmeasure == pytest.approx(2 * (4 / 6) * (4 / 5) / (4 / 6 + 4 / 5))
    # LCS: "the cat was under the bed", length 6
    assert scores["rougeL"].precision == pytest.approx(6 / 7)
    assert scores["rougeL"].recall == pytest.approx(1.0)


def test_rouge_rejects_non_strings():
    with pytest.raises(TypeError, match="rouge: expected a string"):
        rouge(["a"], "a")


# ----------------------------------------------------------------------------- perplexity
def test_perplexity():
    assert perplexity(0.0) == 1.0
    assert perplexity(math.log(50257)) == pytest.approx(50257)
    assert perplexity(1e6) == math.inf
