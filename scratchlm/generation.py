"""Decoding: turning a language model's next-token distribution into text.

At each step the model gives logits z over the vocabulary for the next token, and

- greedy decoding takes argmax z;
- sampling draws from softmax(z / τ) (temperature τ: < 1 sharpens, > 1 flattens);
- top-k sampling first keeps the k largest logits, top-p (nucleus) the smallest set of
  tokens whose probability reaches p (:mod:`scratchlm.sampling_filters`);
- beam search keeps the ``beam_width`` prefixes of highest total log-probability
  Σ log p(yₜ | y<ₜ), extending each by every token and keeping the best at every step.

With a key/value cache each step feeds only the newest token; the result equals
recomputing the whole prefix (the tests check it). Past ``block_size`` the model can only
condition on the last ``block_size`` tokens, whose positions all shift at every step, so
from there each step recomputes that window without the cache.

A model used here provides ``block_size``, ``new_kv_caches()`` and
``model(idx, kv_caches=...) -> (logits, _)``.
"""

import numpy as np

from scratchlm import backend
from scratchlm.autograd.grad_mode import no_grad
from scratchlm.autograd.tensor import Tensor
from scratchlm.sampling_filters import top_k_filter, top_p_filter

__all__ = ["generate", "beam_search", "top_k_filter", "top_p_filter", "sample_next"]


def _as_ids(idx, device):
    ids = idx.data if isinstance(idx, Tensor) else idx
    ids = backend.to_device(np.asarray(backend.to_numpy(ids)), device)
    if ids.ndim != 2 or ids.dtype.kind not in "iu":
        raise ValueError(f"generate: idx should be integer token ids of shape (batch, time), "
                         f"got shape {ids.shape} and dtype {ids.dtype}")
    if ids.shape[1] == 0:
        raise ValueError("generate: the prompt is empty; give at least one token to start "
                         "from")
    return ids.astype(np.int64)


def _model_device(model):
    return next(iter(model.parameters())).device


def sample_next(logits, temperature=1.0, top_k=None, top_p=None, do_sample=True, rng=None):
    """The next token id per row of ``logits`` (B, V): greedy, or sampled after filtering."""
    xp = backend.get_array_module(logits)
    if not do_sample or temperature == 0:
        return logits.argmax(axis=-1)
    if temperature < 0:
        raise ValueError(f"sample_next: temperature must be ≥ 0, got {temperature}")
    logits = logits.astype(np.float64) / temperature
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    probs = xp.exp(logits - logits.max(axis=-1, keepdims=True))
    probs /= probs.sum(axis=-1, keepdims=True)
    # Inverse-CDF sampling, all rows at once: the first token whose cumulative mass passes u.
    rng = rng or backend.generator(backend.device_of(logits))
    u = xp.asarray(rng.random((probs.shape[0], 1)))
    chosen = (xp.cumsum(probs, axis=-1) < u * probs.sum(axis=-1, keepdims=True)).sum(axis=-1)
    return xp.minimum(chosen, probs.shape[-1] - 1)


def generate(model, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None,
             do_sample=True, use_cache=True, rng=None):
    """``idx`` (B, T) extended by ``max_new_tokens`` tokens: (B, T + max_new_tokens), a Tensor
    when ``idx`` is one, else an array."""
    ids = _as_ids(idx, _model_device(model))
    xp = backend.get_array_module(ids)
    block_size = model.block_size
    was_training = model.training
    model.eval()
    caches = model.new_kv_caches() if use_cache else None
    try:
        with no_grad():
            for _ in range(max_new_tokens):
                if caches is not None and ids.shape[1] <= block_size:
                    fed = caches[0].length  # tokens the cache already holds
                    logits, _ = model(ids[:, fed:], kv_caches=caches)
                else:
                    logits, _ = model(ids[:, -block_size:])
                next_ids = sample_next(logits.data[:, -1, :], temperature, top_k, top_p,
                                       do_sample, rng)
                ids = xp.concatenate([ids, next_ids[:, None].astype(ids.dtype)], axis=1)
    finally:
        model.train(was_training)
    return Tensor._wrap(ids) if isinstance(idx, Tensor) else ids


def _log_softmax(logits):
    xp = backend.get_array_module(logits)
    logits = logits.astype(np.float64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=-1, keepdims=True))


def beam_search(model, idx, max_new_tokens, beam_width=4, eos_id=None, length_penalty=1.0):
    """The most probable continuation of one prompt ``idx`` (1, T) found by beam search.

    Keeps ``beam_width`` hypotheses; each step scores every (hypothesis, token) extension by
    its summed log-probability and keeps the best ``beam_width``. A hypothesis that emits
    ``eos_id`` is finished. Finished ones are ranked by score / length^length_penalty.
    Returns (ids (1, T + n), score). Recomputes each step's window (no cache), so it works
    for any length.
    """
    ids = _as_ids(idx, _model_device(model))
    if ids.shape[0] != 1:
        raise ValueError(f"beam_search: expects one prompt of shape (1, T), got {ids.shape}")
    xp = backend.get_array_module(ids)
    prompt_length = ids.shape[1]
    beams, scores = ids, xp.zeros(1)
    finished = []
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            for _ in range(max_new_tokens):
                logits, _ = model(beams[:, -model.block_size:])
                log_probs = _log_softmax(logits.data[:, -1, :])          # (beams, V)
                candidates = backend.to_numpy((scores[:, None] + log_probs).reshape(-1))
                vocab = log_probs.shape[1]
                keep = []  # the best extensions; those ending in eos are finished instead
                for flat in np.argsort(-candidates, kind="stable")[:2 * beam_width]:
                    beam, token = divmod(int(flat), vocab)
                    if token == eos_id and len(keep) < beam_width:
                        finished.append((xp.concatenate([beams[beam], xp.asarray([token])]),
                                         float(candidates[flat])))
                    elif token != eos_id:
                        keep.append((beam, token, candidates[flat]))
                    if len(keep) == beam_width:
                        break
                if not keep:
                    break
                rows = xp.asarray([b for b, _, _ in keep])
                tokens = xp.asarray([[t] for _, t, _ in keep], dtype=ids.dtype)
                beams = xp.concatenate([beams[rows], tokens], axis=1)
                scores = xp.asarray([c for _, _, c in keep])
    finally:
        model.train(was_training)
    finished.extend((beam, float(score)) for beam, score in zip(beams, scores))

    def normalized(item):
        beam, score = item
        return score / max(len(beam) - prompt_length, 1) ** length_penalty

    best_beam, best_score = max(finished, key=normalized)
    return best_beam[None, :], best_score
