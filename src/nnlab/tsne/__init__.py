"""t-SNE (course §4): exact t-SNE from the derived gradient (torch + a fused CPU pass) and an openTSNE bridge.

``from nnlab.tsne import TSNE``; derivations in docs/derivations-tsne.md.
"""

from nnlab.tsne._tsne import AUTO_EXACT_MAX_N, TSNE
from nnlab.tsne.affinities import conditional_probabilities, joint_probabilities, row_entropies
from nnlab.tsne.gradient import kl_divergence, kl_gradient
from nnlab.tsne.metrics import knn_accuracy, trustworthiness

__all__ = [
    "AUTO_EXACT_MAX_N",
    "TSNE",
    "conditional_probabilities",
    "joint_probabilities",
    "kl_divergence",
    "kl_gradient",
    "knn_accuracy",
    "row_entropies",
    "trustworthiness",
]
