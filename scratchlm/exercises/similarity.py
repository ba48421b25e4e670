"""Which submissions of one exercise look copied: MOSS's winnowing.

The method is that of MOSS (Schleimer, Wilkerson and Aiken, "Winnowing: local algorithms
for document fingerprinting", SIGMOD 2003):

1. **Tokens.** Each file is read with Python's own :mod:`tokenize`; comments and blank
   lines are dropped, every identifier that is not a keyword becomes ``V``, every string
   ``S`` and every number ``N``, so renaming variables, rewording comments and docstrings
   or changing constants change nothing. Operators, keywords and the indentation
   structure are kept.
2. **k-grams.** Every run of ``k`` consecutive tokens is hashed (a stable 64-bit hash, the
   same in every process).
3. **Winnowing.** In every window of ``w`` consecutive hashes the minimum is selected (the
   rightmost one where several are equal); the selected (hash, position) pairs are the
   file's fingerprints. Any match of at least ``w + k - 1`` tokens is then sure to share a
   fingerprint, and no match shorter than ``k`` is ever seen.
4. **The starter code is not evidence.** Fingerprints of the exercise's statement (what
   ``show NAME`` printed for everyone) are removed, as MOSS removes a base file.

Two students' files of one exercise score ``shared / min(|A|, |B|)``: the share of the
smaller fingerprint set found in the other. A pair is *similar* when that is at least
``THRESHOLD`` and both have at least ``MIN_FINGERPRINTS`` fingerprints of their own. An
answer of one or two lines (softmax's backward is one formula) cannot be told from a copy
this way and is never flagged: similarity is a reason to look, never a verdict.
"""

import hashlib
import io
import keyword
import tokenize
from dataclasses import dataclass
from itertools import combinations

#: tokens per k-gram (the noise threshold: a shorter match is never seen)
K = 5
#: hashes per window (a match of W + K - 1 tokens or more is always seen)
W = 4
#: a pair sharing at least this share of the smaller file's fingerprints is flagged
THRESHOLD = 0.7
#: a file with fewer fingerprints than this beyond the starter code (about 40 tokens, three
#: or four lines) is never flagged: softmax's one-line backward has 12
MIN_FINGERPRINTS = 16

#: token types dropped: they carry no structure a copy has to keep
DROPPED = {tokenize.COMMENT, tokenize.NL, tokenize.ENCODING, tokenize.ENDMARKER}


@dataclass(frozen=True)
class Pair:
    exercise: str
    first: str
    second: str
    #: fingerprints both share / fingerprints of the one that has fewer
    score: float
    shared: int
    flagged: bool


def tokens(source):
    """The normalised token stream of Python ``source`` (a list of strings); a file that
    does not tokenise gives the tokens read up to the error."""
    out = []
    reader = io.StringIO(source).readline
    try:
        for token in tokenize.generate_tokens(reader):
            if token.type in DROPPED:
                continue
            if token.type == tokenize.NAME:
                out.append(token.string if keyword.iskeyword(token.string) else "V")
            elif token.type == tokenize.STRING:
                out.append("S")
            elif token.type == tokenize.NUMBER:
                out.append("N")
            elif token.type == tokenize.NEWLINE:
                out.append(";")
            elif token.type == tokenize.INDENT:
                out.append("{")
            elif token.type == tokenize.DEDENT:
                out.append("}")
            else:
                out.append(token.string)
    except (tokenize.TokenError, SyntaxError):
        pass
    return out


def kgram_hashes(items, k=K):
    """The stable 64-bit hash of every run of ``k`` consecutive items (strings)."""
    return [int.from_bytes(hashlib.blake2b("\x1f".join(items[i:i + k]).encode(),
                                           digest_size=8).digest(), "big")
            for i in range(len(items) - k + 1)]


def winnow(hashes, w=W):
    """The fingerprints of a hash sequence: (hash, position) of the minimum of every window
    of ``w`` consecutive hashes, the rightmost minimum on a tie, each selection kept once.
    A sequence shorter than one window gives its minimum."""
    if not hashes:
        return []
    if len(hashes) < w:
        w = len(hashes)
    chosen = []
    for start in range(len(hashes) - w + 1):
        window = hashes[start:start + w]
        smallest = min(window)
        position = start + max(i for i, value in enumerate(window) if value == smallest)
        if not chosen or chosen[-1][1] != position:
            chosen.append((smallest, position))
    return chosen


def fingerprints(source, k=K, w=W):
    """The set of winnowed k-gram hashes of Python ``source``."""
    return {value for value, _ in winnow(kgram_hashes(tokens(source), k), w)}


def compare(mine, theirs):
    """(score, shared) of two fingerprint sets: the share of the smaller set in the other."""
    shared = len(mine & theirs)
    fewer = min(len(mine), len(theirs))
    return (shared / fewer if fewer else 0.0), shared


def similar_pairs(sources, exercise, base="", threshold=THRESHOLD):
    """Every pair of ``sources`` ({student: source} of one exercise) with its score, most
    similar first; ``base`` is the starter code, whose fingerprints count for nothing."""
    starter = fingerprints(base) if base else set()
    prints = {student: fingerprints(source) - starter
              for student, source in sorted(sources.items())}
    pairs = []
    for first, second in combinations(sorted(prints), 2):
        score, shared = compare(prints[first], prints[second])
        enough = min(len(prints[first]), len(prints[second])) >= MIN_FINGERPRINTS
        pairs.append(Pair(exercise, first, second, round(score, 3), shared,
                          enough and score >= threshold))
    return sorted(pairs, key=lambda pair: (-pair.score, pair.first, pair.second))
