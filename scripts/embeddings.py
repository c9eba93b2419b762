"""Export a language model's input embedding matrix with its vocabulary (for t-SNE plots).

    python scripts/embeddings.py ckpt_path=.../best.ckpt out=embeddings.npz top=1000 \
        words='[king,queen,man,woman,monday,friday,dollar,yen]'

Writes ``out`` (npz) with ``vectors`` (V, emsize) float32, ``vocab`` (V,) words in training-frequency order
(index 0 is the most frequent), ``top`` (how many of the first rows are the frequent-word set) and
``chosen`` (indices of the requested ``words`` that the vocabulary has). ``tsv=true`` also writes
``<out>.vectors.tsv``/``<out>.metadata.tsv`` for the TensorBoard projector.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from nnlab.models.lm import LanguageModel
from nnlab.utils.errors import ConfigError, NnlabError

DEFAULTS = {"ckpt_path": None, "out": "embeddings.npz", "top": 1000, "words": [], "tsv": False}


def main(argv: list[str]) -> Path:
    cfg = OmegaConf.merge(DEFAULTS, OmegaConf.from_dotlist(argv))
    if not cfg.ckpt_path:
        raise ConfigError("give ckpt_path=PATH (a checkpoints/best.ckpt of a model=lm run)")
    model = LanguageModel.from_checkpoint(cfg.ckpt_path)
    vectors = model.net.encoder.weight.detach().float().cpu().numpy()
    vocab = np.array(model.vocab)
    stoi = {w: i for i, w in enumerate(model.vocab)}
    wanted = [str(w) for w in cfg.words]
    missing = [w for w in wanted if w not in stoi]
    if missing:
        print(f"not in the vocabulary, skipped: {' '.join(missing)}", file=sys.stderr)
    chosen = np.array([stoi[w] for w in wanted if w in stoi], dtype=np.int64)
    top = min(int(cfg.top), len(vocab))
    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, vectors=vectors, vocab=vocab, top=np.int64(top), chosen=chosen)
    if cfg.tsv:
        stem = out.with_suffix("")
        np.savetxt(f"{stem}.vectors.tsv", vectors, delimiter="\t", fmt="%.6g")
        Path(f"{stem}.metadata.tsv").write_text("\n".join(model.vocab) + "\n", encoding="utf-8")
    print(f"wrote {out}: {vectors.shape[0]} words x {vectors.shape[1]} dims; top {top}; {len(chosen)} chosen")
    return out


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except NnlabError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
