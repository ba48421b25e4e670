"""Bad input to a functional op fails early with an error naming the op, the shapes or
values involved and what was expected."""

import numpy as np
import pytest

import scratchlm as sl
import scratchlm.functional as F


def t(*shape, dtype=np.float64):
    return sl.tensor(np.zeros(shape, dtype=dtype))


BAD_CALLS = {
    "linear_weight_not_2d": (lambda: F.linear(t(3, 4), t(4)), ValueError,
                             r"linear: weight must be 2-D .* got shape \(4,\)"),
    "linear_features_mismatch": (lambda: F.linear(t(3, 4), t(5, 3)), ValueError,
                                 r"linear: input of shape \(3, 4\) does not fit weight of shape "
                                 r"\(5, 3\); expected .* in_features=3"),
    "linear_bias_shape": (lambda: F.linear(t(3, 4), t(5, 4), t(4)), ValueError,
                          r"linear: bias of shape \(4,\) .* expected \(5,\)"),
    "gelu_approximate": (lambda: F.gelu(t(3), approximate="erf"), ValueError,
                         r"gelu: approximate='erf'; expected one of 'tanh', 'none'"),
    "softmax_axis": (lambda: F.softmax(t(3, 4), axis=2), ValueError,
                     r"softmax: axis 2 is out of range for an input of shape \(3, 4\)"),
    "log_softmax_axis": (lambda: F.log_softmax(t(3, 4), axis=-3), ValueError,
                         r"log_softmax: axis -3 is out of range .* expected -2 ≤ axis < 2"),
    "layer_norm_weight_shape": (lambda: F.layer_norm(t(2, 3, 4), t(3), t(4)), ValueError,
                                r"layer_norm: weight of shape \(3,\) does not fit input of "
                                r"shape \(2, 3, 4\); expected \(4,\)"),
    "layer_norm_bias_shape": (lambda: F.layer_norm(t(2, 4), t(4), t(1, 4)), ValueError,
                              r"layer_norm: bias of shape \(1, 4\) .* expected \(4,\)"),
    "layer_norm_0d": (lambda: F.layer_norm(t(), None, None), ValueError,
                      r"layer_norm: input must have at least one axis"),
    "dropout_p_negative": (lambda: F.dropout(t(3), -0.1), ValueError,
                           r"dropout: p=-0.1; expected a finite number in \[0, 1\] "
                           r"\(a probability\)"),
    "dropout_p_above_one": (lambda: F.dropout(t(3), 1.5), ValueError,
                            r"dropout: p=1.5; expected a finite number in \[0, 1\]"),
    "embedding_id_too_large": (lambda: F.embedding(np.array([[0, 7, 2]]), t(5, 3)), IndexError,
                               r"embedding: id 7 is out of range for a table of 5 rows "
                               r"\(weight of shape \(5, 3\)\); expected 0 ≤ id < 5"),
    "embedding_negative_id": (lambda: F.embedding(np.array([-1, 2]), t(5, 3)), IndexError,
                              r"embedding: id -1 is out of range for a table of 5 rows"),
    "embedding_float_ids": (lambda: F.embedding(np.array([0.0, 1.0]), t(5, 3)), TypeError,
                            r"embedding: ids must hold integers, got dtype float64"),
    "embedding_weight_not_2d": (lambda: F.embedding(np.array([0]), t(5)), ValueError,
                                r"embedding: weight must be 2-D .* got shape \(5,\)"),
    "cross_entropy_target_too_large": (
        lambda: F.cross_entropy(t(2, 3, 4), np.array([[0, 4, 1], [1, 1, 1]])), IndexError,
        r"cross_entropy: target 4 is out of range for 4 classes \(logits of shape "
        r"\(2, 3, 4\)\); expected 0 ≤ target < 4 or ignore_index=-100"),
    "cross_entropy_negative_target": (
        lambda: F.cross_entropy(t(2, 4), np.array([-1, 0])), IndexError,
        r"cross_entropy: target -1 is out of range for 4 classes"),
    "cross_entropy_target_shape": (
        lambda: F.cross_entropy(t(2, 3, 4), np.array([0, 1])), ValueError,
        r"cross_entropy: target of shape \(2,\) does not fit logits of shape \(2, 3, 4\); "
        r"expected target shape \(2, 3\)"),
    "cross_entropy_float_target": (
        lambda: F.cross_entropy(t(2, 4), np.array([0.0, 1.0])), TypeError,
        r"cross_entropy: target must hold integers, got dtype float64"),
    "cross_entropy_reduction": (
        lambda: F.cross_entropy(t(2, 4), np.array([0, 1]), reduction="avg"), ValueError,
        r"cross_entropy: reduction='avg'; expected one of 'mean', 'sum', 'none'"),
    "cross_entropy_label_smoothing": (
        lambda: F.cross_entropy(t(2, 4), np.array([0, 1]), label_smoothing=1.5), ValueError,
        r"cross_entropy: label_smoothing=1.5; expected a finite number in \[0, 1\]"),
    "cross_entropy_0d_logits": (
        lambda: F.cross_entropy(t(), np.array(0)), ValueError,
        r"cross_entropy: logits must have a class axis"),
    "bce_shape": (lambda: F.binary_cross_entropy_with_logits(t(3, 4), t(4)), ValueError,
                  r"binary_cross_entropy_with_logits: logits has shape \(3, 4\) but target "
                  r"has shape \(4,\); expected equal shapes"),
    "bce_reduction": (lambda: F.binary_cross_entropy_with_logits(t(3), t(3), reduction=None),
                      ValueError, r"binary_cross_entropy_with_logits: reduction=None"),
    "mse_shape": (lambda: F.mse_loss(t(3, 4), t(3, 1)), ValueError,
                  r"mse_loss: input has shape \(3, 4\) but target has shape \(3, 1\)"),
    "attention_mask_shape": (
        lambda: F.scaled_dot_product_attention(t(2, 3, 4), t(2, 5, 4), t(2, 5, 4),
                                               np.ones((3, 4), dtype=bool)), ValueError,
        r"scaled_dot_product_attention: attn_mask of shape \(3, 4\) cannot be broadcast to "
        r"the attention scores' shape \(…, Tq, Tk\) = \(2, 3, 5\)"),
    "attention_mask_too_many_axes": (
        lambda: F.scaled_dot_product_attention(t(2, 3, 4), t(2, 5, 4), t(2, 5, 4),
                                               np.ones((2, 2, 3, 5), dtype=bool)), ValueError,
        r"attn_mask of shape \(2, 2, 3, 5\) cannot be broadcast"),
    "attention_mask_dtype": (
        lambda: F.scaled_dot_product_attention(t(3, 4), t(3, 4), t(3, 4),
                                               np.ones((3, 3), dtype=np.int64)), TypeError,
        r"scaled_dot_product_attention: attn_mask must be boolean .* got dtype int64"),
    "attention_head_size_mismatch": (
        lambda: F.scaled_dot_product_attention(t(2, 3, 4), t(2, 5, 3), t(2, 5, 4)), ValueError,
        r"scaled_dot_product_attention: shapes q \(2, 3, 4\), k \(2, 5, 3\), v \(2, 5, 4\) do "
        r"not fit; expected q \(…, Tq, d\), k \(…, Tk, d\) and v \(…, Tk, dv\)"),
    "attention_key_count_mismatch": (
        lambda: F.scaled_dot_product_attention(t(3, 4), t(5, 4), t(4, 4)), ValueError,
        r"shapes q \(3, 4\), k \(5, 4\), v \(4, 4\) do not fit"),
    "attention_batch_mismatch": (
        lambda: F.scaled_dot_product_attention(t(2, 3, 4), t(3, 3, 4), t(3, 3, 4)), ValueError,
        r"leading \(batch\) axes of q \(2, 3, 4\) and k \(3, 3, 4\) cannot be broadcast"),
    "attention_1d": (
        lambda: F.scaled_dot_product_attention(t(4), t(4), t(4)), ValueError,
        r"q, k and v need at least 2 axes"),
    "attention_dropout_p": (
        lambda: F.scaled_dot_product_attention(t(3, 4), t(3, 4), t(3, 4), dropout_p=2.0),
        ValueError,
        r"scaled_dot_product_attention: dropout_p=2.0; expected a finite number in \[0, 1\]"),
}


@pytest.mark.parametrize("name", BAD_CALLS)
def test_bad_input_raises_a_clear_error(name):
    call, error, message = BAD_CALLS[name]
    with pytest.raises(error, match=message):
        call()
