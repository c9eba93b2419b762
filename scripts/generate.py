"""Sample text from a trained language model.

    python scripts/generate.py ckpt_path=logs/train/runs/<run>/checkpoints/best.ckpt \
        prompt="the company said" words=50 temperature=1.0 top_k=0 seed=0

temperature=0 is greedy decoding; top_k>0 samples among the k most likely words. Prompt words that the
vocabulary lacks become <unk> (reported on stderr). <eos> is printed as a line break.
"""

from __future__ import annotations

import sys

import torch
from omegaconf import OmegaConf

from nnlab.models.lm import LanguageModel
from nnlab.nn.rnnlm import generate
from nnlab.utils.errors import ConfigError, NnlabError

DEFAULTS = {"ckpt_path": None, "prompt": "the", "words": 50, "temperature": 1.0, "top_k": 0, "seed": 0}


def main(argv: list[str]) -> str:
    cfg = OmegaConf.merge(DEFAULTS, OmegaConf.from_dotlist(argv))
    if not cfg.ckpt_path:
        raise ConfigError("give ckpt_path=PATH (a checkpoints/best.ckpt of a model=lm run)")
    model = LanguageModel.from_checkpoint(cfg.ckpt_path)
    stoi = {w: i for i, w in enumerate(model.vocab)}
    words = str(cfg.prompt).split()
    unknown = [w for w in words if w not in stoi]
    if unknown:
        print(f"not in the vocabulary, read as <unk>: {' '.join(unknown)}", file=sys.stderr)
    prompt = torch.tensor([stoi.get(w, stoi["<unk>"]) for w in words] or [stoi["<eos>"]])
    g = torch.Generator().manual_seed(int(cfg.seed))
    ids = generate(model.net, prompt, int(cfg.words), float(cfg.temperature), int(cfg.top_k), generator=g)
    text = " ".join(words + [model.vocab[i] for i in ids])
    return text.replace(" <eos> ", "\n").replace(" <eos>", "\n")


if __name__ == "__main__":
    try:
        print(main(sys.argv[1:]))
    except NnlabError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
