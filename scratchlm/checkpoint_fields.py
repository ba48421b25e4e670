"""The fields of a run's checkpoint, checked one by one before a command uses them.

:func:`scratchlm.checkpoint.load` guarantees a well-formed file: arrays of plain dtypes,
numbers, strings, dicts and lists, nothing that runs code. What the fields *mean* is
checked here, so that a damaged or hand-made checkpoint is one line naming the file and
the field (``runs/x/checkpoint.npz: field 'rng.data' ...``), never a ``KeyError: 'model'``
or a traceback from inside NumPy:

    model           a dict of parameter names to float32 or float64 arrays (float16 and
                    integer weights are refused, never cast)
    model_config    a dict of names to numbers, strings, booleans
    extras          a dict; its known entries of the right kinds (``tokenizer`` is the
                    JSON text of a tokenizer, ``reverse`` a bool, ...)
    optimizer       ``{"state": {...}, "param_groups": [{...}, ...]}``, float arrays in
                    float32 or float64
    scheduler       ``{"last_step": n ≥ 0, "base_lrs": [finite numbers]}``
    train_config    a dict; for a command that reads it, each field TrainConfig has of a
                    kind and range TrainConfig accepts (a batch size is an integer ≥ 1, a
                    learning rate a finite number > 0, the device 'cpu' or 'cuda', ...)
    step            an integer ≥ 0
    rng             ``{"data": ..., "engine": ...}``: states NumPy's PCG64 accepts
    history         lists of numbers; ``step`` and ``train_loss`` of equal length, and
                    ``val_step`` and ``val_loss``
    config_changes  a list of dicts

A field that is absent is not an error here: each command says what it needs
(``require``), and a missing one is reported the same way.
"""

import math

import numpy as np

from scratchlm.errors import FileFormatError
from scratchlm.file_reading import describe

#: What each kind of run's checkpoint must hold for a command to use it.
MODEL_FIELDS = ("model", "model_config")
TRAINING_FIELDS = ("model", "model_config", "optimizer", "scheduler", "train_config",
                   "step", "rng", "history", "extras")
WEIGHT_DTYPES = (np.dtype("float32"), np.dtype("float64"))
#: extras' entries scratchlm writes, and the check each must pass.
EXTRAS = {
    "tokenizer": (lambda v: isinstance(v, str), "the JSON text of a tokenizer"),
    "tokenizer_kind": (lambda v: v in ("char", "bpe", "gpt2"), "'char', 'bpe' or 'gpt2'"),
    "corpus": (lambda v: isinstance(v, str), "a corpus name"),
    "reverse": (lambda v: isinstance(v, bool), "true or false"),
    "model_kind": (lambda v: v in ("gpt", "bert"), "'gpt' or 'bert'"),
    "preset": (lambda v: v is None or isinstance(v, str), "a preset name or null"),
    "source": (lambda v: isinstance(v, str), "a path"),
}
HISTORY_PAIRS = (("step", "train_loss"), ("val_step", "val_loss"))


class CheckpointFieldError(FileFormatError):
    """A checkpoint that is well formed but whose fields a command cannot use."""


def kind_of(value):
    """A short description of a loaded value: 'a list of 3 items', 'an array of dtype
    float16 and shape (4, 4)', 'a string ("x")'."""
    if isinstance(value, np.ndarray):
        return f"an array of dtype {value.dtype} and shape {value.shape}"
    if isinstance(value, tuple):
        return f"a tuple of {len(value)} items"
    return describe(value)


class _Checker:
    def __init__(self, path, where, train_config_class=None):
        self.path, self.where = path, where
        self.train_config_class = train_config_class

    def fail(self, field, problem, hint="the checkpoint is damaged or was not written by "
                                        "this scratchlm; use checkpoint.prev.npz or train "
                                        "again"):
        raise CheckpointFieldError(f"{self.where}: {self.path}: field {field!r} {problem}"
                                   + (f"; {hint}" if hint else ""), path=self.path,
                                   entry=field)

    def expect(self, field, value, ok, expected):
        if not ok:
            self.fail(field, f"is {kind_of(value)}; expected {expected}")
        return value

    def mapping(self, field, value):
        return self.expect(field, value, isinstance(value, dict), "a dict")

    # ------------------------------------------------------------------ the fields
    def model(self, value):
        self.mapping("model", value)
        for name, array in value.items():
            field = f"model.{name}"
            self.expect(field, array, isinstance(array, np.ndarray), "an array of weights")
            if array.dtype not in WEIGHT_DTYPES:
                self.fail(field, f"holds {array.dtype} values; a run's weights are float32 "
                          "(float64 for gradient checks), and converting "
                          f"{array.dtype} would change them silently")

    def model_config(self, value):
        self.mapping("model_config", value)
        for name, item in value.items():
            self.expect(f"model_config.{name}", item,
                        isinstance(item, (bool, int, float, str)) or item is None,
                        "a number, a string or a boolean")

    def extras(self, value):
        self.mapping("extras", value)
        for name, (ok, expected) in EXTRAS.items():
            if name in value:
                item = value[name]
                self.expect(f"extras.{name}", item, ok(item), expected)

    def optimizer(self, value):
        self.mapping("optimizer", value)
        if set(value) != {"state", "param_groups"}:
            self.fail("optimizer", f"holds the keys {sorted(map(str, value))[:5]}; expected "
                      "'state' and 'param_groups'")
        groups = value["param_groups"]
        self.expect("optimizer.param_groups", groups, isinstance(groups, list)
                    and all(isinstance(g, dict) for g in groups), "a list of dicts")
        states = self.mapping("optimizer.state", value["state"])
        for key, entries in states.items():
            field = f"optimizer.state.{key}"
            self.mapping(field, entries)
            for name, item in entries.items():
                if isinstance(item, np.ndarray) and item.dtype not in WEIGHT_DTYPES:
                    self.fail(f"{field}.{name}", f"holds {item.dtype} values; the "
                              "optimizer's state is float32 or float64")

    def scheduler(self, value):
        self.mapping("scheduler", value)
        last = value.get("last_step")
        self.expect("scheduler.last_step", last, type(last) is int and last >= 0,
                    "an integer ≥ 0")
        rates = value.get("base_lrs")
        self.expect("scheduler.base_lrs", rates, isinstance(rates, list) and all(
            _finite(r) for r in rates), "a list of finite numbers")

    def train_config(self, value):
        """A dict; given the class a command builds from it (``TrainConfig``), each field
        that class has, as the class checks it (a key it does not have is read by no
        command: ``TrainConfig.from_dict`` ignores it)."""
        self.mapping("train_config", value)
        config_class = self.train_config_class
        if config_class is None:
            return
        for name, item in value.items():
            if name not in config_class.__dataclass_fields__:
                continue
            try:
                config_class(**{name: item})
            except ValueError as problem:  # ConfigError, ArgumentError
                self.fail(f"train_config.{name}", f"is {kind_of(item)}, which a run cannot "
                          f"use ({problem})")

    def step(self, value):
        self.expect("step", value, type(value) is int and value >= 0, "an integer ≥ 0")

    def rng(self, value):
        self.mapping("rng", value)
        for name in ("data", "engine"):
            field = f"rng.{name}"
            if name not in value:
                self.fail(field, "is missing")
            generator = np.random.PCG64()
            try:
                generator.state = value[name]
            except (TypeError, ValueError, KeyError, OverflowError):
                self.fail(field, f"is {kind_of(value[name])}, not the state of a PCG64 "
                          "random generator")

    def history(self, value):
        self.mapping("history", value)
        for name, items in value.items():
            field = f"history.{name}"
            self.expect(field, items, isinstance(items, list)
                        and all(_number(i) for i in items), "a list of numbers")
        for steps, losses in HISTORY_PAIRS:
            if len(value.get(steps, ())) != len(value.get(losses, ())):
                self.fail(f"history.{losses}", f"holds {len(value.get(losses, ()))} values "
                          f"but history.{steps} {len(value.get(steps, ()))}; each loss "
                          "belongs to one step")

    def config_changes(self, value):
        self.expect("config_changes", value, isinstance(value, list)
                    and all(isinstance(c, dict) for c in value), "a list of dicts")


#: The check of each field a run's checkpoint may hold.
FIELD_CHECKS = {name: getattr(_Checker, name) for name in (
    "model", "model_config", "extras", "optimizer", "scheduler", "train_config", "step",
    "rng", "history", "config_changes")}


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _finite(value):
    return _number(value) and math.isfinite(value)


def check_run_state(state, path, where="load", require=MODEL_FIELDS, extras=(),
                    train_config_class=None):
    """``state`` (a loaded checkpoint of ``path``) if every field it has is what a run's
    checkpoint holds, every field of ``require`` is there and every entry of ``extras``
    in its extras; else :class:`CheckpointFieldError` naming ``where``, the file and the
    field. A command that builds a ``TrainConfig`` from the checkpoint passes that class
    as ``train_config_class``: then each field of ``train_config`` is checked as the class
    checks it (this module cannot import the training loop, which imports it)."""
    checker = _Checker(path, where, train_config_class)
    if not isinstance(state, dict):
        raise CheckpointFieldError(f"{where}: {path} holds {kind_of(state)}; a run's "
                                   "checkpoint holds a dict of its fields (model, "
                                   "model_config, ...)", path=path)
    for field in require:
        if field not in state:
            checker.fail(field, "is missing", hint=f"a run's checkpoint holds "
                         f"{', '.join(require)}; is this a run's checkpoint?")
    for field, value in state.items():
        if field in FIELD_CHECKS:
            FIELD_CHECKS[field](checker, value)
    for entry in extras:
        if entry not in state.get("extras", {}):
            checker.fail(f"extras.{entry}", "is missing", hint="is this the checkpoint of "
                         "a `python -m scratchlm train` run?")
    return state


def config_from_state(state, path, config_class, where="load"):
    """``config_class(**state['model_config'])``, a failure (an unknown field, a size that
    cannot work) reported as :class:`CheckpointFieldError` naming the file and the field."""
    fields = state["model_config"]
    try:
        return config_class(**fields)
    except TypeError as problem:
        unknown = sorted(set(fields) - set(config_class.__dataclass_fields__))
        field = f"model_config.{unknown[0]}" if unknown else "model_config"
        raise CheckpointFieldError(f"{where}: {path}: field {field!r} cannot make a "
                                   f"{config_class.__name__} ({problem})", path=path,
                                   entry=field) from None
    except ValueError as problem:
        name = getattr(problem, "name", None)
        field = f"model_config.{name}" if name else "model_config"
        raise CheckpointFieldError(f"{where}: {path}: field {field!r}: {problem}", path=path,
                                   entry=field) from None


def load_model(state, path, model_class, config_class, where="load"):
    """The model of a checked run state: ``model_class(config)`` with the state's weights,
    every failure naming the file and the field."""
    model = model_class(config_from_state(state, path, config_class, where))
    try:
        model.load_state_dict(state["model"])
    except (ValueError, RuntimeError) as problem:
        raise CheckpointFieldError(f"{where}: {path}: field 'model' does not fit its "
                                   f"model_config: {problem}", path=path,
                                   entry="model") from None
    return model


def stored_tokenizer(state, path, where="load"):
    """The tokenizer a run's checkpoint stores as JSON text in ``extras['tokenizer']``."""
    from scratchlm.text.stored_tokenizer import tokenizer_from_json

    checker = _Checker(path, where)
    extras = state.get("extras")
    if extras is None:
        checker.fail("extras", "is missing, so the run's tokenizer is unknown")
    checker.extras(extras)
    if "tokenizer" not in extras:
        checker.fail("extras.tokenizer", "is missing, so the run's tokenizer is unknown")
    tokenizer = tokenizer_from_json(extras["tokenizer"], where,
                                    f"field 'extras.tokenizer' of {path}")
    vocab_size = state.get("model_config", {}).get("vocab_size")
    if type(vocab_size) is int and tokenizer.vocab_size > vocab_size:
        checker.fail("extras.tokenizer", f"holds {tokenizer.vocab_size} tokens but "
                     f"model_config.vocab_size is {vocab_size}: its ids would fall outside "
                     "the model's vocabulary")
    return tokenizer
