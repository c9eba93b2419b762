"""``nnlab embeddings ckpt_path=PATH out=embeddings.npz``: a language model's input embeddings and vocabulary.

Writes ``out`` (npz) with ``vectors`` (V, emsize) float32, ``vocab`` (V,) words in training-frequency order
(index 0 is the most frequent), ``top`` (how many of the first rows are the frequent-word set) and
``chosen`` (indices of the requested ``words`` that the vocabulary has). ``tsv=true`` also writes
``<out>.vectors.tsv``/``<out>.metadata.tsv`` for the TensorBoard projector.
"""

from __future__ import annotations

import sys
from pathlib import Path

from nnlab.cli.args import REQUIRED, Command, Key, at_least, existing_file

COMMAND = Command(
    "embeddings",
    "export a language model's word embeddings with its vocabulary (npz; tsv for the TensorBoard projector)",
    [
        Key("ckpt_path", REQUIRED, "a checkpoints/best.ckpt of a model=lm run", Path, check=existing_file),
        Key("out", Path("embeddings.npz"), "the npz file to write", Path),
        Key("top", 1000, "how many of the most frequent words form the frequent set", int, check=at_least(1)),
        Key("words", [], "words to mark as chosen, e.g. [king,queen]", list),
        Key("tsv", False, "also write <out>.vectors.tsv and <out>.metadata.tsv", bool),
    ],
    examples=["nnlab embeddings ckpt_path=<run>/checkpoints/best.ckpt top=500 words=[king,queen,money]"],
)


def run(args) -> Path:
    import numpy as np

    from nnlab.models.lm import LanguageModel

    model = LanguageModel.from_checkpoint(args.ckpt_path)
    vectors = model.net.encoder.weight.detach().float().cpu().numpy()
    vocab = np.array(model.vocab)
    stoi = {w: i for i, w in enumerate(model.vocab)}
    missing = [w for w in args.words if w not in stoi]
    if missing:
        print(f"not in the vocabulary, skipped: {' '.join(missing)}", file=sys.stderr)
    chosen = np.array([stoi[w] for w in args.words if w in stoi], dtype=np.int64)
    top = min(args.top, len(vocab))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, vectors=vectors, vocab=vocab, top=np.int64(top), chosen=chosen)
    if args.tsv:
        stem = out.with_suffix("")
        np.savetxt(f"{stem}.vectors.tsv", vectors, delimiter="\t", fmt="%.6g")
        Path(f"{stem}.metadata.tsv").write_text("\n".join(model.vocab) + "\n", encoding="utf-8")
    print(f"wrote {out}: {vectors.shape[0]} words x {vectors.shape[1]} dims; top {top}; {len(chosen)} chosen")
    return out
