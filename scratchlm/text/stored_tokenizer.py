"""A tokenizer stored as JSON text (as a run's checkpoint keeps it in ``extras``), whatever
its class: the text is checked as a hostile file is, then the class its ``type`` names
checks its own fields."""

from scratchlm.text.bpe_tokenizer import BPETokenizer
from scratchlm.text.char_tokenizer import CharTokenizer
from scratchlm.text.special_chars import SpecialCharTokenizer
from scratchlm.text.tokenizer_files import parse_tokenizer_text

#: The tokenizer classes by the name their files give in ``type``.
TOKENIZER_CLASSES = {cls.__name__: cls for cls in (CharTokenizer, BPETokenizer,
                                                   SpecialCharTokenizer)}


def tokenizer_from_json(text, where="tokenizer_from_json", source="the tokenizer text"):
    """The tokenizer whose saved JSON file content is ``text``. ``where`` (the caller) and
    ``source`` (``"extras['tokenizer'] of runs/x/checkpoint.npz"``) name it in the one-line
    :class:`~scratchlm.text.tokenizer_files.TokenizerFileError` any problem raises."""
    fields = parse_tokenizer_text(text, where, source)
    kind = fields.value["type"]
    if kind not in TOKENIZER_CLASSES:
        fields.fail("type", f"names the tokenizer {kind[:40]!r}; expected one of "
                    f"{', '.join(TOKENIZER_CLASSES)}")
    return TOKENIZER_CLASSES[kind]().load_fields(fields)
