"""``nnlab tsne``: what a model learned, as a t-SNE plot of a dataset's raw inputs or a checkpoint's features.

    nnlab tsne data=fashion_mnist                                   # raw inputs of an image dataset
    nnlab tsne ckpt_path=logs/train/runs/<run>/checkpoints/best.ckpt   # any family's checkpoint
    nnlab tsne ckpt_path=lm.ckpt top_words=300 words=[king,queen,man,woman] corpus=ptb.train.txt

What is embedded depends on the model's ``modality`` (the contract every nnlab LightningModule keeps):
  image   the penultimate features (the input of the model's last ``nn.Linear``) of test images, by class
  text    the sentence vectors (the same hook: what the classifier head sees) of test sentences, by class
  tokens  the language model's input word embeddings: the N most frequent words plus ``words``, annotated
A family plugs in with one function (``nnlab.tsne.features.register("<modality>")``) returning points, labels
or words; ``nnlab.inference`` loads the checkpoint and its test batches. This module only declares the keys.
The PNG is written to ``out`` (default ``tsne_<name>.png``); when a W&B run is active (or ``wandb=true``)
it is also logged as the image ``tsne/<name>``.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from nnlab.cli.args import Command, Key, at_least, existing_file, positive
from nnlab.utils.errors import ConfigError

IMAGE_DATASETS = ("digits", "fashion_mnist", "mnist", "cifar10")

COMMAND = Command(
    "tsne",
    "t-SNE plot of a dataset's raw inputs (data=...) or of a checkpoint's learned features (ckpt_path=...)",
    [
        Key("data", None, "raw inputs of an image dataset", choices=IMAGE_DATASETS),
        Key("ckpt_path", None, "an nnlab checkpoint (any family)", Path, check=existing_file),
        Key("n", 3000, "points to embed (images/sentences)", int, check=at_least(2)),
        Key("data_dir", None, "datasets root (default $DATA_DIR); overrides a checkpoint's data_dir"),
        Key("top_words", 500, "LM: the N most frequent words", int, check=at_least(1)),
        Key("words", [], "LM: words to add and annotate, e.g. [king,queen]", list),
        Key("annotate", 60, "LM: annotate this many of the most frequent", int, check=at_least(0)),
        Key("corpus", None, "LM: text file whose word counts define 'most frequent'", Path, check=existing_file),
        Key("perplexity", 30.0, "t-SNE perplexity", float, check=positive),
        Key("max_iter", 1000, "optimization steps", int, check=at_least(250)),
        Key("method", "auto", "exact (ours), opentsne, or auto by size", choices=("auto", "exact", "opentsne")),
        Key("seed", 0, "random seed", int, check=at_least(0)),
        Key("out", None, "PNG path (default tsne_<name>.png)", Path),
        Key("wandb", False, "log the plot into the checkpoint's own W&B run (else a new one) if none is active", bool),
    ],
    examples=["nnlab tsne data=digits n=1000", "nnlab tsne ckpt_path=<run>/checkpoints/best.ckpt"],
)


def log_to_wandb(path: Path, key: str, caption: str, start: bool = False, ckpt: str | None = None) -> bool:
    """Log the PNG into the active W&B run, or with ``start`` into the checkpoint's own run (else a new one),
    printing which; returns whether it did."""
    from nnlab.utils.checkpoint import CHECKPOINT_KEY, load_checkpoint
    from nnlab.utils.wandb_run import log_image

    config = load_checkpoint(ckpt)[CHECKPOINT_KEY].get("config") if ckpt and start else None
    line = log_image(path, key, caption, ckpt=ckpt, config=config, start=start)
    if line:
        print(line)
    return line is not None


def options(args: SimpleNamespace):
    """The feature options of the command's arguments."""
    from nnlab.tsne.features import FeatureOptions

    return FeatureOptions(args.n, args.top_words, list(args.words), args.annotate, args.corpus)


def run(args: SimpleNamespace) -> Path:
    from nnlab.inference import checkpoint_points, raw_points
    from nnlab.tsne import TSNE
    from nnlab.tsne.plot import plot

    if (args.data is None) == (args.ckpt_path is None):
        raise ConfigError(
            "give exactly one of data=<image dataset> or ckpt_path=<checkpoint> (see `nnlab tsne --help`)"
        )
    if args.data:
        points, name = raw_points(args.data, args.n, args.seed, args.data_dir), args.data
    else:
        points = checkpoint_points(args.ckpt_path, options(args), args.data_dir)
        name = args.ckpt_path.resolve().parent.parent.name
    perplexity = min(args.perplexity, (len(points.X) - 1) / 3)  # small inputs: keep the calibration feasible
    est = TSNE(perplexity=perplexity, max_iter=args.max_iter, method=args.method, random_state=args.seed)
    Y = est.fit_transform(points.X)
    subtitle = f"{est.method_}, perplexity {perplexity:g}, KL {est.kl_divergence_:.3f}, {est.fit_time_:.1f} s"
    out = plot(points, Y, Path(args.out or f"tsne_{name or 'ckpt'}.png"), subtitle)
    ckpt = str(args.ckpt_path) if args.ckpt_path else None
    logged = log_to_wandb(out, f"tsne/{name}", f"{points.title}; {subtitle}", start=args.wandb, ckpt=ckpt)
    print(f"wrote {out}" + (" (logged to W&B)" if logged else ""))
    return out
