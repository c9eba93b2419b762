"""The PNG of a t-SNE embedding: points coloured by class, or words with the chosen ones annotated."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nnlab.tsne.features import Points


def plot(points: Points, Y: np.ndarray, path: Path, subtitle: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 8))
    if points.words is not None:
        hl = np.array([w in points.highlight for w in points.words])
        ax.scatter(Y[~hl, 0], Y[~hl, 1], s=6, c="0.6", linewidths=0)
        ax.scatter(Y[hl, 0], Y[hl, 1], s=10, c="tab:red", linewidths=0)
        for (x, y), w, h in zip(Y, points.words, hl):
            if h:
                ax.annotate(w, (x, y), fontsize=7, xytext=(2, 2), textcoords="offset points")
    else:
        labels = points.labels
        names = points.class_names or [str(c) for c in np.unique(labels)]
        cmap = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
        for c in np.unique(labels):
            m = labels == c
            name = names[int(c)] if int(c) < len(names) else str(c)
            ax.scatter(Y[m, 0], Y[m, 1], s=4, color=cmap(int(c) % cmap.N), label=name, linewidths=0)
        ax.legend(markerscale=3, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    ax.set_title(f"t-SNE of {points.title}\n{subtitle}", fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
