"""BERT's next-sentence-prediction data: sentence pairs, half real continuations, half random,
packed as ``[CLS] A [SEP] B [SEP]`` with segment ids and padding."""

import bisect
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from scratchlm.checks import bad_argument, check_id_sequence, check_int
from scratchlm.errors import ArgumentError, ArgumentTypeError


def make_nsp_pairs(sentences_by_document: Sequence[Sequence], rng: np.random.Generator
                   ) -> list[tuple[object, object, int]]:
    """Sentence pairs ``(A, B, is_next)`` for next-sentence prediction.

    Every two consecutive sentences of a document give one pair with A the first. Half of the
    pairs (exactly, rounded up) keep the real next sentence as B, ``is_next = 1``; in the other
    half B is a random sentence of another document, ``is_next = 0``. Which pairs are which is
    shuffled with ``rng``. Sentences may be strings or token id lists; they are passed through.
    """
    if not isinstance(rng, np.random.Generator):
        raise ArgumentTypeError(f"make_nsp_pairs: rng must be a numpy.random.Generator, "
                                f"got {type(rng).__name__}", where="make_nsp_pairs",
                                name="rng", value=rng)
    if isinstance(sentences_by_document, (str, bytes)) \
            or not hasattr(sentences_by_document, "__iter__"):
        raise bad_argument("make_nsp_pairs", "sentences_by_document", sentences_by_document,
                           "a list of documents, each a list of sentences",
                           error=ArgumentTypeError)
    documents = []
    for d, document in enumerate(sentences_by_document):
        if isinstance(document, (str, bytes)) or not hasattr(document, "__iter__"):
            raise bad_argument("make_nsp_pairs", f"sentences_by_document[{d}]", document,
                               "a document as a list of sentences (strings or token id "
                               "lists), not one string", error=ArgumentTypeError)
        documents.append(list(document))
    candidates = [(d, i) for d, document in enumerate(documents) for i in range(len(document) - 1)]
    if not candidates:
        raise ValueError("make_nsp_pairs: no document has two sentences, so there is no real "
                         "next sentence to learn from")
    if sum(1 for document in documents if document) < 2:
        raise ValueError("make_nsp_pairs: random next sentences must come from another "
                         "document, so at least two non-empty documents are needed")
    is_next = np.zeros(len(candidates), dtype=np.int64)
    is_next[: (len(candidates) + 1) // 2] = 1
    rng.shuffle(is_next)

    non_empty = [d for d, document in enumerate(documents) if document]
    pairs = []
    for (d, i), label in zip(candidates, is_next.tolist()):
        if label:
            sentence_b = documents[d][i + 1]
        else:
            other = _random_other_document(non_empty, d, rng)
            sentence_b = documents[other][rng.integers(len(documents[other]))]
        pairs.append((documents[d][i], sentence_b, label))
    return pairs


def _random_other_document(non_empty: list[int], excluded: int, rng: np.random.Generator) -> int:
    """A uniformly random index from ``non_empty`` (sorted document indices) other than
    ``excluded`` (one of them): draw among the others and step over ``excluded``'s place."""
    position = int(rng.integers(len(non_empty) - 1))
    return non_empty[position + (position >= bisect.bisect_left(non_empty, excluded))]


class BertInputs(NamedTuple):
    """One packed pair (arrays of shape (L,)) or a batch of them (shape (N, L))."""

    #: ``[CLS] A [SEP] B [SEP]`` then ``pad_id``
    input_ids: np.ndarray
    #: segment ids: 0 for ``[CLS] A [SEP]`` and the padding, 1 for ``B [SEP]``
    token_type_ids: np.ndarray
    #: True on real tokens, False on padding
    attention_mask: np.ndarray


def pack_bert_pair(ids_a: Sequence[int], ids_b: Sequence[int], cls_id: int, sep_id: int,
                   pad_id: int, max_length: int) -> BertInputs:
    """Pack two token id lists as ``[CLS] A [SEP] B [SEP]``, padded to ``max_length``.

    A pair that does not fit is truncated as BERT does: one token at a time from the end of
    whichever sentence is longer at that moment.
    """
    where = "pack_bert_pair"
    check_int(where, "max_length", max_length)
    if max_length < 5:
        raise ArgumentError(f"pack_bert_pair: max_length={max_length} leaves no room for "
                            "[CLS] A [SEP] B [SEP] with a token in each sentence; expected "
                            "max_length ≥ 5", where=where, name="max_length", value=max_length)
    for name, value in (("cls_id", cls_id), ("sep_id", sep_id), ("pad_id", pad_id)):
        check_int(where, name, value, 0)
    ids_a = check_id_sequence(where, "ids_a", ids_a)
    ids_b = check_id_sequence(where, "ids_b", ids_b)
    while len(ids_a) + len(ids_b) + 3 > max_length:
        (ids_a if len(ids_a) > len(ids_b) else ids_b).pop()
    first = [cls_id, *ids_a, sep_id]
    second = [*ids_b, sep_id]
    padding = max_length - len(first) - len(second)
    return BertInputs(
        input_ids=np.array(first + second + [pad_id] * padding, dtype=np.int64),
        token_type_ids=np.array([0] * len(first) + [1] * len(second) + [0] * padding,
                                dtype=np.int64),
        attention_mask=np.arange(max_length) < len(first) + len(second),
    )


def pack_bert_pairs(pairs: Sequence[tuple[Sequence[int], Sequence[int], int]], cls_id: int,
                    sep_id: int, pad_id: int, max_length: int) -> tuple[BertInputs, np.ndarray]:
    """Pack ``(ids_a, ids_b, is_next)`` triples (e.g. from `make_nsp_pairs` after encoding)
    into one batch: `BertInputs` of (N, max_length) arrays and the is_next labels, shape (N,)."""
    if isinstance(pairs, (str, bytes)) or not hasattr(pairs, "__len__"):
        raise bad_argument("pack_bert_pairs", "pairs", pairs, "a list of (ids_a, ids_b, "
                           "is_next) triples", error=ArgumentTypeError)
    if not pairs:
        raise ArgumentError("pack_bert_pairs: pairs is empty; expected at least one (ids_a, "
                            "ids_b, is_next) triple", where="pack_bert_pairs", name="pairs",
                            value=pairs)
    for i, pair in enumerate(pairs):
        if not isinstance(pair, (tuple, list)) or len(pair) != 3:
            raise bad_argument("pack_bert_pairs", f"pairs[{i}]", pair,
                               "an (ids_a, ids_b, is_next) triple", error=ArgumentTypeError)
    packed = [pack_bert_pair(a, b, cls_id, sep_id, pad_id, max_length) for a, b, _ in pairs]
    batch = BertInputs(*(np.stack(field) for field in zip(*packed)))
    return batch, np.array([is_next for _, _, is_next in pairs], dtype=np.int64)
