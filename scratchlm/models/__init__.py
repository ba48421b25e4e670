"""Language models built from :mod:`scratchlm.nn`: GPT (decoder-only), BERT, seq2seq."""

from scratchlm.models.gpt import GPT, PRESETS, GPTConfig

__all__ = ["GPT", "GPTConfig", "PRESETS"]
