"""The memory estimate of a GPT training run against the peak that tracemalloc measures over
real training steps (within 20%, on two small configurations, fast ops on and off); the
parameter count against the model's; MemAvailable; the CLI's refusal, suggestion and
--force; the step time shown before a run starts."""

import tracemalloc

import numpy as np
import pytest

import scratchlm as sl
import scratchlm.__main__ as cli
from scratchlm import memory_estimate as me
from scratchlm.models import GPT, PRESETS, GPTConfig
from scratchlm.train import TrainConfig, Trainer

#: measured peak / estimated peak must lie in [1/TOLERANCE, TOLERANCE]
TOLERANCE = 1.25

CONFIGS = [
    # the "tiny" preset at its training batch size
    (16, GPTConfig.from_preset("tiny")),
    # wider, longer context, more heads, a larger vocabulary, no biases, dropout
    (8, GPTConfig(vocab_size=200, block_size=64, n_layer=2, n_head=4, n_embd=64, bias=False,
                  dropout=0.1)),
]


@pytest.mark.parametrize("config", [GPTConfig.from_preset(name) for name in
                                    ("tiny", "shakespeare-char", "baby-gpt")]
                         + [c for _, c in CONFIGS])
def test_the_parameter_count_is_the_models(config):
    assert me.gpt_parameter_count(config) == GPT(config).num_parameters()


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "reference"])
@pytest.mark.parametrize("batch_size, config", CONFIGS, ids=["tiny", "wide"])
def test_the_estimate_is_within_20_percent_of_the_measured_peak(batch_size, config, fast):
    """tracemalloc sees every NumPy allocation; it starts before the model is built, so
    its peak over three training steps (AdamW's state made at the first) holds weights,
    gradients, moments and activations, as the estimate's training peak does."""
    ids = np.random.default_rng(0).integers(0, config.vocab_size, size=5000)
    with sl.use_fast(fast):
        tracemalloc.start()
        try:
            sl.manual_seed(0)
            model = GPT(config)
            trainer = Trainer(model, ids, None, TrainConfig(max_steps=3, batch_size=batch_size,
                                                            warmup_steps=0))
            for _ in range(3):
                trainer.train_step()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    estimate = me.estimate_gpt_training(config, batch_size)
    ratio = peak / estimate.training_peak
    assert 1 / TOLERANCE <= ratio <= TOLERANCE, (peak, estimate)
    assert estimate.total >= estimate.training_peak + me.OVERHEAD_BYTES


def test_the_formula_parts():
    config = GPTConfig.from_preset("shakespeare-char")  # V=65 T=128 L=4 H=4 C=128
    estimate = me.estimate_gpt_training(config, 32)
    P = me.gpt_parameter_count(config)
    assert (estimate.weights, estimate.gradients, estimate.optimizer) == (4 * P, 4 * P, 8 * P)
    assert me.activation_values_per_token(config) == 4 * (26 * 128 + 4 * 128 + 2) + 4 * 128 + 3 * 65
    assert estimate.activations == 32 * 128 * me.activation_values_per_token(config) * 4
    halved = me.estimate_gpt_training(config, 16)
    assert halved.activations * 2 == estimate.activations and halved.weights == estimate.weights
    with_dropout = me.estimate_gpt_training(GPTConfig(**{**PRESETS["shakespeare-char"],
                                                         "dropout": 0.1}), 32)
    assert with_dropout.activations > estimate.activations
    # one forward+backward: 3 × (2 flops per multiply-add of the weights, 4·L·T·C attention)
    assert me.training_flops(config, 32) == 3 * 32 * 128 * (
        2 * (12 * 4 * 128 ** 2 + 65 * 128) + 4 * 4 * 128 * 128)
    assert "activations at batch 32 × 128 tokens" in estimate.describe()


def test_available_memory_reads_meminfo(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24684892 kB\nMemFree:        100 kB\n"
                       "MemAvailable:   23567168 kB\nBuffers:  1 kB\n")
    assert me.available_memory(meminfo=str(meminfo)) == 23567168 * 1024
    meminfo.write_text("MemTotal:       24684892 kB\n")
    assert me.available_memory(meminfo=str(meminfo)) is None
    assert me.available_memory(meminfo=str(tmp_path / "absent")) is None
    real = me.available_memory()
    assert real is None or real > 0
    rss = me.process_rss()
    assert rss is None or 0 < rss[0] <= rss[1]


def test_format_bytes():
    assert [me.format_bytes(n) for n in (512, 2048, 150 * 2**20, 3 * 2**30 // 2)] == [
        "512 B", "2.0 KiB", "150 MiB", "1.5 GiB"]


def test_fitting_batch_size_halves_until_it_fits():
    config = GPTConfig.from_preset("shakespeare-char")
    need_8 = me.estimate_gpt_training(config, 8).total
    assert me.fitting_batch_size(config, 32, need_8) == 8
    assert me.fitting_batch_size(config, 32, 1) is None


@pytest.fixture
def corpus(tmp_path, monkeypatch):
    """A stand-in corpus, so the CLI runs without the Shakespeare package."""
    from scratchlm.text import CharTokenizer

    text = "so foul and fair a day\nI have not seen.\n" * 100
    tokenizer = CharTokenizer().train(text)

    class Corpus:
        ids = np.array(tokenizer.encode(text))

    Corpus.tokenizer = tokenizer
    monkeypatch.setattr(cli, "prepare_corpus", lambda *args, **kwargs: Corpus)
    return str(tmp_path)


def test_the_cli_refuses_a_run_that_would_not_fit(corpus, monkeypatch, capsys):
    available = 200 * 2**20
    monkeypatch.setattr(me, "available_memory", lambda device="cpu": available)
    argv = ["train", "--out-dir", corpus, "--max-steps", "1", "--no-progress"]
    with pytest.raises(SystemExit) as stop:
        cli.main(argv)  # shakespeare-char at batch 32: about 328 MiB
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "this run needs about 3" in err
    assert "but 200 MiB is available (MemAvailable)" in err
    assert "try --preset tiny (about " in err and "--batch-size 8 (about " in err
    assert err.endswith("pass --force to start anyway")

    monkeypatch.setattr(me, "available_memory", lambda device="cpu": 2**20)
    cli.main(["train", "--out-dir", corpus, "--max-steps", "2", "--no-progress", "--preset",
              "tiny", "--batch-size", "2", "--force"])
    out = capsys.readouterr().out
    assert "memory: about " in out and "; 1.0 MiB available (MemAvailable)" in out
    assert "--force: starting anyway" in out
    assert "time: about " in out and " s per step (a step measured, " in out
    assert "2 steps ≈ " in out and "done in " in out
