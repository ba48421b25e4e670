"""Translation's training run: a character-level encoder-decoder
(:class:`scratchlm.models.seq2seq.Seq2SeqTransformer`) trained on sentence pairs, beside
:mod:`scratchlm.pretrain` and :mod:`scratchlm.finetune`.

    run = train_translation(load_zh_en_pairs(max_level=2), preset="tiny", steps=1000)
    run.translate(["你好"]), run.bleu(test_pairs)

Each pair trains the model on the target shifted right: ``tgt_in`` = [BOS] y, ``tgt_out`` =
y [EOS], the cross-entropy of every position at once (label-smoothed as the paper).
"""

from dataclasses import dataclass, field

import numpy as np

from scratchlm import backend, generation
from scratchlm.checks import bad_argument, check_int
from scratchlm.errors import ArgumentTypeError
from scratchlm.metrics import bleu
from scratchlm.models.seq2seq import Seq2SeqConfig, Seq2SeqTransformer
from scratchlm.text.char_vocabulary import BOS_ID, EOS_ID, PAD_ID, CharVocabulary
from scratchlm.text.padding import pad_sequences
from scratchlm.train import TrainConfig, Trainer


def check_sentences(where, name, sentences):
    """A list (or tuple) of strings: not one string, whose characters would pass for
    sentences."""
    if isinstance(sentences, str) or not isinstance(sentences, (list, tuple)):
        raise bad_argument(where, name, sentences, "a list of strings",
                           error=ArgumentTypeError)
    for i, sentence in enumerate(sentences):
        if not isinstance(sentence, str):
            raise bad_argument(where, f"{name}[{i}]", sentence, "a string",
                               error=ArgumentTypeError)


def check_pairs(where, pairs):
    """A non-empty list of (source, target) string pairs."""
    if isinstance(pairs, str) or not isinstance(pairs, (list, tuple)):
        raise bad_argument(where, "pairs", pairs, "a list of (source, target) string pairs",
                           error=ArgumentTypeError)
    if not pairs:
        raise bad_argument(where, "pairs", pairs, "at least one (source, target) pair",
                           "no sentence pairs to train on")
    for i, pair in enumerate(pairs):
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2
                and all(isinstance(text, str) for text in pair)):
            raise bad_argument(where, f"pairs[{i}]", pair, "a (source, target) pair of strings",
                               error=ArgumentTypeError)


@dataclass
class TranslationRun:
    """What :func:`train_translation` returns: the model, its two vocabularies and the
    training losses, with helpers to translate and score."""

    model: Seq2SeqTransformer
    source_vocab: CharVocabulary
    target_vocab: CharVocabulary
    history: list = field(default_factory=list)  # (step, training loss)

    def translate(self, sentences, beam_width=1, max_len=None, batch_size=64):
        """Translations of ``sentences`` (strings): greedy, or beam search if beam_width > 1."""
        where = "TranslationRun.translate"
        check_sentences(where, "sentences", sentences)
        generation.check_beam_width(where, beam_width)
        max_len = self.model.config.max_len if max_len is None else \
            check_int(where, "max_len", max_len, 1, self.model.config.max_len + 1,
                      hint="(None for the model's max_len)")
        batch_size = check_int(where, "batch_size", batch_size, 1)
        outputs = []
        for start in range(0, len(sentences), batch_size):
            src = pad_sequences([self.source_vocab.encode(s) or [PAD_ID]
                                 for s in sentences[start:start + batch_size]])
            if beam_width == 1:
                ids = self.model.greedy_decode(src, max_len, BOS_ID, EOS_ID)
            else:
                ids, _ = self.model.beam_search(src, beam_width, max_len, BOS_ID, EOS_ID)
            outputs += [self.target_vocab.decode(row) for row in backend.to_numpy(ids).tolist()]
        return outputs

    def bleu(self, pairs, beam_width=1, tokenize="13a"):
        """Corpus BLEU (0-100) of the translations of ``pairs``' sources against their targets."""
        check_pairs("TranslationRun.bleu", pairs)
        hypotheses = self.translate([source for source, _ in pairs], beam_width)
        return bleu(hypotheses, [target for _, target in pairs], tokenize=tokenize)


def train_translation(pairs, preset="small", steps=3000, batch_size=64, lr=1e-3,
                      warmup_steps=300, label_smoothing=0.1, seed=0, device="cpu",
                      log_every=100, log=print, **config_overrides):
    """Train a character-level Seq2SeqTransformer on ``pairs`` of (source, target) strings,
    e.g. ``load_zh_en_pairs(max_level=2)``; returns a :class:`TranslationRun`.

    The training loop is :class:`scratchlm.train.Trainer`'s, on random batches of pairs:
    AdamW (β = (0.9, 0.98), ε = 1e-9, as the paper) with warmup then cosine decay, label
    smoothing as the paper's 0.1, gradient clipping at 1. ``log(message)`` gets the mean
    loss every ``log_every`` steps (``log=None`` for silence).
    """
    check_pairs("train_translation", pairs)
    log_every = check_int("train_translation", "log_every", log_every, 1)
    if log is not None and not callable(log):
        raise bad_argument("train_translation", "log", log, "a function of one message, or "
                           "None for silence", error=ArgumentTypeError)
    backend.manual_seed(seed)
    source_vocab = CharVocabulary([source for source, _ in pairs])
    target_vocab = CharVocabulary([target for _, target in pairs])
    config = Seq2SeqConfig.from_preset(preset, source_vocab.vocab_size, target_vocab.vocab_size,
                                       pad_id=PAD_ID, **config_overrides)
    model = Seq2SeqTransformer(config)
    sources = [source_vocab.encode(source)[:config.max_len] for source, _ in pairs]
    targets = [target_vocab.encode(target)[:config.max_len - 1] for _, target in pairs]

    def draw_pairs(rng, size):
        """``size`` random pairs as (src, tgt_in, tgt_out): the target shifted right."""
        chosen = rng.integers(len(pairs), size=size)
        return (pad_sequences([sources[i] or [PAD_ID] for i in chosen]),
                pad_sequences([[BOS_ID] + targets[i] for i in chosen]),
                pad_sequences([targets[i] + [EOS_ID] for i in chosen]))

    def smoothed_loss(model, batch):
        return model(*batch, label_smoothing=label_smoothing)[1]

    train_config = TrainConfig(max_steps=steps, batch_size=batch_size, learning_rate=lr,
                               warmup_steps=warmup_steps, weight_decay=0.01, beta1=0.9,
                               beta2=0.98, eps=1e-9, grad_clip=1.0, seed=seed, device=device)
    trainer = Trainer(model, draw_pairs, None, train_config, loss_fn=smoothed_loss)
    run, recent_losses = TranslationRun(model, source_vocab, target_vocab), []

    def record(trainer, loss):
        recent_losses.append(loss)
        if trainer.step % log_every == 0 or trainer.step == steps:
            run.history.append((trainer.step, float(np.mean(recent_losses))))
            recent_losses.clear()
            if log is not None:
                log(f"step {trainer.step}/{steps}: loss {run.history[-1][1]:.3f}")

    trainer.train(progress=False, on_step=record)
    return run
