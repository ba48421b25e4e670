"""Evaluation metrics: perplexity, corpus BLEU (as sacrebleu) and ROUGE (as rouge-score).

BLEU (Papineni et al., 2002) over a corpus of hypotheses ``h`` and references:

    p_n  = Σ_h Σ_{g ∈ n-grams(h)} min(count_h(g), max_ref count_ref(g)) / Σ_h |n-grams(h)|
    BP   = 1 if c > r else exp(1 − r / c)      (c: hypothesis tokens, r: closest-reference tokens)
    BLEU = 100 · BP · exp((1/4) Σ_{n=1..4} log p_n)

with sacrebleu's defaults: the ``13a`` tokenizer (mteval-v13a, used by WMT), "closest" reference
length (ties go to the shorter reference) and ``exp`` smoothing — an order with no match gets
``p_n = 1 / (2^k · total_n)`` for the k-th such order. A corpus without a single matching
n-gram, or too short to have any 4-gram, scores 0.

ROUGE (Lin, 2004) between one hypothesis and one reference, tokenized as rouge-score does
(lowercase, keep the runs of ``[a-z0-9]``, no stemming):

    ROUGE-N: P = overlap_n / |n-grams(hyp)|,  R = overlap_n / |n-grams(ref)|
    ROUGE-L: P = LCS(hyp, ref) / |hyp|,       R = LCS(hyp, ref) / |ref|
    F = 2PR / (P + R)   (0 when P + R = 0)

where ``overlap_n = Σ_g min(count_hyp(g), count_ref(g))`` and LCS is the length of the longest
common subsequence of tokens.
"""

import math
import re
from collections import Counter
from typing import NamedTuple

import numpy as np

from scratchlm.checks import check_int
from scratchlm.errors import ArgumentError, ArgumentTypeError

MAX_ORDER = 4


def perplexity(mean_nll):
    """``exp(mean_nll)``: the perplexity of a model whose mean negative log-likelihood per
    token (natural log, as cross-entropy returns it) is ``mean_nll``. Any loss gives a
    number: ``inf`` when exp overflows (a loss above about 709.78, or inf), ``nan`` for NaN,
    so a summary can always print it (``f"{perplexity(loss):.2f}"`` shows 'inf' or 'nan')."""
    if isinstance(mean_nll, (bool, str, bytes)) or not isinstance(
            mean_nll, (int, float, np.integer, np.floating)) and getattr(mean_nll, "ndim", 1):
        raise ArgumentTypeError(f"perplexity: mean_nll={mean_nll!r:.40}; expected a number "
                                "(a mean negative log-likelihood)", where="perplexity",
                                name="mean_nll", value=mean_nll)
    if float(mean_nll) < 0:
        raise ArgumentError(f"perplexity: mean_nll={float(mean_nll)!r} is negative; expected a "
                            "mean negative log-likelihood ≥ 0 (pass the loss, not its "
                            "log-probability)", where="perplexity", name="mean_nll",
                            value=mean_nll)
    try:
        return math.exp(float(mean_nll))
    except OverflowError:
        return math.inf


# ----------------------------------------------------------------------------- BLEU tokenizers
# mteval-v13a: every ASCII punctuation mark except ' , - . becomes its own token (the space is
# in sacrebleu's set too, which changes nothing); then periods and commas are split off unless
# they sit between digits, and a dash is split off after a digit.
_13A_SYMBOLS = " !\"#$%&()*+/:;<=>?@[\\]^_`{|}~"
_SPLIT_RULES = (
    (re.compile("([" + re.escape(_13A_SYMBOLS) + "])"), r" \1 "),
    (re.compile(r"([^0-9])([.,])"), r"\1 \2 "),
    (re.compile(r"([.,])([^0-9])"), r" \1 \2"),
    (re.compile(r"([0-9])(-)"), r"\1 \2 "),
)
_HTML_ENTITIES = (("&quot;", '"'), ("&amp;", "&"), ("&lt;", "<"), ("&gt;", ">"))

# Code points the `zh` tokenizer treats as Chinese characters. sacrebleu's table writes two
# supplementary-plane ranges with four-digit escapes, so they act as U+2001–U+2A6D and
# U+2F81–U+2FA1 (general punctuation, arrows, maths symbols...); they are copied as they act,
# so that scores match sacrebleu's.
_ZH_RANGES = (
    (0x3400, 0x4DB5), (0x4E00, 0x9FA5), (0x9FA6, 0x9FBB), (0xF900, 0xFA2D), (0xFA30, 0xFA6A),
    (0xFA70, 0xFAD9), (0x2001, 0x2A6D), (0x2F81, 0x2FA1), (0xFF00, 0xFFEF), (0x2E80, 0x2EFF),
    (0x3000, 0x303F), (0x31C0, 0x31EF), (0x2F00, 0x2FDF), (0x2FF0, 0x2FFF), (0x3100, 0x312F),
    (0x31A0, 0x31BF), (0xFE10, 0xFE1F), (0xFE30, 0xFE4F), (0x2600, 0x26FF), (0x2700, 0x27BF),
    (0x3200, 0x32FF), (0x3300, 0x33FF),
)
_ZH_CHAR = re.compile(
    "(["
    + "".join(f"{re.escape(chr(lo))}-{re.escape(chr(hi))}" for lo, hi in _ZH_RANGES)
    + "])"
)


def _apply_split_rules(line):
    for pattern, replacement in _SPLIT_RULES:
        line = pattern.sub(replacement, line)
    return line.split()


def _tokenize_13a(line):
    line = line.replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
    for entity, char in _HTML_ENTITIES:
        line = line.replace(entity, char)
    return _apply_split_rules(f" {line} ")


def _tokenize_zh(line):
    """Each Chinese character is a token; the rest is split by the 13a rules."""
    return _apply_split_rules(_ZH_CHAR.sub(r" \1 ", line.strip()))


def _tokenize_none(line):
    return line.split()


BLEU_TOKENIZERS = {"13a": _tokenize_13a, "zh": _tokenize_zh, "none": _tokenize_none}


# ----------------------------------------------------------------------------- BLEU
def _ngram_counts(tokens):
    """Counts of every n-gram of ``tokens`` for n = 1..MAX_ORDER."""
    return Counter(
        tuple(tokens[i:i + n])
        for n in range(1, MAX_ORDER + 1)
        for i in range(len(tokens) - n + 1)
    )


def _closest_length(hyp_len, ref_lens):
    """The reference length nearest the hypothesis length; ties go to the shorter one."""
    return min(ref_lens, key=lambda r: (abs(r - hyp_len), r))


def _reference_streams(references, num_hypotheses):
    """``references`` as a list of streams, each holding one string (or None) per hypothesis."""
    if isinstance(references, str) or not hasattr(references, "__len__"):
        raise TypeError("bleu: references must be a list of strings (one per hypothesis) or "
                        f"a list of reference streams, got {type(references).__name__}")
    if len(references) > 0 and all(isinstance(r, str) for r in references):
        references = [references]
    for j, stream in enumerate(references):
        if isinstance(stream, str) or not hasattr(stream, "__len__"):
            raise TypeError(f"bleu: reference stream {j} must be a list of strings, "
                            f"got {type(stream).__name__}")
        if len(stream) != num_hypotheses:
            raise ValueError(
                f"bleu: reference stream {j} has {len(stream)} segments but there are "
                f"{num_hypotheses} hypotheses (streams are laid out as sacrebleu takes them: "
                "references[j][i] is the j-th reference of hypothesis i)")
        for i, ref in enumerate(stream):
            if ref is not None and not isinstance(ref, str):
                raise TypeError(f"bleu: references[{j}][{i}] must be a string or None, "
                                f"got {type(ref).__name__}")
    if not references:
        raise ValueError("bleu: no references were given")
    return references


def bleu(hypotheses, references, tokenize="13a"):
    """Corpus BLEU in 0–100, as ``sacrebleu.corpus_bleu(hypotheses, streams).score`` is.

    ``references`` is one reference string per hypothesis, or a list of reference streams
    (``references[j][i]`` is the j-th reference of hypothesis i; None where a hypothesis has
    fewer references). ``tokenize`` is ``"13a"`` (default), ``"zh"`` or ``"none"``.
    Formulas in the module docstring.
    """
    if tokenize not in BLEU_TOKENIZERS:
        raise ValueError(f"bleu: unknown tokenize={tokenize!r}; "
                         f"expected one of {sorted(BLEU_TOKENIZERS)}")
    if isinstance(hypotheses, str) or not hasattr(hypotheses, "__len__"):
        raise TypeError("bleu: hypotheses must be a list of strings, "
                        f"got {type(hypotheses).__name__}")
    if len(hypotheses) == 0:
        raise ValueError("bleu: needs at least one hypothesis")
    for i, hyp in enumerate(hypotheses):
        if not isinstance(hyp, str):
            raise TypeError(f"bleu: hypotheses[{i}] must be a string, got {type(hyp).__name__}")
    streams = _reference_streams(references, len(hypotheses))
    tokenizer = BLEU_TOKENIZERS[tokenize]

    hyp_len = ref_len = 0
    matches = [0] * MAX_ORDER
    totals = [0] * MAX_ORDER
    for i, hyp in enumerate(hypotheses):
        refs = [stream[i] for stream in streams if stream[i] is not None]
        if not refs:
            raise ValueError(f"bleu: hypothesis {i} has no reference (all are None)")
        ref_tokens = [tokenizer(ref.rstrip()) for ref in refs]
        max_ref_counts = Counter()
        for tokens in ref_tokens:
            max_ref_counts |= _ngram_counts(tokens)  # | keeps the larger count
        hyp_tokens = tokenizer(hyp.rstrip())
        hyp_len += len(hyp_tokens)
        ref_len += _closest_length(len(hyp_tokens), [len(t) for t in ref_tokens])
        for ngram, count in _ngram_counts(hyp_tokens).items():
            totals[len(ngram) - 1] += count
            matches[len(ngram) - 1] += min(count, max_ref_counts[ngram])

    return _bleu_from_counts(matches, totals, hyp_len, ref_len)


def _bleu_from_counts(matches, totals, hyp_len, ref_len):
    """BLEU from the corpus n-gram match counts and lengths (``exp`` smoothing)."""
    if not any(matches):
        return 0.0
    if hyp_len < ref_len:
        brevity_penalty = math.exp(1 - ref_len / hyp_len)
    else:
        brevity_penalty = 1.0
    log_precision_sum = 0.0
    smoothing = 1
    for matched, total in zip(matches, totals):
        if total == 0:  # the corpus is too short for this order: log p_n = -inf
            return 0.0
        if matched == 0:
            smoothing *= 2
            precision = 100.0 / (smoothing * total)
        else:
            precision = 100.0 * matched / total
        log_precision_sum += math.log(precision)
    return brevity_penalty * math.exp(log_precision_sum / MAX_ORDER)


# ----------------------------------------------------------------------------- ROUGE
class RougeScore(NamedTuple):
    precision: float
    recall: float
    fmeasure: float


_ROUGE_TOKEN = re.compile(r"[a-z0-9]+")


def _rouge_tokens(text):
    if not isinstance(text, str):
        raise TypeError(f"rouge: expected a string, got {type(text).__name__}")
    return _ROUGE_TOKEN.findall(text.lower())


def _score(matched, hyp_count, ref_count):
    precision = matched / hyp_count if hyp_count else 0.0
    recall = matched / ref_count if ref_count else 0.0
    if precision + recall > 0:
        fmeasure = 2 * precision * recall / (precision + recall)
    else:
        fmeasure = 0.0
    return RougeScore(precision, recall, fmeasure)


def _rouge_n(hyp_tokens, ref_tokens, n):
    hyp_ngrams = Counter(tuple(hyp_tokens[i:i + n]) for i in range(len(hyp_tokens) - n + 1))
    ref_ngrams = Counter(tuple(ref_tokens[i:i + n]) for i in range(len(ref_tokens) - n + 1))
    overlap = sum((hyp_ngrams & ref_ngrams).values())
    return _score(overlap, sum(hyp_ngrams.values()), sum(ref_ngrams.values()))


def _lcs_length(a, b):
    """Length of the longest common subsequence, by the row-by-row dynamic programme
    ``L[i][j] = L[i-1][j-1] + 1 if a[i] == b[j] else max(L[i-1][j], L[i][j-1])``."""
    previous = [0] * (len(b) + 1)
    for token in a:
        current = [0]
        for j, other in enumerate(b):
            if token == other:
                current.append(previous[j] + 1)
            else:
                current.append(max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def rouge(hypothesis, reference):
    """ROUGE-1, ROUGE-2 and ROUGE-L of one hypothesis against one reference, as
    ``rouge_score.rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"]).score(reference,
    hypothesis)``. Returns ``{"rouge1": s, "rouge2": s, "rougeL": s}``, each ``s`` a
    :class:`RougeScore` with ``.precision``, ``.recall`` and ``.fmeasure``."""
    hyp_tokens = _rouge_tokens(hypothesis)
    ref_tokens = _rouge_tokens(reference)
    return {
        "rouge1": _rouge_n(hyp_tokens, ref_tokens, 1),
        "rouge2": _rouge_n(hyp_tokens, ref_tokens, 2),
        "rougeL": _score(_lcs_length(hyp_tokens, ref_tokens), len(hyp_tokens), len(ref_tokens)),
    }


def classification_scores(labels, predictions, num_labels=None):
    """Accuracy and macro-averaged F1 of integer ``predictions`` against ``labels``, as
    scikit-learn's ``accuracy_score`` and ``f1_score(average="macro")`` (a class with no
    prediction and no label gets F1 0): ``{"accuracy": a, "f1": f, "f1_per_label": [...]}``,
    each in [0, 1]."""
    where = "classification_scores"
    labels, predictions = np.asarray(labels).ravel(), np.asarray(predictions).ravel()
    if labels.shape != predictions.shape or labels.size == 0:
        raise ArgumentError(f"classification_scores: {labels.size} labels and "
                            f"{predictions.size} predictions; expected as many, at least one",
                            where=where, name="labels", value=labels)
    for name, values in (("labels", labels), ("predictions", predictions)):
        if values.dtype.kind not in "iu":
            raise ArgumentTypeError(f"{where}: {name} have dtype {values.dtype}; expected "
                                    "integer class indices", where=where, name=name,
                                    value=values)
        if int(values.min()) < 0:
            raise ArgumentError(f"{where}: {name} hold {int(values.min())}; expected class "
                                "indices ≥ 0", where=where, name=name, value=values)
    highest = int(max(labels.max(), predictions.max()))
    if num_labels is None:
        classes = highest + 1
    else:
        classes = check_int(where, "num_labels", num_labels, 1)
        if highest >= classes:
            raise ArgumentError(f"{where}: num_labels={classes} but the labels or predictions "
                                f"hold class {highest}; expected num_labels > {highest}",
                                where=where, name="num_labels", value=num_labels)
    per_label = []
    for c in range(classes):
        true_positive = np.sum((predictions == c) & (labels == c))
        predicted, actual = np.sum(predictions == c), np.sum(labels == c)
        denominator = predicted + actual
        per_label.append(float(2 * true_positive / denominator) if denominator else 0.0)
    return {"accuracy": float(np.mean(labels == predictions)),
            "f1": float(np.mean(per_label)), "f1_per_label": per_label}
