"""Track 5: data, decoding and evaluation. MLM masking and NSP pairs are graded by
statistics over many draws (and by rules every draw must keep); the filters, beam search
and metrics against the hidden reference on awkward inputs (ties, -inf, empty overlaps,
large logits)."""

import math

import numpy as np

from scratchlm.exercises.errors import CaseFailure
from scratchlm.exercises.runner import attempt
from scratchlm.exercises.tasks import Task, TaskCase, function_stub

#: how many standard errors a frequency may stray before it fails (a right answer fails
#: one case in ~1.7 million)
SIGMAS = 5.0

MASK, VOCAB, SPECIAL = 3, 1000, (0, 1, 2, 3)


def _mlm_ids(rng):
    ids = rng.integers(4, VOCAB, size=(160, 128))
    ids[:, 0], ids[:, -1], ids[::7, -20:] = 1, 2, 0  # [CLS], [SEP], padding
    return (ids,)


def _run_mlm(student, inputs, config):
    (ids,) = inputs

    def draw(seed):
        result = attempt("mlm_mask", student, ids.copy(), MASK, VOCAB, SPECIAL,
                         np.random.default_rng(seed))
        if not isinstance(result, (tuple, list)) or len(result) != 2:
            raise CaseFailure("mlm_mask should return (inputs, labels)")
        return [np.asarray(r) for r in result]
    inputs_a, labels_a = draw(1)
    inputs_b, labels_b = draw(1)
    inputs_c, _ = draw(2)
    return {"inputs": inputs_a, "labels": labels_a,
            "same seed, same result": bool(np.array_equal(inputs_a, inputs_b)
                                           and np.array_equal(labels_a, labels_b)),
            "another seed, another result": not np.array_equal(inputs_a, inputs_c)}


def _within(what, count, total, p):
    """Fail unless count/total is within SIGMAS standard errors of p."""
    sigma = math.sqrt(p * (1 - p) / total)
    rate = count / total
    if abs(rate - p) > SIGMAS * sigma:
        raise CaseFailure(f"{what}: {rate:.4f} ({count} of {total}); expected {p:.4f} ± "
                          f"{SIGMAS * sigma:.4f} ({SIGMAS:g} standard errors)")


def _check_mlm(prepared, output):
    (ids,) = prepared.inputs
    inputs, labels = output["inputs"], output["labels"]
    for name, array in (("inputs", inputs), ("labels", labels)):
        if array.shape != ids.shape or array.dtype.kind not in "iu":
            raise CaseFailure(f"{name} should be integers shaped like ids {ids.shape}, got "
                              f"{array.dtype} {array.shape}")
    chosen = labels != -100
    special = np.isin(ids, SPECIAL)
    if (chosen & special).any():
        raise CaseFailure(f"{int((chosen & special).sum())} special tokens were chosen; "
                          "[CLS], [SEP], [PAD] and [MASK] are never masked")
    if not np.array_equal(labels[chosen], ids[chosen]):
        raise CaseFailure("labels must hold the original id at every chosen position")
    if not np.array_equal(inputs[~chosen], ids[~chosen]):
        raise CaseFailure("a position that was not chosen changed (its label is -100, so "
                          "its input must stay the original token)")
    if inputs.min() < 0 or inputs.max() >= VOCAB:
        raise CaseFailure(f"inputs hold ids outside [0, {VOCAB})")
    n = int((~special).sum())
    _within("the fraction of ordinary tokens chosen", int(chosen.sum()), n, 0.15)
    picked = inputs[chosen]
    k = picked.size
    masked, kept = picked == MASK, picked == ids[chosen]
    _within("of the chosen, the fraction shown as [MASK]", int(masked.sum()), k,
            0.8 + 0.1 / VOCAB)
    _within("of the chosen, the fraction left unchanged", int(kept.sum()), k, 0.1 + 0.1 / VOCAB)
    random = picked[~masked & ~kept]
    mean, sd = (VOCAB - 1) / 2, math.sqrt((VOCAB ** 2 - 1) / 12)
    if random.size and abs(random.mean() - mean) > SIGMAS * sd / math.sqrt(random.size):
        raise CaseFailure(f"the random replacements average {random.mean():.1f}; uniform "
                          f"ids in [0, {VOCAB}) average {mean:.1f}")
    for what in ("same seed, same result", "another seed, another result"):
        if not output[what]:
            raise CaseFailure(f"not so: {what} (draw every random number from the rng "
                              "argument, not from np.random)")


def _documents(rng):
    return ([[f"d{d}s{s}" for s in range(int(n))] for d, n in
             enumerate(rng.integers(1, 9, size=60))],)


def _run_nsp(student, inputs, config):
    (documents,) = inputs
    pairs = attempt("nsp_pairs", student, documents, np.random.default_rng(5))
    try:
        return [[str(a), str(b), int(label)] for a, b, label in pairs]
    except (TypeError, ValueError):
        raise CaseFailure("nsp_pairs should return a list of (A, B, is_next)") from None


def _check_nsp(prepared, pairs):
    (documents,) = prepared.inputs
    where = {s: (d, i) for d, doc in enumerate(documents) for i, s in enumerate(doc)}
    expected = sum(max(len(doc) - 1, 0) for doc in documents)
    if len(pairs) != expected:
        raise CaseFailure(f"{len(pairs)} pairs; every two consecutive sentences of a "
                          f"document make one: {expected}")
    firsts = sorted(a for a, _, _ in pairs)
    if firsts != sorted(doc[i] for doc in documents for i in range(len(doc) - 1)):
        raise CaseFailure("each sentence that has a next one must be the A of exactly one pair")
    for a, b, label in pairs:
        if b not in where or label not in (0, 1):
            raise CaseFailure(f"pair ({a!r}, {b!r}, {label!r}): B must be a sentence of the "
                              "corpus and is_next 0 or 1")
        (da, ia), (db, ib) = where[a], where[b]
        if label == 1 and (db, ib) != (da, ia + 1):
            raise CaseFailure(f"({a!r}, {b!r}, 1): is_next = 1 needs B to be the sentence "
                              "right after A")
        if label == 0 and db == da:
            raise CaseFailure(f"({a!r}, {b!r}, 0): a random B must come from another "
                              "document, or it may well be the real next sentence")
    _within("the fraction of pairs with is_next = 1", sum(p[2] for p in pairs), len(pairs),
            0.5)


def _distinct(rng, n, scale=2.0):
    """n logits, no two equal."""
    return rng.permutation(np.arange(n)) * scale / n + rng.standard_normal() + rng.random(n) / (
        4 * n)


def _tie_at(rng, n, k):
    """A row of n logits whose k-th largest is tied with the (k+1)-th."""
    row = np.sort(_distinct(rng, n))[::-1].copy()
    row[k] = row[k - 1]
    return rng.permutation(row)


def _rows(*makers):
    """A case whose input is the rows the makers draw, stacked."""
    return lambda rng: (np.array([make(rng) for make in makers]) if len(makers) > 1
                        else makers[0](rng),)


def _beam_table(vocab, eos_boost=0.0, seed_shift=0):
    def make(rng):
        logits = rng.standard_normal((vocab, vocab)) * 2
        logits[:, 1] += eos_boost
        table = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        return (table,)
    return make


def _run_beam(student, inputs, config):
    result = attempt("beam_search", student, *inputs, **config)
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        raise CaseFailure("beam_search should return (tokens, score)")
    tokens, score = result
    return ([int(t) for t in tokens], float(score))


#: the words of the generated sentences of bleu and rouge_l
WORDS = ("the", "a", "cat", "dog", "sat", "ran", "on", "in", "mat", "park", "he", "she", "reads",
         "book", "every", "day", "it", "is", "raining", "now", "we", "go", "home", "early",
         "fast", "today", "big", "red", "old", "house")


def _sentence(rng, n, words=WORDS):
    return [str(w) for w in rng.choice(words, size=n)]


def _edited(rng, sentence, changes):
    """``sentence`` with ``changes`` tokens replaced, dropped or inserted at drawn places."""
    out = list(sentence)
    for _ in range(changes):
        where, kind = int(rng.integers(0, len(out) + 1)), int(rng.integers(0, 3))
        if kind == 0 and where < len(out):
            out[where] = str(rng.choice(WORDS))
        elif kind == 1 and where < len(out) and len(out) > 2:
            del out[where]
        else:
            out.insert(where, str(rng.choice(WORDS)))
    return out


def _corpus(*makers):
    """A case of sentence pairs, each (hypothesis, reference) drawn by a maker."""
    def make(rng):
        pairs = [maker(rng) for maker in makers]
        return [h for h, _ in pairs], [r for _, r in pairs]
    return make


def _identical(rng):
    sentence = _sentence(rng, int(rng.integers(6, 10)))
    return sentence, list(sentence)


def _repeats(rng):
    """A hypothesis repeating one word of the reference, which holds it at most twice."""
    reference = _sentence(rng, 6)
    return [reference[0]] * 7, reference


def _longer(rng):
    reference = _sentence(rng, 6)
    return reference + [str(rng.choice(WORDS))], reference


def _shorter(rng):
    reference = _sentence(rng, int(rng.integers(6, 9)))
    return reference[:int(rng.integers(3, 5))], reference


def _swapped_end(rng):
    """Four tokens, the last two swapped: no 4-gram in common."""
    reference = [str(w) for w in rng.choice(WORDS, size=4, replace=False)]
    return reference[:2] + reference[:1:-1], reference


def _close(rng, n=6):
    reference = _sentence(rng, n)
    return _edited(rng, reference, 2), reference


def _subsequence(rng):
    """A hypothesis that keeps the reference's order with a word changed and one inserted:
    its longest common subsequence is longer than any common substring."""
    reference = _sentence(rng, 6)
    hypothesis = list(reference)
    hypothesis[2] = "police"
    hypothesis.insert(4, "killed")
    return hypothesis, reference


def _disjoint(rng):
    return _sentence(rng, 2, ("x", "y", "z")), _sentence(rng, 3, WORDS)


def _empty_hypothesis(rng):
    return [], _sentence(rng, int(rng.integers(1, 4)))


def _repeated_tokens(rng):
    return _sentence(rng, 4, ("a", "b")), _sentence(rng, 5, ("a", "b"))


TASKS = [
    Task(
        name="mlm_masking", title="BERT's MLM masking, 15% then 80/10/10", track=5, points=4,
        formula="each non-special token chosen with p = 0.15; a chosen one becomes [MASK] "
                "(80%), a uniform random id (10%) or stays (10%); label = original id where "
                "chosen, −100 elsewhere",
        task="Write it with the rng given (a numpy Generator). Graded by statistics over "
             "20,000 tokens: the rates must be within 5 standard errors.",
        hints=("Draw one uniform number per token for 'chosen' and another for which of the "
               "three it becomes.",
               "Special ids (np.isin) are never chosen; labels are −100 wherever not chosen.",
               "Random replacements: rng.integers(0, vocab_size, size=how many)."),
        entry="mlm_mask", library=("scratchlm.text.masked_lm.mask_tokens",),
        stub=function_stub("mlm_mask(ids, mask_id, vocab_size, special_ids, rng)",
                           "Returns (inputs, labels), int arrays shaped like ids."),
        solution="data:mlm_mask", run=_run_mlm, check=_check_mlm,
        expect=lambda inputs, config, rng: None,
        graded="by statistics over 20,000 tokens (15% chosen, then 80/10/10, within 5 "
               "standard errors) and rules every draw keeps; no reference output",
        cases=(TaskCase("160 × 128 ids with [CLS], [SEP] and padding", _mlm_ids),)),
    Task(
        name="nsp_pairs", title="Next-sentence-prediction pairs, 50/50", track=5, points=3,
        formula="for consecutive sentences (A, next) of a document: with p = ½ (A, next, 1), "
                "else (A, a random sentence of another document, 0)",
        task="Write it with the rng given; graded by the rules every pair must keep and by "
             "the is_next rate.",
        hints=("Loop over documents and over i < len(doc) − 1.",
               "The random B comes from a different, non-empty document.",
               "Draw with rng (rng.random(), rng.integers), not np.random."),
        entry="nsp_pairs", library=("scratchlm.text.next_sentence.make_nsp_pairs",),
        stub=function_stub("nsp_pairs(documents, rng)",
                           "documents: a list of documents, each a list of sentences; returns "
                           "a list of (A, B, is_next)."),
        solution="data:nsp_pairs", run=_run_nsp, check=_check_nsp,
        expect=lambda inputs, config, rng: None,
        graded="by rules every pair keeps and the is_next rate by statistics; no reference "
               "output",
        cases=(TaskCase("60 documents of 1 to 8 sentences", _documents),)),
    Task(
        name="top_k", title="Top-k filtering", track=5, points=2,
        formula="keep logitᵢ ⇔ logitᵢ ≥ the k-th largest of its row; the rest become −∞",
        task="Filter each row (the last axis); keep every logit tied with the k-th; k larger "
             "than the row keeps it all.",
        hints=("np.sort(row)[-k] is the k-th largest.",
               "Compare with ≥, so ties with the k-th all stay; work on a copy."),
        entry="top_k_filter", library=("scratchlm.sampling_filters.top_k_filter",),
        stub=function_stub("top_k_filter(logits, k)", "Removed entries become -inf."),
        solution="data:top_k_filter", input_names=("logits",),
        cases=(TaskCase("k=2 of 5", _rows(lambda rng: _distinct(rng, 5)), {"k": 2}),
               TaskCase("ties at the k-th (and a row all equal)",
                        _rows(lambda rng: _tie_at(rng, 4, 2),
                              lambda rng: np.full(4, rng.standard_normal())), {"k": 2}),
               TaskCase("k beyond the vocabulary", _rows(lambda rng: _distinct(rng, 2)),
                        {"k": 5}),
               TaskCase("a batch of rows, one -inf", lambda rng: (np.where(
                   np.eye(3, 6, dtype=bool), -np.inf, rng.standard_normal((2, 3, 6))),),
                        {"k": 3}))),
    Task(
        name="top_p", title="Top-p (nucleus) filtering", track=5, points=3,
        formula="sort descending; keep a token when the probabilities ranked above it sum "
                "to less than p (so the one that crosses p stays, and the top one always)",
        task="Filter each row; among equal logits the later index ranks higher (a stable "
             "ascending sort, read backwards).",
        hints=("softmax the sorted row, then the exclusive cumulative sum: cumsum − probs.",
               "Keep where that sum < p; scatter the decision back to the original order.",
               "np.argsort(row, kind='stable')[::-1] ranks ties as required."),
        entry="top_p_filter", library=("scratchlm.sampling_filters.top_p_filter",),
        stub=function_stub("top_p_filter(logits, p)", "Removed entries become -inf."),
        solution="data:top_p_filter", input_names=("logits",),
        cases=(TaskCase("p=0.9 over 5", _rows(lambda rng: _distinct(rng, 5, scale=5.0)),
                        {"p": 0.9}),
               TaskCase("p small: only the top", _rows(lambda rng: _distinct(rng, 3, scale=4.0)),
                        {"p": 0.01}),
               TaskCase("p=1 keeps all (and a row all equal)",
                        _rows(lambda rng: _distinct(rng, 3),
                              lambda rng: np.full(3, rng.standard_normal())), {"p": 1.0}),
               TaskCase("ties on the boundary",
                        _rows(lambda rng: np.full(4, rng.standard_normal())), {"p": 0.5}),
               TaskCase("a batch", lambda rng: (rng.standard_normal((2, 3, 7)) * 2,),
                        {"p": 0.7}))),
    Task(
        name="beam_search", title="Beam search over a toy model", track=5, points=4,
        formula="score = Σ log p(tokenₜ | tokenₜ₋₁) from the table log_probs (V, V); keep the "
                "beam_width best expansions each step; a beam ending in eos is finished",
        task="Start from [bos] with score 0; expand every live beam by every token; keep the "
             "beam_width best; move beams that end in eos to the finished list; stop after "
             "max_len steps or when none is live. Return the best (tokens, score) of finished "
             "and live (no length penalty). The tables are drawn at random, so no two scores "
             "tie: how you break ties is not graded.",
        hints=("Each step, the candidates are (seq + [token], score + log_probs[seq[-1], "
               "token]) for every live seq and every token.",
               "Sort the candidates by score, descending, and keep beam_width of them; "
               "finished ones leave the live set but still count at the end.",
               "With beam_width = 1 you get greedy decoding: a good check."),
        entry="beam_search", library=("scratchlm.generation.beam_search",
                                      "scratchlm.generation.batched_beam_search"),
        stub=function_stub("beam_search(log_probs, bos, eos, beam_width, max_len)",
                           "Returns (tokens including bos, total log-probability)."),
        solution="data:beam_search", run=_run_beam, output_names=("tokens", "score"),
        cases=(TaskCase("greedy (width 1)", _beam_table(6),
                        {"bos": 0, "eos": 1, "beam_width": 1, "max_len": 5}),
               TaskCase("width 3", _beam_table(6),
                        {"bos": 0, "eos": 1, "beam_width": 3, "max_len": 5}),
               TaskCase("eos likely: beams finish early", _beam_table(5, eos_boost=2.0),
                        {"bos": 0, "eos": 1, "beam_width": 2, "max_len": 6}),
               TaskCase("width above the vocabulary", _beam_table(3),
                        {"bos": 2, "eos": 1, "beam_width": 5, "max_len": 3}))),
    Task(
        name="bleu", title="Corpus BLEU", track=5, points=4,
        formula="pₙ = Σ clipped n-gram matches / Σ hypothesis n-grams (n = 1…max_n, default 4, "
                "summed over the corpus; a sentence shorter than n has no n-grams and adds 0 "
                "to both sums);  c, r = the total hypothesis and reference lengths;  BP = 1 if "
                "c ≥ r else e^(1 − r/c);  BLEU = 100 · BP · exp((1/max_n) Σ log pₙ), and 0 "
                "when some pₙ has no match (so also when c = 0)",
        task="Sum the counts over all sentence pairs (token lists), then combine. Graded on "
             "generated sentences, with max_n = 4 and max_n = 2.",
        hints=("Clip each hypothesis n-gram's count at its count in the reference "
               "(Counter, min).",
               "c and r are the total hypothesis and reference lengths of the corpus.",
               "A sentence shorter than n has no n-grams: max(len − n + 1, 0)."),
        entry="bleu", library=("scratchlm.metrics.bleu",),
        stub=function_stub("bleu(hypotheses, references, max_n=4)",
                           "Corpus BLEU (0–100) of token-list hypotheses against one "
                           "reference each.", imports="import math\nfrom collections import "
                                                      "Counter\n"),
        solution="data:bleu", input_names=("hypotheses", "references"),
        cases=(TaskCase("identical", _corpus(_identical)),
               TaskCase("clipping: one word repeated", _corpus(_repeats, _longer, _identical)),
               TaskCase("short hypothesis: brevity penalty", _corpus(_shorter, _close)),
               TaskCase("no 4-gram in common", _corpus(_swapped_end)),
               TaskCase("a corpus of three, one sentence shorter than 4",
                        _corpus(_close, _close, lambda rng: _close(rng, 3))),
               TaskCase("empty hypotheses: c = 0", _corpus(lambda rng: ([], _sentence(rng, 4)),
                                                           lambda rng: ([], _sentence(rng, 2)))),
               TaskCase("max_n = 2", _corpus(_close, _close), {"max_n": 2}))),
    Task(
        name="rouge_l", title="ROUGE-L from the longest common subsequence", track=5, points=3,
        formula="P = LCS/|hyp|,  R = LCS/|ref|,  F = 2PR/(P + R);  all 0 when LCS = 0",
        task="Compute the LCS length by dynamic programming (not contiguous: a subsequence), "
             "then P, R and F.",
        hints=("table[i+1][j+1] = table[i][j] + 1 if a[i] == b[j] else max(table[i][j+1], "
               "table[i+1][j]).",
               "Guard the empty cases: LCS = 0 gives (0, 0, 0)."),
        entry="rouge_l", library=("scratchlm.metrics.rouge", "scratchlm.metrics._lcs_length"),
        stub=function_stub("rouge_l(hypothesis, reference)",
                           "(precision, recall, f) of two token lists.", imports=""),
        solution="data:rouge_l", output_names=("precision", "recall", "f"),
        cases=(TaskCase("a subsequence, not a substring", _subsequence),
               TaskCase("identical", _identical),
               TaskCase("nothing in common", _disjoint),
               TaskCase("empty hypothesis", _empty_hypothesis),
               TaskCase("repeated tokens", _repeated_tokens))),
    Task(
        name="perplexity", title="Perplexity from logits", track=5, points=3,
        formula="PPL = exp(mean over targets ≠ ignore_index of (logsumexp(z) − z_target))",
        task="Compute it stably: logits in the thousands must not overflow.",
        hints=("logsumexp(z) = m + log Σ exp(z − m) with m = max z.",
               "Average only over the positions whose target is not ignore_index."),
        entry="perplexity", library=("scratchlm.metrics.perplexity",
                                     "scratchlm.functional.cross_entropy"),
        stub=function_stub("perplexity(logits, targets, ignore_index=-100)",
                           "logits (…, V), targets (…) ints."),
        solution="data:perplexity", input_names=("logits", "targets"),
        cases=(TaskCase("(4, 5)", lambda rng: (rng.standard_normal((4, 5)),
                                               np.array([0, 4, 2, 2]))),
               TaskCase("(2, 3, 6) with ignored targets", lambda rng: (
                   rng.standard_normal((2, 3, 6)), np.array([[1, -100, 5], [0, 0, -100]]))),
               TaskCase("logits in the thousands", lambda rng: (
                   rng.standard_normal((3, 4)) * 3 + 2000.0, np.array([1, 2, 3]))))),
]
