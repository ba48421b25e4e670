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

:func:`generate` and :func:`beam_search` decode a decoder-only model, which provides
``block_size``, ``new_kv_caches()`` and ``model(idx, kv_caches=...) -> (logits, _)``.
:func:`batched_beam_search` is the search itself, for any model: the encoder-decoder's
``beam_search`` uses it too.
"""

from contextlib import contextmanager
from typing import NamedTuple

import numpy as np

from scratchlm import backend, fast
from scratchlm import functional as F
from scratchlm.autograd.grad_mode import no_grad
from scratchlm.autograd.tensor import Tensor
from scratchlm.checks import (
    bad_argument,
    check_bool,
    check_int,
    check_real,
    check_token_ids,
    is_integer,
)
from scratchlm.errors import ArgumentError, ArgumentTypeError
from scratchlm.functional.softmax import softmax_array
from scratchlm.sampling_filters import top_k_filter, top_p_filter

__all__ = ["generate", "beam_search", "batched_beam_search", "BeamSearchResult",
           "decoding_mode", "top_k_filter", "top_p_filter", "sample_next", "check_sampling",
           "check_beam_width"]


@contextmanager
def decoding_mode(model):
    """Eval mode (no dropout) and no graph while decoding; the model's mode is restored after.
    Decoding is many small products, a token at a time: with the fast layer on it runs on
    one BLAS thread (:func:`scratchlm.fast.one_thread`), which is as fast alone and much
    faster beside a busy process."""
    was_training = model.training
    model.eval()
    try:
        with no_grad(), fast.one_thread():
            yield
    finally:
        model.train(was_training)


def _as_ids(idx, device, caller, vocab_size=None):
    ids = idx.data if isinstance(idx, Tensor) else idx
    ids = backend.to_device(np.asarray(backend.to_numpy(ids)), device)
    if ids.ndim != 2 or ids.dtype.kind not in "iu":
        error = ArgumentError if ids.dtype.kind in "iu" else ArgumentTypeError
        raise error(f"{caller}: idx should be integer token ids of shape (batch, time), "
                    f"got shape {ids.shape} and dtype {ids.dtype}", where=caller, name="idx",
                    value=idx)
    if ids.shape[1] == 0 or ids.shape[0] == 0:
        raise ArgumentError(f"{caller}: the prompt is empty (idx of shape {ids.shape}); give "
                            "at least one token to start from", where=caller, name="idx",
                            value=idx)
    check_token_ids(caller, "idx", ids, vocab_size)
    return ids.astype(np.int64)


def _vocab_size(model):
    """The model's vocabulary size when its config tells it (None otherwise)."""
    return getattr(getattr(model, "config", None), "vocab_size", None)


def check_sampling(where, temperature, top_k, top_p, do_sample):
    """The sampling options of :func:`generate` and :func:`sample_next`: ``temperature`` a
    finite number ≥ 0 (0 is greedy decoding, as ``do_sample=False``), ``top_k`` None or an
    integer ≥ 1, ``top_p`` None or a number in (0, 1], ``do_sample`` True or False.
    Checked whatever ``do_sample`` is, so a bad option never waits for the first sampling
    call to show."""
    temperature = check_real(where, "temperature", temperature, 0,
                             hint="(0 means greedy decoding)")
    top_k = check_int(where, "top_k", top_k, 1, optional=True, hint="(None keeps every token)")
    top_p = check_real(where, "top_p", top_p, 0, 1, low_open=True, optional=True,
                       hint="(None keeps every token)")
    do_sample = check_bool(where, "do_sample", do_sample)
    return temperature, top_k, top_p, do_sample


def check_beam_width(where, beam_width):
    """A beam width: an integer ≥ 1 (1 is greedy decoding)."""
    return check_int(where, "beam_width", beam_width, 1, hint="(1 is greedy decoding)")


def _check_rng(where, rng):
    if rng is not None and not callable(getattr(rng, "random", None)):
        raise bad_argument(where, "rng", rng, "None or a random generator such as "
                           "np.random.default_rng(seed)", error=ArgumentTypeError)
    return rng


def _model_device(model):
    return next(iter(model.parameters())).device


def _next_token_logits(model, ids, caches):
    """Logits (B, V) of the token after ``ids`` (B, T). With ``caches`` only the tokens they
    do not hold yet are fed; past ``block_size`` (or without caches) the last ``block_size``
    tokens are recomputed."""
    if caches is not None and ids.shape[1] <= model.block_size:
        fed = caches[0].length  # tokens the caches already hold
        logits, _ = model(ids[:, fed:], kv_caches=caches)
    else:
        logits, _ = model(ids[:, -model.block_size:])
    return logits.data[:, -1, :]


def _check_some_token_possible(logits, xp):
    """Refuse logits holding NaN (a diverged model: argmax and sampling would return token 0
    silently) or a row where every token is -inf (nothing can be chosen)."""
    nan_rows = xp.isnan(logits).any(axis=-1)
    if bool(nan_rows.any()):
        row = int(xp.argmax(nan_rows))
        raise ArgumentError(f"sample_next: row {row} of logits {tuple(logits.shape)} holds NaN "
                            "(the model diverged or its weights are damaged); expected finite "
                            "logits (check the model with sl.detect_anomaly())",
                            where="sample_next", name="logits", value=logits)
    dead_rows = (logits == -xp.inf).all(axis=-1)
    if bool(dead_rows.any()):
        row = int(xp.argmax(dead_rows))
        raise ArgumentError(f"sample_next: row {row} of logits {tuple(logits.shape)} is -inf "
                            "for every token, so no token can be chosen; expected at least "
                            "one finite logit per row", where="sample_next", name="logits",
                            value=logits)


def sample_next(logits, temperature=1.0, top_k=None, top_p=None, do_sample=True, rng=None):
    """The next token id per row of ``logits`` (B, V): greedy (``do_sample=False`` or
    ``temperature=0``), or sampled from softmax(logits / temperature) after filtering."""
    temperature, top_k, top_p, do_sample = check_sampling("sample_next", temperature, top_k,
                                                          top_p, do_sample)
    _check_rng("sample_next", rng)
    if getattr(logits, "ndim", None) != 2 or getattr(logits, "dtype", np.int64).kind != "f" \
            or logits.shape[-1] == 0:
        raise bad_argument("sample_next", "logits", logits, "a float array (batch, vocab) with "
                           "at least one token", error=ArgumentTypeError
                           if not hasattr(logits, "ndim") else ArgumentError)
    xp = backend.get_array_module(logits)
    _check_some_token_possible(logits, xp)
    if not do_sample or temperature == 0:
        return logits.argmax(axis=-1)
    logits = logits.astype(np.float64) / temperature
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    probs = softmax_array(logits)
    # Inverse-CDF sampling, all rows at once: the first token whose cumulative mass passes u.
    rng = rng or backend.generator(backend.device_of(logits))
    u = xp.asarray(rng.random((probs.shape[0], 1)))
    chosen = (xp.cumsum(probs, axis=-1) < u * probs.sum(axis=-1, keepdims=True)).sum(axis=-1)
    return xp.minimum(chosen, probs.shape[-1] - 1)


def generate(model, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None,
             do_sample=True, use_cache=True, rng=None):
    """``idx`` (B, T) extended by ``max_new_tokens`` tokens: (B, T + max_new_tokens), a Tensor
    when ``idx`` is one, else an array.

    ``max_new_tokens`` an integer ≥ 0; ``temperature`` a finite number ≥ 0, 0 meaning greedy
    decoding (as ``do_sample=False``); ``top_k`` None or an integer ≥ 1; ``top_p`` None or
    in (0, 1]. Every argument is checked before the first step
    (:class:`~scratchlm.errors.ArgumentError` naming it)."""
    max_new_tokens = check_int("generate", "max_new_tokens", max_new_tokens, 0)
    temperature, top_k, top_p, do_sample = check_sampling("generate", temperature, top_k,
                                                          top_p, do_sample)
    use_cache = check_bool("generate", "use_cache", use_cache)
    _check_rng("generate", rng)
    ids = _as_ids(idx, _model_device(model), "generate", _vocab_size(model))
    xp = backend.get_array_module(ids)
    with decoding_mode(model):
        caches = model.new_kv_caches() if use_cache else None
        for _ in range(max_new_tokens):
            logits = _next_token_logits(model, ids, caches)
            next_ids = sample_next(logits, temperature, top_k, top_p, do_sample, rng)
            ids = xp.concatenate([ids, next_ids[:, None].astype(ids.dtype)], axis=1)
    return Tensor._wrap(ids) if isinstance(idx, Tensor) else ids


# ------------------------------------------------------------------------------ beam search
class BeamSearchResult(NamedTuple):
    """Each sentence's best hypothesis, as :func:`batched_beam_search` found it."""

    ids: object  # (B, n) the new tokens; after a hypothesis' EOS, fill_id
    lengths: object  # (B,) tokens up to and including EOS (n for one that never ended)
    log_probs: object  # (B,) Σ log p(yₜ | y<ₜ) over those tokens
    scores: object  # (B,) log_probs / lengths^length_penalty, what the ranking used


def batched_beam_search(decoder, beam_width, max_steps, eos_id=None, fill_id=None,
                        length_penalty=1.0):
    """Beam search for B sentences at once, with one row of model state per hypothesis.

    ``decoder`` is the model's side, two methods on backend arrays:

    - ``start()`` → logits (B, V) of the first new token, one row per sentence;
    - ``advance(rows, new_ids)`` → logits (R, V): first make row i of the decoding state
      (KV caches, inputs) the old row ``rows[i]``, then feed token ``new_ids[i]`` to row i.
      ``rows`` never takes a row to another sentence: sentence b's hypotheses are the rows
      b·k … b·k + k − 1 of a state with k rows per sentence.

    Every sentence starts with one hypothesis. At each step all k · V extensions of a
    sentence's k hypotheses are scored by their summed log-probability and the best
    ``beam_width`` kept, with one top-k over the (B, k · V) scores. A hypothesis that emitted
    ``eos_id`` is finished: it keeps its place and score and is extended only by ``fill_id``
    (default ``eos_id``) at no cost. The search stops after ``max_steps`` tokens or when
    every hypothesis is finished, and returns each sentence's best hypothesis by
    log_prob / length^length_penalty (:class:`BeamSearchResult`). beam_width=1 is greedy
    decoding.
    """
    where = "beam_search"
    beam_width = check_beam_width(where, beam_width)
    if is_integer(max_steps) and max_steps < 1:
        raise ArgumentError(f"{where}: max_steps={max_steps} ({max_steps} new tokens asked "
                            f"for); expected an integer ≥ 1", where=where, name="max_steps",
                            value=max_steps)
    max_steps = check_int(where, "max_steps", max_steps, 1)
    eos_id = check_int(where, "eos_id", eos_id, 0, optional=True)
    fill_id = eos_id if fill_id is None else check_int(where, "fill_id", fill_id, 0)
    length_penalty = check_real(where, "length_penalty", length_penalty)
    logits = decoder.start()
    xp = backend.get_array_module(logits)
    B, vocab = logits.shape
    for name, value in (("eos_id", eos_id), ("fill_id", fill_id)):
        if value is not None:
            check_int(where, name, value, 0, vocab, hint=f"(an id of the {vocab}-token "
                                                         "vocabulary)")
    log_probs = xp.zeros((B, 1))  # (B, k) of each sentence's k hypotheses, in float64
    finished = xp.zeros((B, 1), dtype=bool)
    tokens = xp.zeros((B, 0), dtype=np.int64)  # (B·k, steps so far)
    fill_only = xp.full(vocab, -np.inf)  # a finished hypothesis' only continuation
    if fill_id is not None:
        fill_only[fill_id] = 0.0
    for step in range(max_steps):
        k = log_probs.shape[1]
        with no_grad():  # float64: the scores sum many steps' log-probabilities
            step_log_probs = F.log_softmax(Tensor._wrap(logits.astype(np.float64))).data
        step_log_probs = xp.where(finished[:, :, None], fill_only,
                                  step_log_probs.reshape(B, k, vocab))
        candidates = (log_probs[:, :, None] + step_log_probs).reshape(B, k * vocab)
        best = _top_k(candidates, min(beam_width, k * vocab))
        log_probs = xp.take_along_axis(candidates, best, axis=1)
        origin, next_ids = best // vocab, best % vocab
        rows = (xp.arange(B)[:, None] * k + origin).reshape(-1)
        tokens = xp.concatenate([tokens[rows], next_ids.reshape(-1, 1)], axis=1)
        finished = xp.take_along_axis(finished, origin, axis=1)
        if eos_id is not None:
            finished |= next_ids == eos_id
        if finished.all() or step == max_steps - 1:
            break
        logits = decoder.advance(rows, next_ids.reshape(-1))
    generated = tokens.reshape(B, log_probs.shape[1], -1)
    lengths = xp.full(log_probs.shape, generated.shape[-1])
    if eos_id is not None:
        is_eos = generated == eos_id
        lengths = xp.where(is_eos.any(axis=-1), is_eos.argmax(axis=-1) + 1, lengths)
    scores = log_probs / lengths.astype(np.float64) ** length_penalty
    best_hypothesis = scores.argmax(axis=1)
    sentences = xp.arange(B)
    return BeamSearchResult(generated[sentences, best_hypothesis],
                            lengths[sentences, best_hypothesis],
                            log_probs[sentences, best_hypothesis],
                            scores[sentences, best_hypothesis])


def _top_k(scores, k):
    """Column indices of the ``k`` largest entries of each row of ``scores``, best first: a
    partial sort (``argpartition``, O(n) a row) then a sort of the k found. k = 1 is argmax,
    whose ties go to the first index as in greedy decoding."""
    xp = backend.get_array_module(scores)
    if k == 1:
        return scores.argmax(axis=1)[:, None]
    top = xp.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = xp.argsort(-xp.take_along_axis(scores, top, axis=1), axis=1)
    return xp.take_along_axis(top, order, axis=1)


class _PromptContinuation:
    """A decoder-only model's side of :func:`batched_beam_search`: every hypothesis' tokens
    (prompt included) and the KV caches, one row per hypothesis."""

    def __init__(self, model, prompts):
        self.model, self.ids = model, prompts
        self.caches = model.new_kv_caches()

    def start(self):
        return _next_token_logits(self.model, self.ids, self.caches)

    def advance(self, rows, new_ids):
        self.ids = backend.get_array_module(self.ids).concatenate(
            [self.ids[rows], new_ids[:, None]], axis=1)
        if self.ids.shape[1] > self.model.block_size:
            self.caches = None  # past block_size every step recomputes its window
        if self.caches is not None:
            for cache in self.caches:
                cache.select_rows(rows)
        return _next_token_logits(self.model, self.ids, self.caches)


def beam_search(model, idx, max_new_tokens, beam_width=4, eos_id=None, length_penalty=1.0):
    """The most probable continuations of the prompts ``idx`` (B, T) found by beam search
    (:func:`batched_beam_search`), all prompts and hypotheses in one batch with KV caches.

    A hypothesis that emits ``eos_id`` is finished; hypotheses are ranked by
    log_prob / length^length_penalty. Returns (ids (B, T + n), log_probs (B,)): each prompt
    followed by its best continuation (n = the longest of them; a shorter one is followed by
    repeats of ``eos_id``), and that continuation's summed log-probability.
    ``max_new_tokens=0`` returns the prompts unchanged with log-probability 0.
    """
    where = "beam_search"
    max_new_tokens = check_int(where, "max_new_tokens", max_new_tokens, 0)
    check_beam_width(where, beam_width)
    vocab = _vocab_size(model)
    if vocab is None:
        check_int(where, "eos_id", eos_id, 0, optional=True)
    else:
        check_int(where, "eos_id", eos_id, 0, vocab, optional=True,
                  hint=f"(an id of the model's {vocab}-token vocabulary)")
    check_real(where, "length_penalty", length_penalty)
    ids = _as_ids(idx, _model_device(model), where, vocab)
    xp = backend.get_array_module(ids)
    if max_new_tokens == 0:
        return ids, xp.zeros(ids.shape[0])
    with decoding_mode(model):
        best = batched_beam_search(_PromptContinuation(model, ids), beam_width, max_new_tokens,
                                   eos_id=eos_id, length_penalty=length_penalty)
    new_tokens = best.ids[:, :int(best.lengths.max())]
    return xp.concatenate([ids, new_tokens], axis=1), best.log_probs
