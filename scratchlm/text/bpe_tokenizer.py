"""Byte-level BPE tokenizer, as GPT-2 does it: train, encode, decode, save, load GPT-2's files."""

import functools
import heapq
import os
import re
from collections import Counter
from collections.abc import Collection, Iterable

from scratchlm.checks import check_id_sequence, check_int
from scratchlm.errors import ArgumentError, ArgumentTypeError
from scratchlm.file_reading import Fields, describe, read_file_bytes, read_json_file
from scratchlm.text.bpe_training import learn_merges
from scratchlm.text.byte_level import bytes_to_printable, printable_to_bytes, split_words
from scratchlm.text.tokenizer_files import (
    TokenizerFileError,
    loader,
    read_tokenizer_json,
    write_tokenizer_json,
)

#: The largest vocabulary `train` learns: ids must fit the int32 arrays models take, and a
#: model's embedding of this many rows is already gigabytes wide.
MAX_VOCAB_SIZE = 2**24

#: How many distinct words `encode` remembers before it starts its cache afresh.
WORD_CACHE_SIZE = 200_000


class BPETokenizer:
    """Byte-level byte-pair encoding.

    Text is cut into words with GPT-2's pattern, each word becomes its UTF-8 bytes (one token
    each), and learned merges join adjacent tokens, lowest merge rank first, until none applies.
    Any string can be encoded, since every byte is a token. Special tokens such as
    ``"<|endoftext|>"`` are whole tokens that are never split or merged.

    A new ``BPETokenizer()`` has no merges: its 256 tokens are the bytes, id = byte value.
    After `train`, ids 0..255 are still the bytes, merge ``k`` makes id ``256 + k``, and the
    special tokens come last. `from_gpt2` loads GPT-2's own files and ids.
    """

    def __init__(self):
        self._set_tables([bytes([byte]) for byte in range(256)], [], {})

    # ------------------------------------------------------------------ the tables
    def _set_tables(self, id_to_bytes: list[bytes], merges: list[tuple[int, int, int]],
                    special_tokens: dict[str, int]) -> None:
        """Install ordinary tokens (``id_to_bytes[i]`` for id ``i``), ranked merges
        ``(left, right, merged)`` and special tokens, whose ids follow the ordinary ones."""
        if sorted(special_tokens.values()) != list(
                range(len(id_to_bytes), len(id_to_bytes) + len(special_tokens))):
            raise ArgumentError("BPETokenizer: special token ids must follow the ordinary ids "
                                f"0..{len(id_to_bytes) - 1} without gaps, got {special_tokens}")
        bytes_to_id = {token: token_id for token_id, token in enumerate(id_to_bytes)}
        if len(bytes_to_id) != len(id_to_bytes):
            raise ArgumentError("BPETokenizer: two token ids stand for the same bytes")
        missing = [byte for byte in range(256) if bytes([byte]) not in bytes_to_id]
        if missing:
            raise ArgumentError(f"BPETokenizer: bytes {missing[:5]} have no token of their own")
        self._id_to_bytes = id_to_bytes
        self._byte_ids = [bytes_to_id[bytes([byte])] for byte in range(256)]
        self._merge_ranks = {(left, right): rank for rank, (left, right, _) in enumerate(merges)}
        self._merged_ids = {(left, right): merged for left, right, merged in merges}
        self._special_tokens = dict(special_tokens)
        self._special_ids = {token_id: token for token, token_id in special_tokens.items()}
        self._word_cache: dict[str, list[int]] = {}

    @property
    def vocab_size(self) -> int:
        """Number of ids: ordinary tokens plus special tokens."""
        return len(self._id_to_bytes) + len(self._special_tokens)

    @property
    def special_tokens(self) -> dict[str, int]:
        return dict(self._special_tokens)

    @property
    def merges(self) -> list[tuple[bytes, bytes]]:
        """The learned merges in rank order, each as the two byte strings it joins."""
        return [(self._id_to_bytes[left], self._id_to_bytes[right])
                for left, right in self._merge_ranks]

    def token_bytes(self, token_id: int) -> bytes:
        """The bytes that id ``token_id`` stands for (a special token's UTF-8 text)."""
        return self._bytes_of(check_int("BPETokenizer.token_bytes", "token_id", token_id),
                              "token_bytes")

    # ------------------------------------------------------------------ training
    def train(self, text: str, vocab_size: int, special_tokens: Iterable[str] = ()
              ) -> "BPETokenizer":
        """Learn ``vocab_size - 256 - len(special_tokens)`` merges from ``text``.

        Special tokens are cut out of the text before counting, so their bytes are never
        learned as ordinary words. Training stops early if every word is already one token.
        Returns the tokenizer itself.
        """
        if not isinstance(text, str):
            raise ArgumentTypeError(f"BPETokenizer.train: expected text as str, got "
                                    f"{type(text).__name__}")
        if isinstance(special_tokens, str):
            raise ArgumentTypeError("BPETokenizer.train: special_tokens must be a list of strings, "
                                    f"got the single string {special_tokens!r}")
        special_tokens = list(dict.fromkeys(special_tokens))
        if not all(isinstance(token, str) and token for token in special_tokens):
            raise ArgumentError("BPETokenizer.train: special tokens must be non-empty strings, "
                                f"got {special_tokens}")
        vocab_size = check_int("BPETokenizer.train", "vocab_size", vocab_size, 1,
                               MAX_VOCAB_SIZE + 1, hint="(GPT-2's vocabulary has 50,257 "
                               "tokens)")
        num_merges = vocab_size - 256 - len(special_tokens)
        if num_merges < 0:
            raise ArgumentError(f"BPETokenizer.train: vocab_size={vocab_size} is smaller than "
                                f"the 256 byte tokens plus {len(special_tokens)} special "
                                f"tokens; expected vocab_size ≥ {256 + len(special_tokens)}",
                                where="BPETokenizer.train", name="vocab_size", value=vocab_size)
        word_counts: Counter[str] = Counter()
        for piece in _split_on(text, special_tokens):
            if piece not in special_tokens:
                word_counts.update(split_words(piece))
        learned = learn_merges({word.encode("utf-8"): count
                                for word, count in word_counts.items()}, num_merges)
        id_to_bytes = [bytes([byte]) for byte in range(256)]
        merges = []
        for left, right in learned:
            merges.append((left, right, len(id_to_bytes)))
            id_to_bytes.append(id_to_bytes[left] + id_to_bytes[right])
        specials = {token: len(id_to_bytes) + k for k, token in enumerate(special_tokens)}
        self._set_tables(id_to_bytes, merges, specials)
        return self

    # ------------------------------------------------------------------ encoding
    def encode(self, text: str, allowed_special: str | Collection[str] = "all") -> list[int]:
        """Token ids of ``text``.

        Special tokens in ``allowed_special`` (``"all"`` by default) become their single id;
        any other special token text is encoded as ordinary text.
        """
        if not isinstance(text, str):
            raise ArgumentTypeError(f"BPETokenizer.encode: expected text as str, got "
                                    f"{type(text).__name__}")
        if allowed_special == "all":
            allowed = list(self._special_tokens)
        elif isinstance(allowed_special, str) or not hasattr(allowed_special, "__iter__"):
            raise ArgumentError(f"BPETokenizer.encode: allowed_special={allowed_special!r}; "
                                "expected 'all' or a list of special tokens ([] for none)",
                                where="BPETokenizer.encode", name="allowed_special",
                                value=allowed_special)
        else:
            allowed = list(allowed_special)
            unknown = [token for token in allowed if token not in self._special_tokens]
            if unknown:
                raise ArgumentError(f"BPETokenizer.encode: allowed_special names {unknown}, "
                                    "which are not special tokens (those are "
                                    f"{list(self._special_tokens)})")
        ids: list[int] = []
        for piece in _split_on(text, allowed):
            if piece in allowed:
                ids.append(self._special_tokens[piece])
            else:
                for word in split_words(piece):
                    ids.extend(self._encode_word(word))
        return ids

    def _encode_word(self, word: str) -> list[int]:
        ids = self._word_cache.get(word)
        if ids is None:
            if len(self._word_cache) >= WORD_CACHE_SIZE:
                self._word_cache.clear()
            ids = self._word_cache[word] = self._apply_merges(word.encode("utf-8"))
        return ids

    def _apply_merges(self, word: bytes) -> list[int]:
        """GPT-2's rule: merge the adjacent pair of lowest merge rank (the leftmost of equals)
        until no adjacent pair has a rank.

        GPT-2 rescans the word after every merge, O(n²). Here the tokens form a linked list and
        a heap holds ``(rank, left position)`` of each mergeable pair, O(n log n); an entry made
        stale by an earlier merge no longer matches its position's pair and is skipped.
        """
        ids: list[int | None] = [self._byte_ids[byte] for byte in word]
        end = len(ids)
        following = list(range(1, end + 1))  # next live position; `end` after the last token
        preceding = list(range(-1, end - 1))  # previous live position; -1 before the first
        heap = [(self._merge_ranks[pair], left) for left, pair in enumerate(zip(ids, ids[1:]))
                if pair in self._merge_ranks]
        heapq.heapify(heap)
        while heap:
            rank, left = heapq.heappop(heap)
            right = following[left]
            if ids[left] is None or right == end or self._rank_at(ids, left, right) != rank:
                continue
            ids[left] = self._merged_ids[(ids[left], ids[right])]
            ids[right] = None
            following[left] = following[right]
            if following[left] != end:
                preceding[following[left]] = left
            for start in (preceding[left], left):  # the two pairs the new token is part of
                if start >= 0 and following[start] != end:
                    new_rank = self._rank_at(ids, start, following[start])
                    if new_rank is not None:
                        heapq.heappush(heap, (new_rank, start))
        return [token_id for token_id in ids if token_id is not None]

    def _rank_at(self, ids: list[int | None], left: int, right: int) -> int | None:
        return self._merge_ranks.get((ids[left], ids[right]))

    # ------------------------------------------------------------------ decoding
    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids``; bytes that do not form valid UTF-8 become U+FFFD, as in GPT-2."""
        data = b"".join(self._bytes_of(token_id, "decode")
                        for token_id in check_id_sequence("BPETokenizer.decode", "ids", ids))
        return data.decode("utf-8", errors="replace")

    def _bytes_of(self, token_id: int, caller: str) -> bytes:
        if 0 <= token_id < len(self._id_to_bytes):
            return self._id_to_bytes[token_id]
        if token_id in self._special_ids:
            return self._special_ids[token_id].encode("utf-8")
        raise ArgumentError(f"BPETokenizer.{caller}: id {token_id} is outside the vocabulary "
                            f"of {self.vocab_size} ids; expected ids in [0, {self.vocab_size})",
                            where=f"BPETokenizer.{caller}", name="ids", value=token_id)

    # ------------------------------------------------------------------ files
    def save(self, path: str | os.PathLike) -> None:
        """Write the tokenizer to JSON, tokens shown as GPT-2 shows them (a space is "Ġ")."""
        write_tokenizer_json(path, "BPETokenizer", {
            "vocab": {bytes_to_printable(token): token_id
                      for token_id, token in enumerate(self._id_to_bytes)},
            "merges": [[bytes_to_printable(left), bytes_to_printable(right)]
                       for left, right in self.merges],
            "special_tokens": self._special_tokens,
        })

    @loader
    def load(self, path: str | os.PathLike) -> "BPETokenizer":
        """Read a file written by `save`; callable on the class or on an instance."""
        return self.load_fields(read_tokenizer_json(path, "BPETokenizer"))

    def load_fields(self, fields: Fields) -> "BPETokenizer":
        """Install the tables of a tokenizer file's checked fields: ``vocab`` (printable
        token -> id), ``merges`` (pairs of printable tokens), ``special_tokens``."""
        vocab = _token_ids(fields, "vocab", fields.mapping("vocab"))
        merges = fields.sequence("merges")
        for rank, merge in enumerate(merges):
            if not (isinstance(merge, list) and len(merge) == 2
                    and all(isinstance(token, str) for token in merge)):
                fields.fail("merges", f"item {rank} is {describe(merge)}; expected a pair of "
                            "token strings")
        special_tokens = _token_ids(fields, "special_tokens",
                                    fields.mapping("special_tokens", {}))
        try:
            self._set_printable_tables(vocab, merges, special_tokens)
        except ValueError as problem:
            fields.fail(None, str(problem).removeprefix("BPETokenizer: "))
        return self

    @classmethod
    def from_gpt2(cls, encoder_json: str | os.PathLike, vocab_bpe: str | os.PathLike
                  ) -> "BPETokenizer":
        """GPT-2's tokenizer from its ``encoder.json`` and ``vocab.bpe``, with GPT-2's exact ids.

        Both files are checked as hostile files are: regular files, UTF-8, ``encoder.json``
        an object of printable tokens to ids holding ``<|endoftext|>``, each line of
        ``vocab.bpe`` (after its ``#version`` line) two tokens of the vocabulary."""
        where = "BPETokenizer.from_gpt2"
        source = os.fspath(encoder_json)
        fields = Fields(read_json_file(encoder_json, where, "encoder.json", error=
                                       TokenizerFileError), where, source, source,
                        TokenizerFileError, what="an object of tokens to ids")
        vocab = _token_ids(fields, None, fields.value)
        if "<|endoftext|>" not in vocab:
            fields.fail(None, "has no <|endoftext|> token; is it GPT-2's encoder.json?",
                        hint=None)
        raw = read_file_bytes(vocab_bpe, where, "vocab.bpe file", error=TokenizerFileError)
        try:
            lines = raw.decode("utf-8").split("\n")
        except UnicodeDecodeError as problem:
            raise TokenizerFileError(f"{where}: {os.fspath(vocab_bpe)} is not UTF-8 text (byte "
                                     f"{problem.start}); is it GPT-2's vocab.bpe?",
                                     path=vocab_bpe) from None
        merges = [line.split(" ") for line in lines
                  if line.strip() and not line.startswith("#version")]
        special_tokens = {"<|endoftext|>": vocab.pop("<|endoftext|>")}
        tokenizer = cls()
        try:
            tokenizer._set_printable_tables(vocab, merges, special_tokens)
        except ValueError as problem:
            problem = str(problem).removeprefix("BPETokenizer: ")
            raise TokenizerFileError(f"{where}: {source} and {os.fspath(vocab_bpe)} do not "
                                     f"make a tokenizer: {problem}", path=vocab_bpe) from None
        return tokenizer

    def _set_printable_tables(self, vocab: dict[str, int], merges: list[list[str]],
                              special_tokens: dict[str, int]) -> None:
        """Install tables given as GPT-2 writes them: printable token strings."""
        if sorted(vocab.values()) != list(range(len(vocab))):
            raise ArgumentError(f"BPETokenizer: the vocabulary's ids must be 0..{len(vocab) - 1}, "
                                "each once")
        id_to_bytes = [b""] * len(vocab)
        for token, token_id in vocab.items():
            id_to_bytes[token_id] = printable_to_bytes(token)
        merge_ids = []
        for merge in merges:
            if len(merge) != 2 or "".join(merge) not in vocab or any(t not in vocab for t in merge):
                raise ArgumentError(f"BPETokenizer: merge {merge} must join two tokens of the "
                                    "vocabulary into a third")
            left, right = merge
            merge_ids.append((vocab[left], vocab[right], vocab[left + right]))
        self._set_tables(id_to_bytes, merge_ids, special_tokens)

    def __repr__(self) -> str:
        return (f"BPETokenizer(vocab_size={self.vocab_size}, merges={len(self._merge_ranks)}, "
                f"special_tokens={list(self._special_tokens)})")


def _split_on(text: str, special_tokens: Collection[str]) -> list[str]:
    """Cut ``text`` around each occurrence of a special token (longest first), keeping them."""
    if not special_tokens:
        return [text]
    splitter = _special_token_splitter(tuple(sorted(special_tokens, key=len, reverse=True)))
    return [piece for piece in splitter.split(text) if piece]


@functools.lru_cache(maxsize=64)
def _special_token_splitter(special_tokens: tuple[str, ...]) -> re.Pattern:
    return re.compile("(" + "|".join(re.escape(token) for token in special_tokens) + ")")


def _token_ids(fields: Fields, name: str | None, table: dict) -> dict[str, int]:
    """``table`` checked to map token strings to integer ids ≥ 0 (a copy)."""
    for token, token_id in table.items():
        if type(token_id) is not int or token_id < 0:
            fields.fail(name, f"gives the token {token[:20]!r} the id {describe(token_id)}; "
                        "expected an integer id ≥ 0")
    return dict(table)
