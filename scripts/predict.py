"""Classify sentences with a trained TextClassifier checkpoint.

    python scripts/predict.py ckpt_path=logs/.../checkpoints/best.ckpt "a gripping film" "dull and long"
    echo "one sentence per line" | python scripts/predict.py ckpt_path=...

Prints one line per sentence: the predicted label, then every class's probability, then the sentence.
The checkpoint carries its vocabulary and tokenizer settings, so no data files are needed.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def main(argv: list[str]) -> int:
    from nnlab.utils.errors import ConfigError, NnlabError

    try:
        opts = {a.split("=", 1)[0]: a.split("=", 1)[1] for a in argv if a.startswith(("ckpt_path=", "batch_size="))}
        texts = [a for a in argv if not a.startswith(("ckpt_path=", "batch_size="))]
        if "ckpt_path" not in opts:
            raise ConfigError('usage: predict.py ckpt_path=PATH "sentence" ... (or sentences on stdin)')
        if not texts:
            texts = [line.rstrip("\n") for line in sys.stdin if line.strip()]
        from nnlab.models.text import TextClassifier

        model = TextClassifier.load(opts["ckpt_path"])
        probs = model.predict(texts, batch_size=int(opts.get("batch_size", 256)))
    except NnlabError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    names = model.class_names
    for text, p in zip(texts, probs.tolist()):
        best = max(range(len(p)), key=p.__getitem__)
        dist = " ".join(f"{n.replace(' ', '_')}={q:.3f}" for n, q in zip(names, p))
        print(f"{names[best].replace(' ', '_')}\t{dist}\t{text}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
