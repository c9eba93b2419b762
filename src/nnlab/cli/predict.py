"""``nnlab predict ckpt_path=PATH "sentence" ...``: classify sentences with a TextClassifier checkpoint.

Prints one line per sentence: the predicted label, then every class's probability, then the sentence. With no
sentence on the command line, reads one per line from stdin. The checkpoint carries its vocabulary and
tokenizer settings, so no data files are needed.
"""

from __future__ import annotations

import sys
from pathlib import Path

from nnlab.cli.args import REQUIRED, Command, Key, at_least, existing_file
from nnlab.utils.errors import ConfigError

COMMAND = Command(
    "predict",
    "classify sentences with a text checkpoint (sentences as arguments, or one per line on stdin)",
    [
        Key("ckpt_path", REQUIRED, "a checkpoints/best.ckpt of a text run (model=cnn|rnn|fasttext)", Path,
            check=existing_file),
        Key("batch_size", 256, "sentences per forward pass", int, check=at_least(1)),
    ],
    positional="sentence",
    examples=['nnlab predict ckpt_path=logs/train/runs/<run>/checkpoints/best.ckpt "a gripping film" "dull"'],
)  # fmt: skip


def run(args) -> list[str]:
    from nnlab.models.text import TextClassifier

    model = TextClassifier.load(args.ckpt_path)  # before reading stdin: a bad checkpoint fails at once
    texts = args.sentence or [line.rstrip("\n") for line in sys.stdin if line.strip()]
    if not texts:
        raise ConfigError('no sentences: give them as arguments ("a gripping film") or one per line on stdin')
    probs = model.predict(texts, batch_size=args.batch_size)
    names = model.class_names
    rows = []
    for text, p in zip(texts, probs.tolist()):
        best = max(range(len(p)), key=p.__getitem__)
        dist = " ".join(f"{n.replace(' ', '_')}={q:.3f}" for n, q in zip(names, p))
        rows.append(f"{names[best].replace(' ', '_')}\t{dist}\t{text}")
    print("\n".join(rows))
    return rows
