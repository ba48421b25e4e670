"""`prepare_corpus`: a corpus tokenized once, kept under ``data/`` as ``.npy`` + tokenizer JSON."""

import os
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np

from scratchlm.checks import check_int
from scratchlm.errors import ArgumentError, FileFormatError
from scratchlm.file_reading import open_regular_file
from scratchlm.text.bpe_tokenizer import MAX_VOCAB_SIZE, BPETokenizer
from scratchlm.text.char_tokenizer import CharTokenizer
from scratchlm.text.corpora import load_chinese, load_shakespeare
from scratchlm.text.gpt2_files import load_gpt2_tokenizer

#: Corpus name -> function returning its text.
CORPORA: dict[str, Callable[[], str]] = {
    "shakespeare": load_shakespeare,
    "chinese": load_chinese,
    "chinese_reviews": lambda: load_chinese("reviews"),
    "hsk": lambda: load_chinese("hsk"),
}
TOKENIZER_KINDS = ("char", "bpe", "gpt2")
DEFAULT_BPE_VOCAB_SIZE = 1000
#: A BPE tokenizer is trained on at most this many leading characters; all text is encoded.
BPE_TRAINING_CHARS = 1_000_000


class PreparedCorpus(NamedTuple):
    ids: np.ndarray  #: the whole corpus as token ids, 1-D (uint16 when they fit, else int32)
    tokenizer: CharTokenizer | BPETokenizer


def prepare_corpus(name: str, tokenizer_kind: str = "char", data_dir: str | os.PathLike = "data",
                   vocab_size: int | None = None) -> PreparedCorpus:
    """Load corpus ``name`` (see `CORPORA`) tokenized with ``tokenizer_kind``, using the cache.

    * ``"char"``: a `CharTokenizer` over the corpus's characters;
    * ``"bpe"``: a `BPETokenizer` trained on the corpus, ``vocab_size`` tokens (default 1000);
    * ``"gpt2"``: GPT-2's own tokenizer.

    The first call writes ``<name>-<kind>[<vocab_size>].npy`` and ``.tokenizer.json`` under
    ``data_dir``; later calls with the same settings just read them back.
    """
    if not isinstance(name, str) or name not in CORPORA:
        raise ArgumentError(f"prepare_corpus: unknown corpus {name!r}; choose from "
                            f"{list(CORPORA)}", where="prepare_corpus", name="name", value=name)
    if not isinstance(tokenizer_kind, str) or tokenizer_kind not in TOKENIZER_KINDS:
        raise ArgumentError(f"prepare_corpus: tokenizer_kind must be one of {TOKENIZER_KINDS}, "
                            f"got {tokenizer_kind!r}", where="prepare_corpus",
                            name="tokenizer_kind", value=tokenizer_kind)
    if tokenizer_kind == "bpe":
        vocab_size = DEFAULT_BPE_VOCAB_SIZE if vocab_size is None else \
            check_int("prepare_corpus", "vocab_size", vocab_size, 256,
                      hint="(the 256 byte tokens and the merges learned)")
        if vocab_size > MAX_VOCAB_SIZE:
            raise ArgumentError(f"prepare_corpus: vocab_size={vocab_size}; expected at most "
                                f"{MAX_VOCAB_SIZE:,} (GPT-2's vocabulary has 50,257 tokens)",
                                where="prepare_corpus", name="vocab_size", value=vocab_size)
        key = f"{name}-bpe{vocab_size}"
    elif vocab_size is not None:
        raise ArgumentError(f"prepare_corpus: vocab_size applies to 'bpe' only; a "
                            f"{tokenizer_kind!r} tokenizer's vocabulary is fixed; expected "
                            "vocab_size=None", where="prepare_corpus", name="vocab_size",
                            value=vocab_size)
    else:
        key = f"{name}-{tokenizer_kind}"
    ids_path = Path(data_dir) / f"{key}.npy"
    tokenizer_path = Path(data_dir) / f"{key}.tokenizer.json"
    tokenizer_class = CharTokenizer if tokenizer_kind == "char" else BPETokenizer

    if os.path.lexists(ids_path) and os.path.lexists(tokenizer_path):
        tokenizer = tokenizer_class.load(tokenizer_path)
        return PreparedCorpus(read_token_cache(ids_path, tokenizer.vocab_size), tokenizer)

    text = CORPORA[name]()
    if tokenizer_kind == "char":
        tokenizer = CharTokenizer().train(text)
    elif tokenizer_kind == "bpe":
        tokenizer = BPETokenizer().train(text[:BPE_TRAINING_CHARS], vocab_size)
    else:
        tokenizer = load_gpt2_tokenizer()
    dtype = np.uint16 if tokenizer.vocab_size <= 2**16 else np.int32
    ids = np.array(tokenizer.encode(text), dtype=dtype)
    tokenizer.save(tokenizer_path)
    _save_array_atomically(ids_path, ids)
    return PreparedCorpus(ids, tokenizer)


def read_token_cache(path: str | os.PathLike, vocab_size: int) -> np.ndarray:
    """The token ids of a cache file written by `prepare_corpus`, checked as a hostile file
    is before its data is read: a regular file, a ``.npy`` header NumPy reads without
    pickle, a 1-D array of unsigned 16-bit or signed 32-bit integers, exactly as many bytes
    as its shape says, every id in [0, vocab_size)."""
    where = "prepare_corpus"
    rebuild = f"delete {os.fspath(path)} and the tokenizer file beside it to rebuild the cache"

    def fail(problem):
        raise FileFormatError(f"{where}: {os.fspath(path)}: {problem}; {rebuild}", path=path)

    with open_regular_file(path, where, "token cache (.npy)") as handle:
        try:
            version = np.lib.format.read_magic(handle)
            read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                           (2, 0): np.lib.format.read_array_header_2_0}.get(version)
            if read_header is None:
                fail(f".npy format version {version}; a token cache is version 1.0 or 2.0")
            shape, fortran, dtype = read_header(handle)
        except (ValueError, SyntaxError, TypeError, OSError) as problem:
            fail(f"it is not a readable .npy file ({str(problem)[:80]})")
        if dtype.hasobject or dtype not in (np.dtype("<u2"), np.dtype("<i4")):
            fail(f"field 'dtype' is {dtype}; a token cache holds uint16 or int32 ids")
        if len(shape) != 1 or fortran:
            fail(f"field 'shape' is {shape}; a token cache is one row of ids")
        remaining = os.fstat(handle.fileno()).st_size - handle.tell()
        if remaining != shape[0] * dtype.itemsize:
            fail(f"its header promises {shape[0]:,} ids ({shape[0] * dtype.itemsize:,} "
                 f"bytes) but {remaining:,} bytes follow (truncated or damaged)")
        ids = np.fromfile(handle, dtype=dtype, count=shape[0])
    if ids.size == 0:
        fail("it holds no token ids")
    if int(ids.max()) >= vocab_size or int(ids.min()) < 0:
        fail(f"it holds id {int(ids.max())}, outside its tokenizer's vocabulary of "
             f"{vocab_size} tokens")
    return ids


def _save_array_atomically(path: Path, array: np.ndarray) -> None:
    partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with open(partial, "wb") as handle:
        np.save(handle, array, allow_pickle=False)
    os.replace(partial, path)
