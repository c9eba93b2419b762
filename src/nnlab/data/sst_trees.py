"""Stanford Sentiment Treebank trees (``trainDevTestTrees_PTB``): the parser and the labelled phrases in them.

The published SST protocol (Socher et al. 2013, Kim 2014, Tai et al. 2015) trains on every labelled phrase of
the training trees; this module turns ``sst/trees/train.txt`` into those phrases, counting malformed trees in
the file's ``ReadReport`` like any other bad line.
"""

from __future__ import annotations

from collections.abc import Sequence

from nnlab.data.readers import ReadReport


def parse_sst_tree(line: str) -> list[tuple[int, list[str]]]:
    """Every node of one SST tree in Stanford's PTB format, ``(3 (2 It) (4 (2 's) (3 good)))``, as
    ``(label, tokens)``, root first (so ``[0]`` is the whole sentence). Raises ValueError when malformed."""
    tokens = line.replace("(", " ( ").replace(")", " ) ").split()
    nodes: list[tuple[int, list[str]]] = []

    def node(i: int) -> tuple[list[str], int]:
        if i + 1 >= len(tokens) or tokens[i] != "(":
            raise ValueError(f"expected '(' at token {i}")
        try:
            label = int(tokens[i + 1])
        except ValueError:
            raise ValueError(f"label {tokens[i + 1]!r} at token {i + 1} is not an integer") from None
        slot = len(nodes)
        nodes.append((label, []))
        i += 2
        words: list[str] = []
        while i < len(tokens) and tokens[i] != ")":
            if tokens[i] == "(":
                sub, i = node(i)
                words += sub
            else:
                words.append(tokens[i])
                i += 1
        if i >= len(tokens):
            raise ValueError("unbalanced parentheses")
        nodes[slot] = (label, words)
        return words, i + 1

    _, end = node(0)
    if end != len(tokens):
        raise ValueError(f"text after the tree's last ')' (token {end})")
    return nodes


def sst_phrases(
    trees: Sequence[tuple[int, str]], binary: bool, report: ReadReport, lowercase: bool = False, grades: bool = False
) -> list[tuple[str, str]]:
    """The distinct phrases of SST trees ``(lineno, tree)`` with their labels: 0-4 as they are, or for
    SST-2 0/1 -> "0", 3/4 -> "1" with neutral (2) phrases left out (Socher et al. 2013; Kim 2014).
    ``grades`` (with ``binary``): the same phrases, keeping their labels 0, 1, 3, 4 (SST-2's
    ``data.phrase_labels=fine``). With ``lowercase`` phrases that differ only in case count once (the model
    would see them as one). ``report.examples`` counts the trees read."""
    out, seen = [], set()
    for lineno, line in trees:
        if not line.strip():
            report.blank += 1
            continue
        try:
            nodes = parse_sst_tree(line)
        except ValueError as e:
            report.add("malformed", lineno, f"not an SST tree ({e})")
            continue
        for label, words in nodes:
            if binary:
                if label == 2:
                    continue
                label = label if grades else int(label > 2)
            text = " ".join(words)
            key = text.lower() if lowercase else text
            if key not in seen:
                seen.add(key)
                out.append((str(label), text))
        report.examples += 1
    return out
