"""Prompt learning without training: cloze prompts for BERT, in-context examples for GPT.

A task is turned into the pre-training task itself, so the pre-trained heads answer it:

* **Cloze (PET, Schick & Schütze 2021).** The text goes into a template with a blank,
  ``"[X]总之很[MASK]。"``; BERT's masked-LM head scores each label's *label word* at the
  blank, and a *verbalizer* maps words to labels (``好`` → positive, ``差`` → negative):

      score(y | x) = mean over the words w of y of  log P_MLM([MASK] = w | template(x))

* **In-context (GPT-3, Brown et al. 2020).** k solved examples (*demonstrations*) come first,
  each the template with its label word in the blank, separated by [SEP]; then the query's
  template up to the blank. GPT's next-token distribution there is compared on the label
  words: score(y | x) = log P(w_y | demonstrations, template(x) up to the blank).

Few-shot cloze uses demonstrations the same way (LM-BFF, Gao et al. 2021). When k
demonstrations do not fit the model's context together, they are split into groups of
``shots_per_prompt`` (each group balanced over the labels as far as it goes), the query is
scored once per group, and the scores are averaged (demonstration ensembling). Each
demonstration's text is cut to ``demo_chars`` characters, the query's text to what is left.

A small model's blank is often biased towards one label word whatever the text.
``calibrate=True`` applies contextual calibration (Zhao et al. 2021): the scores of a
content-free input (the template with an empty text) are subtracted, which in probability
terms divides each label's probability by its probability without a text.

Templates and verbalizers are plain data (:data:`PROMPTS`); edit them or pass your own.
"""

from dataclasses import dataclass, field

import numpy as np

from scratchlm import backend
from scratchlm import functional as F
from scratchlm.autograd.grad_mode import no_grad

TEXT_SLOT, BLANK = "[X]", "[MASK]"

#: Task -> template (``[X]`` the text, ``[MASK]`` the blank) and verbalizer (label word ->
#: label index). Each label word must be a single token of the model's tokenizer.
PROMPTS = {
    "sentiment-zh": {"template": "[X]总之很[MASK]。", "verbalizer": {"差": 0, "好": 1}},
    # for GPT-2's tokenizer, whose words carry their leading space
    "sentiment-en": {"template": "[X] All in all, it was[MASK].",
                     "verbalizer": {" terrible": 0, " great": 1}},
}


@dataclass
class Prompt:
    template: str
    verbalizer: dict  # label word -> label
    num_labels: int = field(init=False)

    def __post_init__(self):
        if self.template.count(TEXT_SLOT) != 1 or self.template.count(BLANK) != 1:
            raise ValueError(f"Prompt: the template {self.template!r} needs exactly one "
                             f"{TEXT_SLOT} (the text) and one {BLANK} (the blank)")
        if self.template.index(TEXT_SLOT) > self.template.index(BLANK):
            raise ValueError(f"Prompt: in {self.template!r} the blank must come after the "
                             "text (GPT reads left to right and predicts the blank last)")
        if not self.verbalizer:
            raise ValueError("Prompt: the verbalizer maps no label word to a label")
        self.num_labels = max(self.verbalizer.values()) + 1
        missing = sorted(set(range(self.num_labels)) - set(self.verbalizer.values()))
        if missing:
            raise ValueError(f"Prompt: no label word for label(s) {missing} in "
                             f"{self.verbalizer}")

    @classmethod
    def for_task(cls, task):
        if task not in PROMPTS:
            raise ValueError(f"no prompt for task {task!r}; give a template and a verbalizer "
                             f"(known tasks: {sorted(PROMPTS)})")
        return cls(**PROMPTS[task])

    def word_of(self, label):
        return next(word for word, y in self.verbalizer.items() if y == label)

    def pieces(self):
        """(before the text, between the text and the blank, after the blank)."""
        before, rest = self.template.split(TEXT_SLOT)
        middle, after = rest.split(BLANK)
        return before, middle, after


def _label_word_ids(prompt, tokenizer):
    """(word token ids, the label of each): every label word must be one token."""
    ids, labels = [], []
    for word, label in prompt.verbalizer.items():
        encoded = tokenizer.encode(word)
        if len(encoded) != 1:
            raise ValueError(f"prompting: the label word {word!r} is {len(encoded)} tokens; "
                             "a verbalizer's words must be single tokens")
        ids.append(encoded[0])
        labels.append(label)
    return np.array(ids), np.array(labels)


def _demo_tokens(prompt, tokenizer, demonstrations, demo_chars, separator):
    """The token ids of solved examples, each the template with its label word in the blank."""
    before, middle, after = prompt.pieces()
    tokens = []
    for text, label in zip(demonstrations.texts, demonstrations.labels):
        filled = before + text[:demo_chars] + middle + prompt.word_of(int(label)) + after
        tokens += tokenizer.encode(filled) + ([separator] if separator is not None else [])
    return tokens


def _query_rows(prompt, tokenizer, texts, prefix, budget, kind):
    """Per text: the ids up to and including the blank (GPT: up to, excluding it), the text
    cut so that prefix + query fits ``budget`` tokens."""
    before, middle, after = prompt.pieces()
    head, tail = tokenizer.encode(before), tokenizer.encode(middle)
    if kind == "bert":
        tail = tail + [tokenizer.mask_id] + tokenizer.encode(after)
    room = budget - len(prefix) - len(head) - len(tail)
    if room < 1:
        raise ValueError(f"prompting: the demonstrations and template take "
                         f"{budget - room} of {budget} positions, leaving no room for the "
                         "text; use fewer shots per prompt or shorter demonstrations")
    return [prefix + head + tokenizer.encode(text)[:room] + tail for text in texts]


def _pad(rows, pad_id):
    length = max(len(r) for r in rows)
    ids = np.full((len(rows), length), pad_id, dtype=np.int64)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = r
    lengths = np.array([len(r) for r in rows])
    return ids, np.arange(length)[None, :] < lengths[:, None], lengths


def _blank_log_probs(model, ids, mask, blank, kind):
    """log-softmax of the model's token logits at one position per row → (B, V) NumPy.

    The head runs on those positions only (B rows, not B·T): BERT's ``mlm_head`` on the
    encoder's states, GPT's ``lm_head`` on ``hidden_states``. A model without these parts
    is called whole and its logits picked."""
    rows = np.arange(ids.shape[0])
    with no_grad():
        if kind == "bert" and hasattr(model, "bert") and hasattr(model, "mlm_head"):
            hidden = model.bert(ids, None, mask).last_hidden_state
            logits = model.mlm_head(hidden[rows, blank])
        elif kind == "gpt" and hasattr(model, "hidden_states") and hasattr(model, "lm_head"):
            logits = model.lm_head(model.hidden_states(ids)[rows, blank])
        else:
            out = model(ids, attention_mask=mask) if kind == "bert" else model(ids)
            logits = (out.mlm_logits if kind == "bert" else out[0])[rows, blank]
    return backend.to_numpy(F.log_softmax(logits, axis=-1).data)


def label_scores(model, tokenizer, texts, prompt, kind, max_length, demonstrations=None,
                 shots_per_prompt=None, demo_chars=16, batch_size=64, progress=False,
                 calibrate=False):
    """(N, num_labels) scores of ``texts`` under ``prompt``: mean over the label words of
    each label of their log-probability at the blank, averaged over demonstration groups.

    ``model`` is a :class:`BertForPreTraining` (``kind="bert"``, cloze) or a :class:`GPT`
    (``kind="gpt"``, in-context); ``max_length`` its context (max_position / block_size).
    ``calibrate``: subtract the scores of the empty text (see the module docstring).
    """
    if calibrate:
        texts = [*texts, ""]  # the content-free input, scored with the same prompts
    from tqdm.auto import tqdm

    if kind not in ("bert", "gpt"):
        raise ValueError(f"label_scores: kind must be 'bert' or 'gpt', got {kind!r}")
    word_ids, word_labels = _label_word_ids(prompt, tokenizer)
    groups = [None]
    if demonstrations is not None and len(demonstrations):
        per = shots_per_prompt or len(demonstrations)
        order = _interleave_labels(demonstrations.labels)
        groups = [demonstrations.subset(order[i:i + per]) for i in range(0, len(order), per)]
    budget = max_length - (2 if kind == "bert" else 0)  # BERT adds [CLS] ... [SEP]
    total = np.zeros((len(texts), prompt.num_labels))
    model.eval()
    bar = tqdm(total=len(groups) * len(texts), disable=not progress, unit="text",
               desc="scoring", dynamic_ncols=True)
    for group in groups:
        separator = tokenizer.sep_id
        prefix = [] if group is None else _demo_tokens(prompt, tokenizer, group, demo_chars,
                                                       separator)
        for start in range(0, len(texts), batch_size):
            chunk = texts[start:start + batch_size]
            rows = _query_rows(prompt, tokenizer, chunk, prefix, budget, kind)
            if kind == "bert":
                rows = [[tokenizer.cls_id, *r, tokenizer.sep_id] for r in rows]
                ids, mask, _ = _pad(rows, tokenizer.pad_id)
                # the query's blank: the last [MASK] of the row (demonstrations have none)
                blank = np.array([len(r) - 1 - r[::-1].index(tokenizer.mask_id) for r in rows])
            else:
                ids, mask, lengths = _pad(rows, tokenizer.pad_id)
                blank = lengths - 1  # the next token after the last one is the blank's word
            log_p = _blank_log_probs(model, ids, mask, blank, kind)[:, word_ids]  # (B, words)
            for label in range(prompt.num_labels):
                total[start:start + len(chunk), label] += log_p[:, word_labels == label].mean(1)
            bar.update(len(chunk))
    bar.close()
    total /= len(groups)
    if calibrate:
        return total[:-1] - total[-1]
    return total


def _interleave_labels(labels):
    """Indices of the demonstrations ordered label by label in turn (0, 1, 0, 1, ...), so
    each consecutive group is as balanced as it can be."""
    by_label = [list(np.flatnonzero(labels == y)) for y in np.unique(labels)]
    order = []
    while any(by_label):
        for indices in by_label:
            if indices:
                order.append(indices.pop(0))
    return np.array(order)


def predict(model, tokenizer, texts, prompt, kind, max_length, **kwargs):
    """The label with the highest :func:`label_scores` for each text."""
    return label_scores(model, tokenizer, texts, prompt, kind, max_length, **kwargs).argmax(1)
