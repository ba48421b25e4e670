"""Similarity by MOSS's winnowing: the algorithm against the worked example of Schleimer,
Wilkerson and Aiken (2003) by its definition, then on submissions: a copy with every name
and comment changed is flagged, two independent correct solutions are not, and the starter
code everyone got is no evidence."""

import re

from test_grader_coursework import RMSNORM_RIGHT

from scratchlm.exercises.__main__ import statement
from scratchlm.exercises.similarity import (
    MIN_FINGERPRINTS,
    K,
    W,
    fingerprints,
    kgram_hashes,
    similar_pairs,
    tokens,
    winnow,
)

#: the paper's example: "A do run run run, a do run run" without spaces and punctuation,
#: its 5-grams, and the hash values the paper assigns them
TEXT = "adorunrunrunadorunrun"
HASHES = [77, 74, 42, 17, 98, 50, 17, 98, 8, 88, 67, 39, 77, 74, 42, 17, 98]

#: a copy of RMSNORM_RIGHT: every identifier renamed, comments and a docstring added,
#: blank lines moved
RENAMED = """\
import numpy as np
import scratchlm as sl


class RMSNorm(sl.Function):
    \"\"\"My own RMSNorm, written from scratch (honest).\"\"\"

    def __init__(self, epsilon=1e-6):
        self.epsilon = epsilon  # stability

    def forward(self, inp, gain):
        # the inverse root mean square
        self.inv = 1 / np.sqrt(np.mean(inp ** 2, axis=-1, keepdims=True) + self.epsilon)
        self.xhat, self.gain = inp * self.inv, gain
        return self.xhat * gain
    def backward(self, grad):
        dxhat = grad * self.gain
        dinp = self.inv * dxhat - self.xhat * self.inv * np.mean(dxhat * self.xhat, axis=-1,
                                                                keepdims=True)

        return dinp, np.sum((grad * self.xhat).reshape(-1, grad.shape[-1]), axis=0)
"""
#: a correct RMSNorm derived another way (sums and a division, a rsqrt by a power)
INDEPENDENT = """\
import numpy as np
import scratchlm as sl


class RMSNorm(sl.Function):
    def __init__(self, eps=1e-6):
        self.eps = eps

    def forward(self, x, weight):
        ms = (x * x).mean(-1, keepdims=True)
        self.rstd = (ms + self.eps) ** -0.5
        self.x, self.weight = x, weight
        return x * self.rstd * weight

    def backward(self, g):
        xhat = self.x * self.rstd
        gx = g * self.weight
        D = self.x.shape[-1]
        dx = self.rstd * (gx - xhat * (gx * xhat).sum(-1, keepdims=True) / D)
        dw = (g * xhat).sum(axis=tuple(range(g.ndim - 1)))
        return dx, dw
"""


def test_winnowing_selects_the_papers_fingerprints():
    """Windows of 4 over the paper's hashes; the minimum of each, the rightmost on a tie
    (the window 17 98 50 17 picks position 6), each selection once — worked by hand:
    windows 1-3 pick 17@3, 4-5 17@6, 6-9 8@8, 10-12 39@11, 13-14 17@15."""
    assert winnow(HASHES, 4) == [(17, 3), (17, 6), (8, 8), (39, 11), (17, 15)]
    assert winnow([5, 1, 7], 4) == [(1, 1)]  # shorter than a window: its minimum
    assert winnow([], 4) == []


def test_kgrams_are_those_of_the_paper():
    grams = [TEXT[i:i + 5] for i in range(len(TEXT) - 4)]
    assert len(grams) == len(HASHES) == 17
    assert grams[:4] == ["adoru", "dorun", "orunr", "runru"]
    hashes = kgram_hashes(list(TEXT), 5)
    assert len(hashes) == 17
    # equal 5-grams hash equally, as the paper's hashes do (adoru at 0 and 12, ...)
    same = {(i, j) for i in range(17) for j in range(17) if grams[i] == grams[j]}
    assert same == {(i, j) for i in range(17) for j in range(17) if HASHES[i] == HASHES[j]}


def test_tokens_forget_names_comments_and_literals():
    assert tokens("total = 3 * x  # three\n") == ["V", "=", "N", "*", "V", ";"]
    assert tokens("def f(a):\n    return 'x'\n") == ["def", "V", "(", "V", ")", ":", ";",
                                                       "{", "return", "S", ";", "}"]
    assert tokens(RMSNORM_RIGHT) == tokens(RMSNORM_RIGHT.replace("self.n", "self.normed")
                                           .replace("dn", "d_normed"))


def test_a_renamed_copy_is_flagged_independent_solutions_are_not():
    pairs = similar_pairs({"alice": RMSNORM_RIGHT, "bob": RENAMED, "carol": INDEPENDENT},
                          "rmsnorm", statement("rmsnorm"))
    found = {(pair.first, pair.second): pair for pair in pairs}
    assert found["alice", "bob"].flagged and found["alice", "bob"].score == 1.0
    assert not found["alice", "carol"].flagged and found["alice", "carol"].score < 0.5
    assert not found["bob", "carol"].flagged
    assert pairs[0] == found["alice", "bob"]  # most similar first


def test_the_starter_code_and_tiny_answers_are_no_evidence():
    starter = statement("softmax")
    one_line = "        return self.y * (g - (g * self.y).sum(axis=self.axis, keepdims=True))"
    a = re.sub(r"        raise NotImplementedError\(.*?\)\n", one_line + "\n", starter,
               flags=re.S)
    assert one_line in a and "NotImplementedError" not in a
    pairs = similar_pairs({"a": a, "b": a}, "softmax", starter)
    assert len(fingerprints(a) - fingerprints(starter)) < MIN_FINGERPRINTS
    assert not pairs[0].flagged  # identical, but one line beyond the starter code
    # without the starter removed, everyone's skeleton would look alike
    assert similar_pairs({"a": starter, "b": starter}, "softmax")[0].flagged
    assert (K, W) == (5, 4)
