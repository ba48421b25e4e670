"""The one beam search (scratchlm.generation.batched_beam_search) that GPT and the
encoder-decoder share: against exhaustive search over every sequence, batched over prompts,
fed one token per step through the KV caches."""

import itertools

import numpy as np
import pytest
from conftest import DEVICES

import scratchlm as sl
from scratchlm.generation import batched_beam_search, beam_search
from scratchlm.models import GPT, GPTConfig, Seq2SeqConfig, Seq2SeqTransformer

VOCAB = 5


def log_softmax(z):
    z = z.astype(np.float64) - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def exhaustive_best(token_log_probs, sequences, eos_id, length_penalty):
    """The best hypothesis among ``sequences`` (N, n) whose per-token log-probabilities are
    ``token_log_probs`` (N, n): each cut after its first EOS, ranked by
    log_prob / length^length_penalty. Returns (hypothesis, log_prob, score)."""
    best = {}
    for sequence, log_probs in zip(sequences.tolist(), token_log_probs):
        n = sequence.index(eos_id) + 1 if eos_id in sequence else len(sequence)
        log_prob = log_probs[:n].sum()
        best[tuple(sequence[:n])] = (log_prob, log_prob / n ** length_penalty)
    winner = max(best, key=lambda hypothesis: best[hypothesis][1])
    return winner, *best[winner]


# ------------------------------------------------------------ the search on a toy decoder
class BigramDecoder:
    """A decoder whose next-token logits are a fixed table of (sentence, last token); it
    checks that every reordering keeps rows inside their sentence."""

    def __init__(self, tables, first_tokens):
        self.tables = tables  # (B, V, V): logits of the next token after each token
        self.sentence = np.arange(len(tables))
        self.last = np.asarray(first_tokens)
        self.calls = []

    def start(self):
        return self.tables[self.sentence, self.last]

    def advance(self, rows, new_ids):
        rows_per_sentence = len(self.sentence) // len(self.tables)
        assert np.array_equal(rows // rows_per_sentence, np.repeat(
            np.arange(len(self.tables)), len(rows) // len(self.tables)))
        self.calls.append(len(rows))
        self.sentence, self.last = self.sentence[rows], new_ids
        return self.tables[self.sentence, self.last]


def bigram_log_probs(tables, first_tokens, sequences):
    """Per-token log-probabilities (B, N, n) of every sequence after each sentence's start."""
    log_p = log_softmax(tables)  # (B, V, V)
    previous = np.concatenate([np.broadcast_to(np.asarray(first_tokens)[:, None, None],
                                               (len(tables), len(sequences), 1)),
                               np.broadcast_to(sequences[None, :, :-1],
                                               (len(tables),) + sequences[:, :-1].shape)],
                              axis=2)
    sentences = np.arange(len(tables))[:, None, None]
    return log_p[sentences, previous, sequences[None]]


@pytest.mark.parametrize("length_penalty", [0.0, 0.6, 1.0])
@pytest.mark.parametrize("eos_id", [None, 0])
def test_a_beam_wide_enough_to_prune_nothing_finds_the_exhaustive_best(eos_id, length_penalty):
    rng = np.random.default_rng(0)
    tables = rng.normal(0.0, 2.0, (3, VOCAB, VOCAB))
    first, max_steps = [1, 2, 3], 4
    every = np.array(list(itertools.product(range(VOCAB), repeat=max_steps)))
    decoder = BigramDecoder(tables, first)
    found = batched_beam_search(decoder, VOCAB ** max_steps, max_steps, eos_id=eos_id,
                                length_penalty=length_penalty)
    token_log_probs = bigram_log_probs(tables, first, every)
    for b in range(3):
        winner, log_prob, score = exhaustive_best(token_log_probs[b], every, eos_id,
                                                  length_penalty)
        assert tuple(found.ids[b, :found.lengths[b]].tolist()) == winner
        assert found.log_probs[b] == pytest.approx(log_prob, rel=1e-12)
        assert found.scores[b] == pytest.approx(score, rel=1e-12)
        assert all(t == eos_id for t in found.ids[b, found.lengths[b]:])  # the default fill


def test_beam_width_one_is_greedy_and_hypotheses_grow_to_the_beam_width():
    rng = np.random.default_rng(1)
    tables = rng.normal(0.0, 2.0, (2, VOCAB, VOCAB))
    decoder = BigramDecoder(tables, [0, 4])
    found = batched_beam_search(decoder, 1, 6)
    last = np.array([0, 4])
    for step in range(6):
        last = tables[np.arange(2), last].argmax(axis=-1)
        np.testing.assert_array_equal(found.ids[:, step], last)
    wide = BigramDecoder(tables, [0, 4])
    batched_beam_search(wide, 3, 6)
    assert wide.calls == [2 * 3] * 5  # one row per hypothesis, all sentences in one call


def test_finished_hypotheses_are_filled_and_the_search_stops_when_all_are():
    tables = np.full((1, 3, 3), -5.0)
    tables[0, :, 2] = 5.0  # EOS (2) is by far the likeliest token after anything
    decoder = BigramDecoder(tables, [0])
    found = batched_beam_search(decoder, 2, 10, eos_id=2, fill_id=0)
    # step 1 keeps "EOS" (finished) and "0"; step 2 ends "0 EOS" and fills "EOS" with 0
    assert decoder.calls == [2]
    assert found.ids.tolist() == [[2, 0]] and found.lengths.tolist() == [1]
    two = batched_beam_search(BigramDecoder(tables, [0]), 2, 10, eos_id=1, fill_id=0)
    assert two.ids.shape == (1, 10)  # EOS=1 is never likely: no early stop


def test_bad_arguments_are_refused():
    decoder = BigramDecoder(np.zeros((1, 3, 3)), [0])
    with pytest.raises(ValueError, match="beam_width=0"):
        batched_beam_search(decoder, 0, 3)
    with pytest.raises(ValueError, match="beam_width=True"):
        batched_beam_search(decoder, True, 3)
    with pytest.raises(ValueError, match="0 new tokens"):
        batched_beam_search(decoder, 2, 0)


# ----------------------------------------------------------------------------- on GPT
def tiny_gpt(seed=0, **overrides):
    sl.manual_seed(seed)
    return GPT(GPTConfig.from_preset("tiny", **{"vocab_size": VOCAB, **overrides}))


def gpt_token_log_probs(model, prompt, sequences):
    """Per-token log-probabilities (N, n) of ``sequences`` after ``prompt`` (1, T), each step
    conditioned on at most the last block_size tokens, as decoding does."""
    full = np.concatenate([np.repeat(prompt, len(sequences), axis=0), sequences], axis=1)
    T, columns = prompt.shape[1], []
    with sl.no_grad():
        for step in range(sequences.shape[1]):
            context = full[:, :T + step][:, -model.block_size:]
            columns.append(log_softmax(model(context)[0].numpy()[:, -1]))
    log_p = np.stack(columns, axis=1)  # (N, n, V)
    return np.take_along_axis(log_p, sequences[:, :, None], axis=2)[:, :, 0]


@pytest.mark.parametrize("eos_id, length_penalty, block_size", [
    (None, 1.0, 32), (3, 1.0, 32), (3, 0.0, 32), (3, 1.0, 5)])
def test_gpt_beam_search_finds_the_exhaustive_best(eos_id, length_penalty, block_size):
    """block_size=5 with a 3-token prompt and 3 new tokens: the last step no longer fits the
    cache and recomputes its window."""
    model = tiny_gpt(seed=2, block_size=block_size)
    prompt = np.array([[1, 4, 2]])
    max_new = 3
    every = np.array(list(itertools.product(range(VOCAB), repeat=max_new)))
    ids, log_probs = beam_search(model, prompt, max_new, beam_width=VOCAB ** max_new,
                                 eos_id=eos_id, length_penalty=length_penalty)
    winner, log_prob, _ = exhaustive_best(gpt_token_log_probs(model, prompt, every), every,
                                          eos_id, length_penalty)
    np.testing.assert_array_equal(ids[0, :3], prompt[0])
    assert tuple(ids[0, 3:].tolist()) == winner  # cut after its EOS
    assert log_probs.shape == (1,) and log_probs[0] == pytest.approx(log_prob, rel=1e-5)


def test_gpt_beam_search_is_batched_over_prompts_and_fed_through_the_cache():
    model = tiny_gpt(seed=1, vocab_size=11)
    prompts = np.random.default_rng(3).integers(0, 11, (3, 4))
    fed_shapes = []
    forward = model.forward

    def recording_forward(idx, targets=None, kv_caches=None):
        fed_shapes.append((np.shape(idx), kv_caches is not None))
        return forward(idx, targets, kv_caches)

    model.forward = recording_forward
    ids, log_probs = beam_search(model, prompts, 6, beam_width=4)
    # the prompts once, then one new token for each of the 3 x 4 hypotheses per step
    assert fed_shapes == [((3, 4), True)] + [((12, 1), True)] * 5
    model.forward = forward
    for row in range(3):  # the same as each prompt searched alone
        alone, alone_log_prob = beam_search(model, prompts[row:row + 1], 6, beam_width=4)
        np.testing.assert_array_equal(ids[row], alone[0])
        assert log_probs[row] == pytest.approx(alone_log_prob[0], rel=1e-5)


@pytest.mark.parametrize("device", DEVICES)
def test_beam_search_on_a_device_equals_the_cpu(device):
    """GPT's and the encoder-decoder's beam search, on the device and on the CPU."""
    model = tiny_gpt(seed=4, vocab_size=11, block_size=9)
    prompts = np.random.default_rng(5).integers(0, 11, (2, 3))
    expected, expected_log_probs = beam_search(model, prompts, 8, beam_width=3, eos_id=4)
    ids, log_probs = beam_search(model.to(device), prompts, 8, beam_width=3, eos_id=4)
    np.testing.assert_array_equal(sl.backend.to_numpy(ids), expected)
    np.testing.assert_allclose(sl.backend.to_numpy(log_probs), expected_log_probs, rtol=1e-5)

    sl.manual_seed(4)
    translator = Seq2SeqTransformer(Seq2SeqConfig.from_preset("tiny", 13, 15))
    src = np.array([[5, 6, 7, 8], [9, 3, 0, 0]])
    expected, expected_scores = translator.beam_search(src, 3, 6, bos_id=1, eos_id=2)
    ids, scores = translator.to(device).beam_search(src, 3, 6, bos_id=1, eos_id=2)
    np.testing.assert_array_equal(sl.backend.to_numpy(ids), expected)
    np.testing.assert_allclose(sl.backend.to_numpy(scores), expected_scores, rtol=1e-5)
