"""Learning BPE merges from word counts, fast enough for megabytes of text in pure Python.

The textbook loop — count every adjacent pair in the corpus, merge the most frequent, repeat —
recounts the whole corpus once per merge. Here the corpus is reduced to its distinct words with
their frequencies, and three structures are kept up to date instead:

* ``pair_counts``: how often each adjacent pair occurs, weighted by word frequency;
* ``words_with_pair``: for each pair, the indices of the distinct words that may contain it
  (a word is added when it gains the pair and left in place when it loses it);
* a max-heap of ``(-count, pair)``, so the most frequent pair is found without a scan.

A merge of ``(a, b)`` into ``z`` only visits the words that contain ``a b``, and in each only
the neighbourhood of every merge site changes: ``x a b y`` loses the pairs ``x a``, ``a b`` and
``b y`` and gains ``x z`` and ``z y``. Counts of old pairs can only fall, so stale heap entries
are fixed lazily when they surface; the pairs that contain ``z`` are pushed after the merge.
"""

import heapq
from collections import Counter
from collections.abc import Mapping

Pair = tuple[int, int]


def merge_pair(symbols: list[int], pair: Pair, new_id: int) -> list[int]:
    """Replace each occurrence of ``pair`` in ``symbols``, scanning left to right, by ``new_id``."""
    first, second = pair
    merged: list[int] = []
    start = 0
    try:
        while True:
            i = symbols.index(first, start)
            if i + 1 < len(symbols) and symbols[i + 1] == second:
                merged += symbols[start:i]
                merged.append(new_id)
                start = i + 2
            else:
                merged += symbols[start:i + 1]
                start = i + 1
    except ValueError:  # no further occurrence of `first`
        merged += symbols[start:]
    return merged


def pair_count_changes(merged: list[int], pair: Pair, new_id: int) -> Counter[Pair]:
    """How each pair's count in a word changes when ``pair`` became ``new_id`` (as in ``merged``).

    Around a merge site ``x a b y -> x z y`` the word loses ``x a``, ``a b`` and ``b y`` and
    gains ``x z`` and ``z y``. Where two sites touch (``a b a b -> z z``) the pair between them
    is counted once, by the left site.
    """
    first, second = pair
    changes: Counter[Pair] = Counter()
    for j in _positions(merged, new_id):
        changes[pair] -= 1
        if j > 0 and merged[j - 1] != new_id:
            changes[(merged[j - 1], first)] -= 1
            changes[(merged[j - 1], new_id)] += 1
        if j + 1 < len(merged):
            old_right = first if merged[j + 1] == new_id else merged[j + 1]
            changes[(second, old_right)] -= 1
            changes[(new_id, merged[j + 1])] += 1
    return changes


def _positions(symbols: list[int], value: int):
    """Indices where ``value`` occurs in ``symbols`` (found by list.index, which runs in C)."""
    position = -1
    try:
        while True:
            position = symbols.index(value, position + 1)
            yield position
    except ValueError:
        return


def learn_merges(word_counts: Mapping[bytes, int], num_merges: int) -> list[Pair]:
    """Learn up to ``num_merges`` merges from distinct words (as UTF-8 bytes) and their counts.

    Tokens 0..255 are the bytes; merge ``k`` creates token ``256 + k``. Each step merges the most
    frequent adjacent pair; ties go to the pair with the smaller ids. Stops early when no word
    has two tokens left. Returns the merged pairs in order.
    """
    words = [list(word) for word in word_counts]
    frequencies = list(word_counts.values())
    pair_counts: Counter[Pair] = Counter()
    words_with_pair: dict[Pair, set[int]] = {}
    for index, (symbols, frequency) in enumerate(zip(words, frequencies)):
        for pair in zip(symbols, symbols[1:]):
            pair_counts[pair] += frequency
            words_with_pair.setdefault(pair, set()).add(index)

    heap = [(-count, pair) for pair, count in pair_counts.items()]
    heapq.heapify(heap)
    merges: list[Pair] = []
    while len(merges) < num_merges and heap:
        negative_count, pair = heapq.heappop(heap)
        count = pair_counts.get(pair, 0)
        if count <= 0:
            continue
        if -negative_count != count:  # stale entry: the pair has become rarer since its push
            heapq.heappush(heap, (-count, pair))
            continue
        new_id = 256 + len(merges)
        merges.append(pair)
        grown: set[Pair] = set()  # the pairs that contain new_id
        for index in sorted(words_with_pair.pop(pair)):
            merged = merge_pair(words[index], pair, new_id)
            if len(merged) == len(words[index]):  # the word lost this pair earlier
                continue
            words[index] = merged
            for changed_pair, change in pair_count_changes(merged, pair, new_id).items():
                pair_counts[changed_pair] += change * frequencies[index]
                if change > 0:
                    words_with_pair.setdefault(changed_pair, set()).add(index)
                    grown.add(changed_pair)
        for grown_pair in grown:
            heapq.heappush(heap, (-pair_counts[grown_pair], grown_pair))
    return merges
