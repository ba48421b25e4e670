"""The memory estimate of a GPT training run against the peak that tracemalloc measures over
real training steps (within 20%, on two small configurations, fast ops on and off); the
parameter count against the model's; MemAvailable; the CLI's refusal, suggestion and
--force; the step time shown before a run starts. The same for a BERT pre-training run, and
``pretrain``'s refusal under RLIMIT_AS before it writes anything."""

import os
import tracemalloc

import numpy as np
import pytest

import scratchlm as sl
import scratchlm.__main__ as cli
from scratchlm import language_model, pretrain
from scratchlm import memory_estimate as me
from scratchlm.models import GPT, PRESETS, GPTConfig
from scratchlm.models.bert import BertConfig, BertForPreTraining, make_pretraining_batch
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


def peak_over_three_steps(make_trainer):
    """tracemalloc's peak bytes while ``make_trainer()`` builds a Trainer (its model built
    after ``sl.manual_seed(0)``) and it takes three training steps."""
    tracemalloc.start()
    try:
        sl.manual_seed(0)
        trainer = make_trainer()
        for _ in range(3):
            trainer.train_step()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "reference"])
@pytest.mark.parametrize("batch_size, config", CONFIGS, ids=["tiny", "wide"])
def test_the_estimate_is_within_20_percent_of_the_measured_peak(batch_size, config, fast):
    """tracemalloc sees every NumPy allocation; it starts before the model is built, so
    its peak over three training steps (AdamW's state made at the first) holds weights,
    gradients, moments and activations, as the estimate's training peak does."""
    ids = np.random.default_rng(0).integers(0, config.vocab_size, size=5000)
    with sl.use_fast(fast):
        peak = peak_over_three_steps(lambda: Trainer(
            GPT(config), ids, None,
            TrainConfig(max_steps=3, batch_size=batch_size, warmup_steps=0)))
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


def write_fixture(root, files):
    """Files under ``root`` (a stand-in for ``/``): {relative path: text}."""
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return str(root)


MEMINFO = ("MemTotal:       24684892 kB\nMemFree:        100 kB\n"
           "MemAvailable:   23567168 kB\nBuffers:  1 kB\n")


def test_available_memory_reads_meminfo(tmp_path):
    root = write_fixture(tmp_path, {"proc/meminfo": MEMINFO})
    assert me.available_memory(root=root) in (23567168 * 1024, me.available_memory())
    assert me.memory_limits(root)[0] == me.MemoryLimit(23567168 * 1024, "MemAvailable")
    (tmp_path / "proc/meminfo").write_text("MemTotal:       24684892 kB\n")
    assert [limit.source for limit in me.memory_limits(root)
            if limit.source == "MemAvailable"] == []
    real = me.available_memory()
    assert real is None or real > 0
    rss = me.process_rss()
    assert rss is None or 0 < rss[0] <= rss[1]


def test_a_cgroup_v2_limit_less_its_use_binds(tmp_path):
    # the process's cgroup /app/job, limited to 512 MiB with 100 MiB used; its parent /app
    # to 1 GiB; the machine has 22.5 GiB available
    root = write_fixture(tmp_path, {
        "proc/meminfo": MEMINFO, "proc/self/cgroup": "0::/app/job\n",
        "sys/fs/cgroup/app/job/memory.max": "536870912\n",
        "sys/fs/cgroup/app/job/memory.current": "104857600\n",
        "sys/fs/cgroup/app/memory.max": "1073741824\n",
        "sys/fs/cgroup/app/memory.current": "104857600\n",
        "sys/fs/cgroup/memory.max": "max\n"})
    limit = me.memory_limit(root=root)
    if limit.source.startswith("RLIMIT_AS"):  # a tighter ulimit -v on this machine
        assert limit.available < (512 - 100) * 2**20
        return
    assert limit == me.MemoryLimit((512 - 100) * 2**20, "cgroup v2 memory.max 512 MiB less "
                                                        "memory.current")
    # a tighter parent binds instead
    (tmp_path / "sys/fs/cgroup/app/memory.current").write_text(str(900 * 2**20))
    assert me.available_memory(root=root) == (1024 - 900) * 2**20


def test_a_cgroup_v1_limit_binds_and_no_limit_is_ignored(tmp_path):
    files = {"proc/meminfo": MEMINFO, "proc/self/cgroup": "4:memory:/docker/abc\n1:cpu:/\n",
             "sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes": str(3 * 2**30),
             "sys/fs/cgroup/memory/docker/abc/memory.usage_in_bytes": str(2**30),
             "sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712"}
    root = write_fixture(tmp_path, files)
    limits = {limit.source: limit.available for limit in me.memory_limits(root)}
    assert limits["cgroup v1 memory.limit_in_bytes 3.0 GiB less memory.usage_in_bytes"] \
        == 2 * 2**30
    # a container that cannot see its own folder: the mount's top folder stands for it
    root = write_fixture(tmp_path / "other", {
        "proc/meminfo": MEMINFO, "proc/self/cgroup": "4:memory:/not/visible\n",
        "sys/fs/cgroup/memory/memory.limit_in_bytes": str(2**30),
        "sys/fs/cgroup/memory/memory.usage_in_bytes": "0"})
    assert 2**30 in [limit.available for limit in me.memory_limits(root)]
    # unlimited (cgroup v1's 2**63 - 4096): only MemAvailable (and any ulimit -v) remain
    root = write_fixture(tmp_path / "free", {
        "proc/meminfo": MEMINFO, "proc/self/cgroup": "4:memory:/\n",
        "sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712"})
    assert not any(limit.source.startswith("cgroup") for limit in me.memory_limits(root))


RLIMIT_PROBE = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[1]), int(sys.argv[1])))
from scratchlm import memory_estimate as me
limit = me.memory_limit()
print(limit.available, limit.source, sep="|")
"""


def test_rlimit_as_less_the_address_space_in_use_binds(tmp_path):
    import resource
    import subprocess
    import sys

    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    limit = 3 * 2**30
    if soft != resource.RLIM_INFINITY and soft < limit:
        pytest.skip("a tighter ulimit -v is set already")
    done = subprocess.run([sys.executable, "-c", RLIMIT_PROBE, str(limit)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    available, source = done.stdout.strip().split("|")
    assert source.startswith("RLIMIT_AS (ulimit -v) 3.0 GiB less the ")
    # the interpreter and NumPy already map some of the 3 GiB, never all of it
    assert 0 < int(available) < limit


TRAIN_UNDER_RLIMIT = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[1]), int(sys.argv[1])))
import numpy as np
from scratchlm import __main__ as cli
from scratchlm import language_model
from scratchlm.text import CharTokenizer
text = "so foul and fair a day\\nI have not seen.\\n" * 100
tokenizer = CharTokenizer().train(text)
class Corpus:
    ids = np.array(tokenizer.encode(text))
    tokenizer = tokenizer
language_model.prepare_corpus = lambda *args, **kwargs: Corpus
cli.main(["train", "--out-dir", sys.argv[2], "--max-steps", "1", "--no-progress",
          "--batch-size", "512"])
"""


def test_a_run_over_rlimit_as_is_refused_up_front(tmp_path):
    import resource
    import subprocess
    import sys

    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        pytest.skip("a ulimit -v is set already")
    # shakespeare-char at batch 512 needs about 5 GiB: more than 1.5 GiB of address space
    done = subprocess.run([sys.executable, "-c", TRAIN_UNDER_RLIMIT, str(3 * 2**29),
                           str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    err = done.stderr.strip()
    assert "\n" not in err and "Traceback" not in err, err
    assert "this run needs about " in err and "(RLIMIT_AS (ulimit -v) 1.5 GiB less the " in err
    assert err.endswith("pass --force to start anyway")
    assert not (tmp_path / "shakespeare-char" / "checkpoint.npz").exists()


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
    monkeypatch.setattr(language_model, "prepare_corpus", lambda *args, **kwargs: Corpus)
    return str(tmp_path)


def test_the_cli_refuses_a_run_that_would_not_fit(corpus, monkeypatch, capsys):
    available = 200 * 2**20
    monkeypatch.setattr(me, "memory_limit",
                        lambda device="cpu": me.MemoryLimit(available, "MemAvailable"))
    argv = ["train", "--out-dir", corpus, "--max-steps", "1", "--no-progress"]
    with pytest.raises(SystemExit) as stop:
        cli.main(argv)  # shakespeare-char at batch 32: about 328 MiB
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "this run needs about 3" in err
    assert "but 200 MiB is available (MemAvailable)" in err
    assert "try --preset tiny (about " in err and "--batch-size 8 (about " in err
    assert err.endswith("pass --force to start anyway")

    monkeypatch.setattr(me, "memory_limit",
                        lambda device="cpu": me.MemoryLimit(2**20, "MemAvailable"))
    cli.main(["train", "--out-dir", corpus, "--max-steps", "2", "--no-progress", "--preset",
              "tiny", "--batch-size", "2", "--force"])
    out = capsys.readouterr().out
    assert "memory: about " in out and "; 1.0 MiB available (MemAvailable)" in out
    assert "--force: starting anyway" in out
    assert "time: about " in out and "the fastest of a few measured" in out
    assert "2 steps ≈ " in out and "done in " in out


# ----------------------------------------------------------------------------- BERT, pretrain
BERT_CONFIGS = [
    # bert-zh-tiny's model, its vocabulary at its largest, at its training batch
    (16, BertConfig(vocab_size=505, max_position=32, n_layer=2, n_head=2, n_embd=32,
                    dropout=0.0)),
    # wider, an uneven feed-forward width, three segment types, dropout
    (8, BertConfig(vocab_size=300, max_position=48, n_layer=2, n_head=4, n_embd=64,
                   dim_feedforward=96, type_vocab_size=3, dropout=0.1)),
]


@pytest.mark.parametrize("config", [c for _, c in BERT_CONFIGS]
                         + [BertConfig.from_preset("tiny")])
def test_the_bert_parameter_count_is_the_models(config):
    assert me.bert_parameter_count(config) == BertForPreTraining(config).num_parameters()


@pytest.mark.parametrize("batch_size, config", BERT_CONFIGS, ids=["tiny", "wide"])
def test_the_bert_estimate_is_within_25_percent_of_the_measured_peak(batch_size, config):
    """As for the GPT: tracemalloc's peak over three pre-training steps (MLM and NSP, every
    sequence padded to max_position) against the estimate's training peak."""
    rng = np.random.default_rng(0)
    documents = [[list(rng.integers(5, config.vocab_size, rng.integers(3, 12)))
                  for _ in range(4)] for _ in range(64)]

    def draw(generator, size):
        chosen = generator.choice(len(documents), size=2 * size, replace=False)
        return make_pretraining_batch([documents[i] for i in chosen], config.vocab_size, 2, 3,
                                      0, 4, config.max_position, generator, batch_size=size)

    def loss_fn(model, batch):
        return model(**batch._asdict()).loss

    peak = peak_over_three_steps(lambda: Trainer(
        BertForPreTraining(config), draw, None,
        TrainConfig(max_steps=3, batch_size=batch_size, warmup_steps=0), loss_fn=loss_fn))
    estimate = me.estimate_bert_pretraining(config, batch_size)
    ratio = peak / estimate.training_peak
    assert 1 / TOLERANCE <= ratio <= TOLERANCE, (ratio, peak, estimate)


PRETRAIN_UNDER_RLIMIT = """
import resource, sys
from scratchlm import __main__ as cli
with open("/proc/self/status") as status:
    used = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))
limit = used + int(sys.argv[2])  # what the interpreter, NumPy and scratchlm map, and a little
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
cli.main(["pretrain", "--preset", "bert-zh-small", "--out-dir", sys.argv[1], "--run-name",
          "old", "--force", "--no-progress"])
"""


def test_pretrain_over_rlimit_as_is_refused_before_anything_is_written(tmp_path):
    """Under a ulimit -v that leaves 200 MiB beside what the process maps already,
    bert-zh-small (about 370 MiB) is refused in one line naming RLIMIT_AS and the tiny
    preset that fits, before any data is read; the run it was to replace (--force) is left
    exactly as it was, and nothing else is written."""
    import resource
    import subprocess
    import sys

    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        pytest.skip("a ulimit -v is set already")
    small, tiny = pretrain.preset_memory("bert-zh-small"), pretrain.preset_memory("bert-zh-tiny")
    headroom = 200 * 2**20
    assert tiny.total < headroom < small.total  # the case this test is about
    old = tmp_path / "old"
    old.mkdir()
    (old / "checkpoint.npz").write_bytes(b"the old run")
    (old / "config.json").write_text("{}")
    before = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*")
              if p.is_file()}
    done = subprocess.run([sys.executable, "-c", PRETRAIN_UNDER_RLIMIT, str(tmp_path),
                           str(headroom)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    err = done.stderr.strip()
    assert "\n" not in err and "Traceback" not in err, err
    assert err.startswith("error: pretrain --preset bert-zh-small needs about "), err
    assert "is available (RLIMIT_AS (ulimit -v) " in err, err
    assert "try --preset bert-zh-tiny (about " in err, err
    assert "memory: about " in done.stdout
    after = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*")
             if p.is_file()}
    assert after == before and sorted(os.listdir(tmp_path)) == ["old"]
