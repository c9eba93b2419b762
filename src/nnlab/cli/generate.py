"""``nnlab generate ckpt_path=PATH prompt="the company said" words=50``: sample text from a language model.

temperature=0 is greedy decoding; top_k>0 samples among the k most likely words. Prompt words that the
vocabulary lacks become <unk> (reported on stderr). <eos> is printed as a line break.
"""

from __future__ import annotations

import sys
from pathlib import Path

from nnlab.cli.args import REQUIRED, Command, Key, at_least, existing_file

COMMAND = Command(
    "generate",
    "sample text from a language-model checkpoint",
    [
        Key("ckpt_path", REQUIRED, "a checkpoints/best.ckpt of a model=lm run", Path, check=existing_file),
        Key("prompt", "the", "words to start from"),
        Key("words", 50, "how many words to sample", int, check=at_least(1)),
        Key("temperature", 1.0, "softmax temperature; 0 is greedy", float, check=at_least(0)),
        Key("top_k", 0, "sample among the k most likely words; 0: all", int, check=at_least(0)),
        Key("seed", 0, "random seed", int, check=at_least(0)),
    ],
    examples=['nnlab generate ckpt_path=<run>/checkpoints/best.ckpt prompt="the company said" words=30'],
)


def run(args) -> str:
    import torch

    from nnlab.models.lm import LanguageModel
    from nnlab.nn.rnnlm import generate

    model = LanguageModel.from_checkpoint(args.ckpt_path)
    stoi = {w: i for i, w in enumerate(model.vocab)}
    words = str(args.prompt).split()
    unknown = [w for w in words if w not in stoi]
    if unknown:
        print(f"not in the vocabulary, read as <unk>: {' '.join(unknown)}", file=sys.stderr)
    prompt = torch.tensor([stoi.get(w, stoi["<unk>"]) for w in words] or [stoi["<eos>"]])
    g = torch.Generator().manual_seed(args.seed)
    ids = generate(model.net, prompt, args.words, args.temperature, args.top_k, generator=g)
    text = " ".join(words + [model.vocab[i] for i in ids]).replace(" <eos> ", "\n").replace(" <eos>", "\n")
    print(text)
    return text
