"""Adapting a pre-trained model with few trainable parameters.

    from scratchlm.peft import apply_lora, merge_lora, PromptTuning, freeze
    apply_lora(model, ["c_attn"], r=8, alpha=16, modules_to_save=["classifier"])
    prompted = PromptTuning(model, num_virtual_tokens=20)
    freeze(model, train_top_k=2)             # only the top two blocks and the head train

* :mod:`.freezing` — freeze by name or depth, count trainable / total parameters;
* :mod:`.lora` — LoRA (Hu et al., 2021): ``LoRALinear``, ``apply_lora``, merge / unmerge,
  adapter-only checkpoints;
* :mod:`.prompt_tuning` — prompt tuning (Lester et al., 2021): ``PromptTuning``.
"""

from scratchlm.peft.freezing import (
    block_names,
    count_parameters,
    describe_parameters,
    freeze,
    set_trainable,
    trainable_named_parameters,
)
from scratchlm.peft.lora import (
    LoRALinear,
    adapter_state_dict,
    apply_lora,
    load_lora,
    lora_layers,
    merge_lora,
    save_lora,
    unmerge_lora,
)
from scratchlm.peft.prompt_tuning import PromptEmbedding, PromptTuning

__all__ = ["LoRALinear", "apply_lora", "merge_lora", "unmerge_lora", "lora_layers",
           "adapter_state_dict", "save_lora", "load_lora", "PromptTuning", "PromptEmbedding",
           "freeze", "set_trainable", "block_names", "count_parameters", "describe_parameters",
           "trainable_named_parameters"]
