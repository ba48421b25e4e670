"""``SpecialCharTokenizer``: one token per character, after BERT's special tokens.

    [PAD] = 0   fills a batch's shorter texts; attention, pooling and losses skip it
    [UNK] = 1   a character outside the vocabulary
    [CLS] = 2   BERT's first token, whose final vector classifies the whole text
    [SEP] = 3   ends a segment
    [MASK] = 4  hides a token for the masked language model (and for cloze prompts)

Chinese needs no word segmentation for this: a character is a good token for a small model
(Google's ``bert-base-chinese`` also splits Chinese text into single characters). The
vocabulary keeps the ``max_size`` most frequent characters of its training texts; rarer ones
become [UNK]. Special tokens are written inside text as they are printed (``"[MASK]"``), so a
template such as ``"{text}总之很[MASK]。"`` encodes the mask as one token.
"""

import json
import re
from collections import Counter

from scratchlm.checks import bad_argument, check_bool, check_id_sequence, check_int, check_text
from scratchlm.errors import ArgumentError, ArgumentTypeError
from scratchlm.text.tokenizer_files import (
    distinct_characters,
    loader,
    parse_tokenizer_text,
    read_tokenizer_json,
    write_tokenizer_json,
)

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID = range(len(SPECIAL_TOKENS))
_SPECIAL = re.compile("(" + "|".join(re.escape(t) for t in SPECIAL_TOKENS) + ")")


class SpecialCharTokenizer:
    """Characters by frequency after the five special tokens.

    >>> tokenizer = SpecialCharTokenizer().train(["好好好", "差"])
    >>> tokenizer.encode("好[MASK]差!")
    [5, 4, 6, 1]
    """

    pad_id, unk_id, cls_id, sep_id, mask_id = PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID
    special_ids = tuple(range(len(SPECIAL_TOKENS)))

    def __init__(self, chars=()):
        self._set_chars(list(chars))

    def _set_chars(self, chars):
        single = all(isinstance(c, str) and len(c) == 1 for c in chars)
        if not single or len(set(chars)) != len(chars):
            raise ArgumentError("SpecialCharTokenizer: the vocabulary must be distinct single "
                                "characters")
        self._chars = chars
        self._ids = {c: len(SPECIAL_TOKENS) + i for i, c in enumerate(chars)}

    @property
    def vocab_size(self):
        return len(SPECIAL_TOKENS) + len(self._chars)

    def train(self, texts, max_size=None):
        """Keep the characters of ``texts`` (an iterable of strings), the ``max_size`` most
        frequent ones when given (ties in first-seen order); returns the tokenizer."""
        max_size = check_int("SpecialCharTokenizer.train", "max_size", max_size, 1,
                             optional=True, hint="(None keeps every character)")
        if not hasattr(texts, "__iter__"):
            raise bad_argument("SpecialCharTokenizer.train", "texts", texts,
                               "an iterable of strings", error=ArgumentTypeError)
        counts = Counter()
        for text in texts:
            counts.update(check_text("SpecialCharTokenizer.train", "texts[…]", text))
        counts.pop("\n", None)
        ranked = [c for c, _ in counts.most_common(max_size)]
        self._set_chars(ranked)
        return self

    def encode(self, text):
        """Token ids of ``text``: one per character (unknown ones [UNK]); the special tokens
        written as ``[MASK]``, ``[SEP]``, ... become their ids."""
        check_text("SpecialCharTokenizer.encode", "text", text)
        ids = []
        for piece in _SPECIAL.split(text):
            if piece in SPECIAL_TOKENS:
                ids.append(SPECIAL_TOKENS.index(piece))
            else:
                ids.extend(self._ids.get(c, UNK_ID) for c in piece)
        return ids

    def decode(self, ids, skip_special=False):
        where = "SpecialCharTokenizer.decode"
        check_bool(where, "skip_special", skip_special)
        out = []
        for i in check_id_sequence(where, "ids", ids):
            if not 0 <= i < self.vocab_size:
                raise ArgumentError(f"{where}: id {i} is outside the vocabulary of "
                                    f"{self.vocab_size} tokens; expected ids in [0, "
                                    f"{self.vocab_size})", where=where, name="ids", value=i)
            if i < len(SPECIAL_TOKENS):
                if not skip_special:
                    out.append(SPECIAL_TOKENS[i])
            else:
                out.append(self._chars[i - len(SPECIAL_TOKENS)])
        return "".join(out)

    def token_id(self, token):
        """The id of one character or special token; raises if it is not in the vocabulary
        (a verbalizer's label word must be a known token)."""
        if token in SPECIAL_TOKENS:
            return SPECIAL_TOKENS.index(token)
        if token not in self._ids:
            raise ArgumentError(f"SpecialCharTokenizer: {token!r} is not a token of the "
                                f"vocabulary ({self.vocab_size} tokens); choose a label word "
                                "that is a single known character")
        return self._ids[token]

    # ------------------------------------------------------------------ saving, loading
    def to_json(self):
        return json.dumps({"type": "SpecialCharTokenizer", "chars": "".join(self._chars)},
                          ensure_ascii=False)

    @classmethod
    def from_json(cls, text, source="the text given"):
        """The tokenizer whose :meth:`to_json` is ``text`` (checked as a hostile file is;
        ``source`` names where the text came from in the errors)."""
        fields = parse_tokenizer_text(text, "SpecialCharTokenizer.from_json", source)
        if fields.value["type"] != "SpecialCharTokenizer":
            fields.fail("type", f"names a {fields.value['type']} tokenizer; expected a "
                        "SpecialCharTokenizer")
        return cls().load_fields(fields)

    def save(self, path):
        write_tokenizer_json(path, "SpecialCharTokenizer", {"chars": "".join(self._chars)})

    @loader
    def load(self, path):
        return self.load_fields(read_tokenizer_json(path, "SpecialCharTokenizer"))

    def load_fields(self, fields):
        """Take the vocabulary from a tokenizer file's checked fields: ``chars``, one string
        of distinct characters."""
        chars = distinct_characters(fields, "chars", fields.string("chars"))
        self._set_chars(chars)
        return self

    def __repr__(self):
        return f"SpecialCharTokenizer(vocab_size={self.vocab_size})"
