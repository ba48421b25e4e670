"""Module bookkeeping: registration, names, state dicts, modes, devices, containers."""

import numpy as np
import pytest

import scratchlm as sl
import scratchlm.nn as nn
from scratchlm import backend


class Block(nn.Module):
    """A small model with a nested module, a list, a bias-free layer and a tied weight."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(5, 4)
        self.layers = nn.ModuleList([nn.Linear(4, 4), nn.LayerNorm(4)])
        self.scale = nn.Parameter(np.ones(4, dtype=np.float32))
        self.head = nn.Linear(4, 5, bias=False)
        self.head.weight = self.embed.weight  # tied, as GPT's lm_head and wte


NAMES = ["scale", "embed.weight", "layers.0.weight", "layers.0.bias", "layers.1.weight",
         "layers.1.bias"]


def test_named_parameters_in_definition_order_with_tied_weight_listed_once():
    model = Block()
    assert [name for name, _ in model.named_parameters()] == NAMES
    assert len(list(model.parameters())) == len(NAMES)
    assert model.num_parameters() == 4 + 5 * 4 + 16 + 4 + 4 + 4


def test_named_modules_and_children():
    model = Block()
    assert [name for name, _ in model.named_modules()] == [
        "", "embed", "layers", "layers.0", "layers.1", "head"]
    assert [type(c).__name__ for c in model.children()] == ["Embedding", "ModuleList",
                                                            "Linear"]


def test_state_dict_holds_host_copies_under_every_name_including_tied_ones():
    model = Block()
    state = model.state_dict()
    assert list(state) == ["scale", "embed.weight", "layers.0.weight", "layers.0.bias",
                           "layers.1.weight", "layers.1.bias", "head.weight"]
    assert all(type(v) is np.ndarray for v in state.values())
    state["scale"][:] = 7.0  # a copy: the model is untouched
    np.testing.assert_array_equal(model.scale.data, np.ones(4))


def test_state_dict_round_trip_restores_every_value():
    sl.manual_seed(0)
    source, target = Block(), Block()
    target.load_state_dict(source.state_dict())
    for (name, p), (_, q) in zip(source.named_parameters(), target.named_parameters()):
        np.testing.assert_array_equal(p.data, q.data, err_msg=name)
        assert q.dtype == np.float32
    assert target.head.weight is target.embed.weight  # tying survives loading


def test_load_state_dict_does_not_alias_the_given_arrays():
    model, state = Block(), Block().state_dict()
    model.load_state_dict(state)
    state["scale"][:] = 5.0
    assert not np.any(model.scale.data == 5.0)


def test_loading_float64_gives_a_float64_model():
    model = nn.Linear(3, 2)
    state = {k: v.astype(np.float64) for k, v in model.state_dict().items()}
    model.load_state_dict(state)
    assert model.weight.dtype == np.float64 and model.bias.dtype == np.float64
    y = model(sl.tensor(np.ones((4, 3))))
    assert y.dtype == np.float64
    np.testing.assert_allclose(y.numpy(), np.ones((4, 3)) @ state["weight"].T + state["bias"])


def test_strict_load_lists_missing_unexpected_and_misshaped_keys_in_one_error():
    model = nn.Linear(3, 2)
    state = {"weight": np.zeros((2, 4), np.float32), "extra": np.zeros(1)}
    with pytest.raises(RuntimeError) as error:
        model.load_state_dict(state)
    message = str(error.value)
    assert "Linear" in message
    assert "missing keys: ['bias']" in message
    assert "unexpected keys: ['extra']" in message
    assert "weight: expected shape (2, 3), got (2, 4)" in message
    assert model.weight.shape == (2, 3)  # nothing was loaded


def test_non_strict_load_reports_keys_but_still_refuses_wrong_shapes():
    model = nn.Linear(3, 2)
    weight = np.arange(6, dtype=np.float32).reshape(2, 3)
    result = model.load_state_dict({"weight": weight, "extra": np.zeros(1)}, strict=False)
    assert result.missing_keys == ["bias"] and result.unexpected_keys == ["extra"]
    np.testing.assert_array_equal(model.weight.data, weight)
    with pytest.raises(RuntimeError, match=r"bias: expected shape \(2,\), got \(3,\)"):
        model.load_state_dict({"bias": np.zeros(3)}, strict=False)


def test_loading_integers_into_a_parameter_is_refused():
    with pytest.raises(RuntimeError, match="bias: a parameter needs floating-point values"):
        nn.Linear(3, 2).load_state_dict({"weight": np.zeros((2, 3)), "bias": np.zeros(2, int)})


def test_train_and_eval_reach_every_submodule():
    model = Block()
    assert all(m.training for m in model.modules())
    assert model.eval() is model
    assert not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())


def test_zero_grad_forgets_gradients():
    model = nn.Linear(3, 2)
    model(sl.tensor(np.ones((1, 3)))).sum().backward()
    assert model.weight.grad is not None
    model.zero_grad()
    assert model.weight.grad is None and model.bias.grad is None


def test_to_cpu_keeps_parameters_in_place():
    model = Block()
    weight = model.embed.weight
    assert model.to("cpu") is model
    assert model.embed.weight is weight and weight.device == "cpu"


@pytest.mark.skipif(sl.gpu_available(), reason="checks the error raised without a GPU")
def test_to_cuda_without_gpu_raises_the_engines_clear_error():
    with pytest.raises(RuntimeError, match="no GPU was found"):
        nn.Linear(2, 2).to("cuda")


def test_to_an_unknown_device_is_refused():
    with pytest.raises(ValueError, match=r"Linear.to: device='tpu' \(unknown device\); "
                                         r"expected 'cpu' or 'cuda'"):
        nn.Linear(2, 2).to("tpu")


@pytest.mark.skipif(not sl.gpu_available(), reason="no GPU")
def test_to_cuda_moves_parameters_gradients_and_buffers_in_place():
    model = nn.Sequential(nn.Linear(4, 4), nn.SinusoidalPositionalEncoding(4, max_len=8))
    weight = model[0].weight
    model(sl.tensor(np.ones((1, 2, 4)))).sum().backward()
    model.to("cuda")
    assert model[0].weight is weight and weight.device == "cuda"
    assert backend.device_of(weight.grad) == "cuda" and backend.device_of(model[1].pe) == "cuda"
    state = model.state_dict()
    assert type(state["0.weight"]) is np.ndarray


def test_parameter_is_a_float32_leaf_that_requires_grad():
    p = nn.Parameter([[1.0, 2.0]])
    assert isinstance(p, sl.Tensor) and p.requires_grad and p.is_leaf
    assert p.dtype == np.float32
    assert nn.Parameter(np.zeros(2)).dtype == np.float64  # arrays keep their dtype
    assert "Parameter containing" in repr(p)


def test_assigning_a_plain_tensor_to_a_parameter_name_is_refused():
    layer = nn.Linear(2, 2)
    with pytest.raises(TypeError, match="cannot assign a Tensor to parameter 'weight'"):
        layer.weight = sl.tensor(np.zeros((2, 2)))
    layer.bias = None  # dropping a parameter is allowed
    assert [name for name, _ in layer.named_parameters()] == ["weight"]


def test_forgetting_super_init_is_explained():
    class Broken(nn.Module):
        def __init__(self):
            self.layer = nn.Linear(2, 2)

    with pytest.raises(AttributeError, match=r"call super\(\).__init__\(\)"):
        Broken()


def test_reassigning_and_deleting_attributes_updates_the_registry():
    model = Block()
    model.layers = None
    del model.scale
    assert [name for name, _ in model.named_parameters()] == ["embed.weight"]


def test_persistent_buffers_are_saved_and_non_persistent_ones_are_not():
    class WithBuffers(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("running", np.zeros(3))
            self.register_buffer("table", np.ones(2), persistent=False)

    module = WithBuffers()
    assert list(module.state_dict()) == ["running"]
    module.load_state_dict({"running": np.arange(3.0)})
    np.testing.assert_array_equal(module.running, [0.0, 1.0, 2.0])


def test_repr_shows_the_tree_and_settings():
    text = repr(nn.Sequential(nn.Linear(2, 3), nn.Dropout(0.1)))
    assert text == ("Sequential(\n  (0): Linear(in_features=2, out_features=3, bias=True)\n"
                    "  (1): Dropout(p=0.1)\n)")


def test_sequential_applies_in_order_and_slices():
    sl.manual_seed(0)
    first, second = nn.Linear(3, 4), nn.Linear(4, 2)
    model = nn.Sequential(first, second)
    x = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    expected = (x @ first.weight.data.T + first.bias.data) @ second.weight.data.T \
        + second.bias.data
    np.testing.assert_allclose(model(sl.tensor(x)).numpy(), expected, rtol=1e-5, atol=1e-6)
    assert isinstance(model[:1], nn.Sequential) and model[:1][0] is first
    assert len(model) == 2 and list(model) == [first, second]


def test_module_list_and_dict_register_their_children():
    layers = nn.ModuleList([nn.Linear(2, 2)]).append(nn.Linear(2, 3))
    assert [name for name, _ in layers.named_parameters()] == [
        "0.weight", "0.bias", "1.weight", "1.bias"]
    assert layers[-1].out_features == 3 and isinstance(layers[1:], nn.ModuleList)
    with pytest.raises(IndexError, match="index 5 is out of range for 2 modules"):
        layers[5]
    with pytest.raises(TypeError, match=r"ModuleList.append: module=3 \(an int\); expected "
                                        r"an nn.Module"):
        layers.append(3)
    blocks = nn.ModuleDict({"wte": nn.Embedding(3, 2), "ln_f": nn.LayerNorm(2)})
    assert list(blocks) == ["wte", "ln_f"] and "wte" in blocks
    assert [name for name, _ in blocks.named_parameters()] == [
        "wte.weight", "ln_f.weight", "ln_f.bias"]
    with pytest.raises(KeyError, match="has no module 'wpe'"):
        blocks["wpe"]
    with pytest.raises(KeyError, match="the key 'keys' would hide the attribute"):
        blocks["keys"] = nn.Linear(2, 2)


def test_manual_seed_makes_initialization_reproducible():
    sl.manual_seed(3)
    a = nn.Linear(4, 4).weight.numpy()
    sl.manual_seed(3)
    np.testing.assert_array_equal(nn.Linear(4, 4).weight.numpy(), a)
