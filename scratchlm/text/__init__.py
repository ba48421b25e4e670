"""Text for the models: tokenizers, corpora, and batches for GPT (next token), BERT (MLM, NSP)
and sequence-to-sequence models (a character vocabulary with [PAD]/[BOS]/[EOS], padding).

Pure Python and NumPy; nothing here needs the autodiff engine.
"""

from scratchlm.text.bpe_tokenizer import BPETokenizer
from scratchlm.text.byte_level import GPT2_SPLIT_PATTERN, split_words
from scratchlm.text.char_tokenizer import CharTokenizer
from scratchlm.text.char_vocabulary import CharVocabulary
from scratchlm.text.corpora import (
    CHINESE_SOURCES,
    load_chinese,
    load_shakespeare,
    load_zh_en_pairs,
    shakespeare_plays,
)
from scratchlm.text.corpus_cache import CORPORA, PreparedCorpus, prepare_corpus
from scratchlm.text.gpt2_files import gpt2_tokenizer_files, load_gpt2_tokenizer
from scratchlm.text.lm_batching import LMBatcher, get_batch, train_val_split
from scratchlm.text.masked_lm import IGNORE_INDEX, mask_tokens
from scratchlm.text.next_sentence import BertInputs, make_nsp_pairs, pack_bert_pair, pack_bert_pairs
from scratchlm.text.package_data import MissingDataPackageError
from scratchlm.text.padding import pad_sequences

__all__ = [
    "BPETokenizer", "CharTokenizer", "GPT2_SPLIT_PATTERN", "split_words",
    "CHINESE_SOURCES", "load_chinese", "load_shakespeare", "load_zh_en_pairs", "shakespeare_plays",
    "CORPORA", "PreparedCorpus", "prepare_corpus", "gpt2_tokenizer_files", "load_gpt2_tokenizer",
    "LMBatcher", "get_batch", "train_val_split", "IGNORE_INDEX", "mask_tokens",
    "BertInputs", "make_nsp_pairs", "pack_bert_pair", "pack_bert_pairs", "MissingDataPackageError",
    "CharVocabulary", "pad_sequences",
]
