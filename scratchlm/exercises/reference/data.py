"""Hidden reference of track 5, data, decoding and evaluation (instructor source only)."""

import math
from collections import Counter

import numpy as np


def mlm_mask(ids, mask_id, vocab_size, special_ids, rng, mask_prob=0.15):
    ids = np.asarray(ids, dtype=np.int64)
    chosen = (rng.random(ids.shape) < mask_prob) & ~np.isin(ids, list(special_ids))
    roll = rng.random(ids.shape)
    inputs = ids.copy()
    inputs[chosen & (roll < 0.8)] = mask_id
    swap = chosen & (roll >= 0.8) & (roll < 0.9)
    inputs[swap] = rng.integers(0, vocab_size, size=int(swap.sum()))
    return inputs, np.where(chosen, ids, -100)


def nsp_pairs(documents, rng):
    pairs = []
    for d, document in enumerate(documents):
        for i in range(len(document) - 1):
            if rng.random() < 0.5:
                pairs.append((document[i], document[i + 1], 1))
            else:
                others = [e for e in range(len(documents)) if e != d and documents[e]]
                other = documents[others[rng.integers(len(others))]]
                pairs.append((document[i], other[rng.integers(len(other))], 0))
    return pairs


def top_k_filter(logits, k):
    logits = np.asarray(logits, dtype=np.float64)
    k = min(k, logits.shape[-1])
    kth = np.sort(logits, axis=-1)[..., -k][..., None]
    return np.where(logits < kth, -np.inf, logits)


def top_p_filter(logits, p):
    logits = np.asarray(logits, dtype=np.float64)
    rows = logits.reshape(-1, logits.shape[-1])
    out = np.full_like(rows, -np.inf)
    for r, row in enumerate(rows):
        order = np.argsort(row, kind="stable")[::-1]
        probs = np.exp(row[order] - row[order[0]])
        probs /= probs.sum()
        before = np.concatenate([[0.0], np.cumsum(probs)[:-1]])
        keep = order[before < p]
        out[r, keep] = row[keep]
    return out.reshape(logits.shape)


def beam_search(log_probs, bos, eos, beam_width, max_len):
    live, finished = [([bos], 0.0)], []
    for _ in range(max_len):
        candidates = [(seq + [token], score + float(log_probs[seq[-1], token]))
                      for seq, score in live for token in range(log_probs.shape[1])]
        candidates.sort(key=lambda c: -c[1])
        live = []
        for seq, score in candidates[:beam_width]:
            (finished if seq[-1] == eos else live).append((seq, score))
        if not live:
            break
    best = max(finished + live, key=lambda c: c[1])
    return best[0], best[1]


def _ngrams(tokens, n):
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def bleu(hypotheses, references, max_n=4):
    matches, totals = [0] * max_n, [0] * max_n
    hyp_len = ref_len = 0
    for hyp, ref in zip(hypotheses, references):
        hyp_len, ref_len = hyp_len + len(hyp), ref_len + len(ref)
        for n in range(1, max_n + 1):
            h, r = _ngrams(hyp, n), _ngrams(ref, n)
            matches[n - 1] += sum(min(c, r[g]) for g, c in h.items())
            totals[n - 1] += max(len(hyp) - n + 1, 0)
    if min(matches) == 0:
        return 0.0
    log_precision = sum(math.log(m / t) for m, t in zip(matches, totals)) / max_n
    brevity = 1.0 if hyp_len >= ref_len else math.exp(1 - ref_len / hyp_len)
    return 100.0 * brevity * math.exp(log_precision)


def rouge_l(hypothesis, reference):
    a, b = hypothesis, reference
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a)):
        for j in range(len(b)):
            table[i + 1][j + 1] = (table[i][j] + 1 if a[i] == b[j]
                                   else max(table[i][j + 1], table[i + 1][j]))
    lcs = table[-1][-1]
    if lcs == 0:
        return 0.0, 0.0, 0.0
    precision, recall = lcs / len(a), lcs / len(b)
    return precision, recall, 2 * precision * recall / (precision + recall)


def perplexity(logits, targets, ignore_index=-100):
    rows = logits.reshape(-1, logits.shape[-1])
    targets = np.asarray(targets).reshape(-1)
    keep = targets != ignore_index
    top = rows.max(axis=-1, keepdims=True)
    log_z = top[:, 0] + np.log(np.exp(rows - top).sum(axis=-1))
    nll = log_z[keep] - rows[keep, targets[keep]]
    return float(np.exp(nll.mean()))
