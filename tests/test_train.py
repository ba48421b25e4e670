"""The training loop: it learns, it resumes bit-identically, it trains any model from batch
functions, and the command line works."""

import json
import os

import numpy as np
import pytest

import scratchlm as sl
from scratchlm import checkpoint
from scratchlm.__main__ import main
from scratchlm.models import GPT, GPTConfig
from scratchlm.text import CharTokenizer
from scratchlm.train import TrainConfig, Trainer

TEXT = ("First Citizen: Before we proceed any further, hear me speak. All: Speak, speak. "
        "First Citizen: You are all resolved rather to die than to famish? All: Resolved. "
        "resolved. First Citizen: First, you know Caius Marcius is chief enemy to the people.")


def make_trainer(run_dir, max_steps=12, **overrides):
    tokenizer = CharTokenizer().train(TEXT)
    ids = np.array(tokenizer.encode(TEXT))
    sl.manual_seed(0)
    model = GPT(GPTConfig.from_preset("tiny", vocab_size=tokenizer.vocab_size, block_size=16,
                                      dropout=0.1))
    config = TrainConfig(**{**dict(max_steps=max_steps, batch_size=4, learning_rate=1e-2,
                                   warmup_steps=3, eval_interval=4, eval_batches=2,
                                   checkpoint_interval=6, seed=5), **overrides})
    return Trainer(model, ids, ids, config, str(run_dir))


def test_a_tiny_model_overfits_200_characters():
    assert len(TEXT) >= 200
    tokenizer = CharTokenizer().train(TEXT)
    ids = np.array(tokenizer.encode(TEXT))
    sl.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=64, n_layer=2, n_head=2,
                          n_embd=64))
    config = TrainConfig(max_steps=250, batch_size=16, learning_rate=1e-2, warmup_steps=20,
                         min_lr_ratio=0.1, weight_decay=0.0, eval_interval=1000,
                         checkpoint_interval=10_000)
    trainer = Trainer(model, ids, ids, config, "unused")
    while trainer.step < config.max_steps:  # ~10 s on 2 cores (timings are never asserted)
        loss = trainer.train_step()
    assert loss < 0.1
    assert trainer.evaluate() < 0.1


def test_resume_gives_the_bit_identical_loss_curve(tmp_path):
    uninterrupted = make_trainer(tmp_path / "a")
    uninterrupted.train(progress=False)

    first_half = make_trainer(tmp_path / "b")
    first_half.train(progress=False, stop_at=6)  # writes a checkpoint at step 6
    resumed = make_trainer(tmp_path / "b")
    resumed.load_state(checkpoint.load(resumed.checkpoint_path))
    assert resumed.step == 6
    resumed.train(progress=False)

    assert resumed.history["train_loss"] == uninterrupted.history["train_loss"]
    assert resumed.history["val_loss"] == uninterrupted.history["val_loss"]
    for name, p in uninterrupted.model.named_parameters():
        np.testing.assert_array_equal(dict(resumed.model.named_parameters())[name].data, p.data)


def test_training_writes_checkpoint_plot_and_config(tmp_path):
    trainer = make_trainer(tmp_path / "run")
    trainer.train(progress=False)
    names = set(os.listdir(tmp_path / "run"))
    assert {"checkpoint.npz", "loss.png", "config.json"} <= names
    with open(tmp_path / "run" / "loss.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    state = checkpoint.load(str(tmp_path / "run" / "checkpoint.npz"))
    assert state["step"] == 12
    assert state["model_config"]["block_size"] == 16
    assert len(trainer.history["val_loss"]) == 3  # steps 4, 8, 12
    with open(tmp_path / "run" / "config.json") as f:
        assert json.load(f)["train"]["max_steps"] == 12


def test_gradient_accumulation_averages_micro_batches(tmp_path):
    """With A micro-batches the step uses the gradient of their mean loss."""
    trainer = make_trainer(tmp_path / "acc", grad_accum_steps=2, grad_clip=0.0)
    trainer.model.eval()  # no dropout, so both computations see the same function
    trainer.model.train = lambda mode=True: trainer.model
    reference = make_trainer(tmp_path / "ref")
    reference.model.eval()
    captured = {}
    trainer.optimizer.step = lambda: captured.update(
        {n: p.grad.copy() for n, p in trainer.model.named_parameters()})
    rng = np.random.default_rng(trainer.config.seed)  # the trainer's data generator, replayed
    batches = [trainer._batch(trainer.train_data, rng) for _ in range(2)]
    trainer.train_step()
    losses = [reference.model(x, y)[1] for x, y in batches]
    ((losses[0] + losses[1]) / 2).backward()
    for name, p in reference.model.named_parameters():
        np.testing.assert_allclose(captured[name], p.grad, rtol=1e-5, atol=1e-7, err_msg=name)


def test_trainer_decays_only_the_matrices_with_the_configured_adamw():
    trainer = make_trainer("unused", weight_decay=0.05, beta2=0.95, eps=1e-7)
    matrices, vectors = trainer.optimizer.param_groups
    assert matrices["weight_decay"] == 0.05 and vectors["weight_decay"] == 0.0
    assert all(p.ndim == 2 for p in matrices["params"]) and matrices["params"]
    assert all(p.ndim == 1 for p in vectors["params"]) and vectors["params"]
    assert matrices["betas"] == (0.9, 0.95) and matrices["eps"] == 1e-7


def test_batch_functions_and_a_loss_function_train_any_model(tmp_path, monkeypatch):
    """The same loop for a model that is not a language model: batches from a function,
    the loss from ``loss_fn``; no validation data and no run_dir, so nothing is written."""
    monkeypatch.chdir(tmp_path)
    sl.manual_seed(0)
    model = GPT(GPTConfig.from_preset("tiny", vocab_size=7, block_size=8))
    drawn, losses = [], []

    def draw(rng, batch_size):  # sequences that count up modulo 7
        starts = rng.integers(0, 7, size=(batch_size, 1))
        drawn.append(starts)
        return (starts + np.arange(9)) % 7

    def shifted_loss(model, batch):
        return model(batch[:, :-1], batch[:, 1:])[1]

    config = TrainConfig(max_steps=60, batch_size=8, learning_rate=1e-2, warmup_steps=5,
                         eval_interval=1, checkpoint_interval=1, seed=3)
    trainer = Trainer(model, draw, None, config, loss_fn=shifted_loss)
    history = trainer.train(progress=False, on_step=lambda t, loss: losses.append((t.step, loss)))
    assert [step for step, _ in losses] == list(range(1, 61))
    assert [loss for _, loss in losses] == history["train_loss"]
    assert history["val_loss"] == [] and len(drawn) == 60 and drawn[0].shape == (8, 1)
    assert np.mean(history["train_loss"][-5:]) < 0.1 * history["train_loss"][0]
    first = np.random.default_rng(3).integers(0, 7, size=(8, 1))  # the trainer's generator
    np.testing.assert_array_equal(drawn[0], first)
    with pytest.raises(ValueError, match="no validation data"):
        trainer.evaluate()
    assert trainer.evaluate(draw) < 0.1  # a batch function to evaluate on
    with pytest.raises(ValueError, match="no run_dir"):
        trainer.save()
    assert os.listdir(tmp_path) == []  # no checkpoint, plot or runs/ folder


def test_on_validate_reports_each_validation_in_place_of_the_printed_line(tmp_path,
                                                                           capsys):
    """Without on_validate each validation prints its line; with it, the callback gets the
    trainer at that step and the loss the history records, and the loop prints nothing."""
    make_trainer(tmp_path / "printed", max_steps=8).train(progress=False)
    printed = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in printed] == ["step 4", "step 8"]
    reported = []
    trainer = make_trainer(tmp_path / "reported", max_steps=8)
    history = trainer.train(progress=False,
                            on_validate=lambda t, loss: reported.append((t.step, loss)))
    assert capsys.readouterr().out == ""
    assert reported == list(zip(history["val_step"], history["val_loss"]))
    assert [step for step, _ in reported] == [4, 8]
    assert printed[1] == (f"step 8: validation loss {history['val_loss'][1]:.4f} "
                          f"(perplexity {np.exp(history['val_loss'][1]):.2f})")


def test_trainer_rejects_data_shorter_than_a_block():
    sl.manual_seed(0)
    model = GPT(GPTConfig.from_preset("tiny"))
    with pytest.raises(ValueError, match="more than block_size=32"):
        Trainer(model, np.arange(10) % 65, np.arange(100) % 65, TrainConfig(), "unused")


def test_cli_sample_and_eval_need_a_checkpoint(tmp_path, capsys):
    with pytest.raises(SystemExit, match="no checkpoint at"):
        main(["sample", "--run", str(tmp_path / "nothing")])
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "checkpoint.npz").write_bytes(b"not a checkpoint")
    with pytest.raises(SystemExit, match="error:"):
        main(["eval", "--run", str(tmp_path / "bad")])


def test_cli_unknown_preset_is_refused(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--preset", "gpt5"])
    assert "invalid choice: 'gpt5'" in capsys.readouterr().err


def test_training_without_a_progress_bar_never_imports_tqdm():
    """progress=False draws nothing and loads nothing: tqdm stays out of the process."""
    import subprocess
    import sys

    code = (
        "import sys\nimport numpy as np\n"
        "from scratchlm.models import GPT, GPTConfig\n"
        "from scratchlm.train import TrainConfig, Trainer\n"
        "model = GPT(GPTConfig.from_preset('tiny', vocab_size=20, block_size=8))\n"
        "ids = np.arange(200) % 20\n"
        "trainer = Trainer(model, ids, ids, TrainConfig(max_steps=2, batch_size=2, "
        "eval_interval=1, eval_batches=1))\n"
        "trainer.train(progress=False)\ntrainer.evaluate()\n"
        "print(trainer.step, sorted(m for m in sys.modules if m.startswith('tqdm')))\n")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[-2] == "2 []"
