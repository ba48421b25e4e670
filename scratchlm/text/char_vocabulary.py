"""A character vocabulary for sequence-to-sequence models: the ids of a :class:`CharTokenizer`
shifted up to make room for three special tokens.

    [PAD] = 0   fills a batch's shorter sentences (right padding); attention and loss skip it
    [BOS] = 1   the decoder's first input: "begin the target sentence"
    [EOS] = 2   the decoder's last label: "the sentence ends here"; decoding stops at it
"""

from scratchlm.checks import bad_argument, check_id_sequence, check_text
from scratchlm.errors import ArgumentTypeError
from scratchlm.text.char_tokenizer import CharTokenizer

PAD_ID, BOS_ID, EOS_ID = 0, 1, 2
NUM_SPECIAL_IDS = 3


class CharVocabulary:
    """The characters of ``texts`` as ids ``NUM_SPECIAL_IDS + rank``, after [PAD], [BOS] and
    [EOS]. A character never seen in ``texts`` is dropped when encoding (a translation model
    meets unseen characters in its test sentences and has no embedding for them).

    >>> vocab = CharVocabulary(["abba", "cab"])
    >>> vocab.encode("cab!"), vocab.decode([5, 3, 4, EOS_ID, 3])
    ([5, 3, 4], 'cab')
    """

    def __init__(self, texts):
        if not hasattr(texts, "__iter__"):
            raise bad_argument("CharVocabulary", "texts", texts, "an iterable of strings",
                               error=ArgumentTypeError)
        texts = [check_text("CharVocabulary", "texts[…]", text) for text in texts]
        self.tokenizer = CharTokenizer().train("".join(texts))
        self.known = set(self.tokenizer.chars)

    @property
    def vocab_size(self):
        return self.tokenizer.vocab_size + NUM_SPECIAL_IDS

    def encode(self, text):
        """The ids of ``text``'s known characters (no special tokens added)."""
        check_text("CharVocabulary.encode", "text", text)
        known = "".join(char for char in text if char in self.known)
        return [i + NUM_SPECIAL_IDS for i in self.tokenizer.encode(known)]

    def decode(self, ids):
        """The text of ``ids`` up to the first [EOS], skipping [PAD] and [BOS]."""
        text_ids = []
        for i in check_id_sequence("CharVocabulary.decode", "ids", ids):
            if i == EOS_ID:
                break
            if i >= NUM_SPECIAL_IDS:
                text_ids.append(i - NUM_SPECIAL_IDS)
        return self.tokenizer.decode(text_ids)

    def __repr__(self):
        return f"CharVocabulary(vocab_size={self.vocab_size})"
