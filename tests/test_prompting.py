"""Cloze (BERT) and in-context (GPT) scoring: known answers from a stub model whose output
is fixed by hand, the exact sequences built, and real tiny models scored the same way as by
one hand-made forward pass."""

from typing import NamedTuple

import numpy as np
import pytest

import scratchlm as sl
import scratchlm.functional as F
from scratchlm.models import GPT, BertConfig, BertForPreTraining, GPTConfig
from scratchlm.prompting import PROMPTS, Prompt, label_scores, predict
from scratchlm.text.sentiment import LabelledTexts
from scratchlm.text.special_chars import SpecialCharTokenizer

TEXTS = ["这书真赞", "质量太差了", "赞赞", "一般般吧，不推荐"]
TOKENIZER = SpecialCharTokenizer().train(TEXTS + ["总之很好差。赞"])
PROMPT = Prompt(**PROMPTS["sentiment-zh"])


class Out(NamedTuple):
    mlm_logits: sl.Tensor


class Stub:
    """A 'model' that answers 好 wherever the row holds 赞 and 差 elsewhere: logits 3 for the
    answer, 0 for every other token. Records what it was fed."""

    def __init__(self, kind):
        self.kind, self.fed = kind, []

    def eval(self):
        return self

    def __call__(self, ids, attention_mask=None):
        self.fed.append(ids)
        good, bad, praise = (TOKENIZER.token_id(c) for c in "好差赞")
        logits = np.zeros(ids.shape + (TOKENIZER.vocab_size,))
        has = (ids == praise).any(axis=1)
        logits[has, :, good] = 3.0
        logits[~has, :, bad] = 3.0
        logits = sl.tensor(logits)
        return Out(logits) if self.kind == "bert" else (logits, None)


def expected_scores(labels):
    """log-softmax of logits (3 for the answer, 0 elsewhere) at the answer and another word."""
    v = TOKENIZER.vocab_size
    top, other = 3 - np.log(np.exp(3) + v - 1), -np.log(np.exp(3) + v - 1)
    return np.array([[other, top] if y else [top, other] for y in labels])


@pytest.mark.parametrize("kind", ["bert", "gpt"])
def test_zero_shot_known_answers_and_sequences(kind):
    stub = Stub(kind)
    scores = label_scores(stub, TOKENIZER, TEXTS, PROMPT, kind, max_length=32)
    np.testing.assert_allclose(scores, expected_scores([1, 0, 1, 0]), rtol=1e-12)
    first = stub.fed[0][0]
    if kind == "bert":  # [CLS] text 总之很 [MASK] 。 [SEP], then padding
        assert TOKENIZER.decode(first) == "[CLS]这书真赞总之很[MASK]。[SEP][PAD][PAD][PAD][PAD]"
    else:  # GPT reads up to the blank and predicts the next token
        assert TOKENIZER.decode(first) == "这书真赞总之很[PAD][PAD][PAD][PAD]"


@pytest.mark.parametrize("kind", ["bert", "gpt"])
def test_demonstrations_go_in_front_and_groups_are_ensembled(kind):
    demos = LabelledTexts(["赞", "太差", "好赞", "不好"], np.array([1, 0, 1, 0]))
    stub = Stub(kind)
    scores = label_scores(stub, TOKENIZER, ["质量太差了"], PROMPT, kind, max_length=40,
                          demonstrations=demos, shots_per_prompt=2)
    assert len(stub.fed) == 2  # two groups of two, labels in turn: (太差, 赞), (不好, 好赞)
    decoded = [TOKENIZER.decode(ids[0]) for ids in stub.fed]
    start = "[CLS]" if kind == "bert" else ""
    tail = "质量太差了总之很" + ("[MASK]。[SEP]" if kind == "bert" else "")
    assert decoded[0] == start + "太差总之很差。[SEP]赞总之很好。[SEP]" + tail
    assert decoded[1] == start + "不好总之很差。[SEP]好赞总之很好。[SEP]" + tail
    # both groups contain 赞, so the stub answers 好 for each: the average is that answer
    np.testing.assert_allclose(scores, expected_scores([1]), rtol=1e-12)


def test_text_is_cut_to_fit_and_errors():
    stub = Stub("bert")
    label_scores(stub, TOKENIZER, ["这书真赞" * 10], PROMPT, "bert", max_length=12)
    assert stub.fed[0].shape == (1, 12)
    with pytest.raises(ValueError, match="leaving no room for the text"):
        label_scores(stub, TOKENIZER, ["赞"], PROMPT, "bert", max_length=7)
    with pytest.raises(ValueError, match="exactly one"):
        Prompt("总之很[MASK]。", {"好": 1, "差": 0})
    with pytest.raises(ValueError, match="no label word for label"):
        Prompt("[X]很[MASK]", {"好": 1})
    with pytest.raises(ValueError, match="must be single tokens"):
        label_scores(stub, TOKENIZER, ["赞"], Prompt("[X]很[MASK]", {"好好": 1, "差": 0}),
                     "bert", 16)


def test_real_tiny_models_score_as_one_forward_by_hand():
    sl.manual_seed(0)
    bert = BertForPreTraining(BertConfig.from_preset("tiny", vocab_size=TOKENIZER.vocab_size))
    gpt = GPT(GPTConfig.from_preset("tiny", vocab_size=TOKENIZER.vocab_size))
    words = [TOKENIZER.token_id("差"), TOKENIZER.token_id("好")]
    cloze = label_scores(bert, TOKENIZER, TEXTS, PROMPT, "bert", 32)
    in_context = label_scores(gpt, TOKENIZER, TEXTS, PROMPT, "gpt", 32)
    for i, text in enumerate(TEXTS):  # one text at a time, no padding
        ids = np.array([TOKENIZER.encode(f"[CLS]{text}总之很[MASK]。[SEP]")])
        with sl.no_grad():
            logits = bert(ids).mlm_logits
        blank = TOKENIZER.encode(f"[CLS]{text}总之很").__len__()
        np.testing.assert_allclose(cloze[i], F.log_softmax(logits).numpy()[0, blank, words],
                                   rtol=1e-5)
        ids = np.array([TOKENIZER.encode(f"{text}总之很")])
        with sl.no_grad():
            logits, _ = gpt(ids)
        np.testing.assert_allclose(in_context[i], F.log_softmax(logits).numpy()[0, -1, words],
                                   rtol=1e-5)
    assert predict(gpt, TOKENIZER, TEXTS, PROMPT, "gpt", 32).shape == (4,)


def test_contextual_calibration_subtracts_the_empty_texts_scores():
    raw = label_scores(Stub("bert"), TOKENIZER, TEXTS, PROMPT, "bert", 32)
    empty = label_scores(Stub("bert"), TOKENIZER, [""], PROMPT, "bert", 32)
    calibrated = label_scores(Stub("bert"), TOKENIZER, TEXTS, PROMPT, "bert", 32,
                              calibrate=True)
    np.testing.assert_allclose(calibrated, raw - empty, rtol=1e-12)
    assert list(calibrated.argmax(1)) == [1, 0, 1, 0]
