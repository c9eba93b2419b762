/* fastText's supervised SGD (Joulin et al. 2016), one example at a time, as the C++ original does.
 *
 * For example b of the batch, with its bag of ids[b, :] and their shares (1/|bag|, 0 on padding):
 *   h = sum_j share_j E[id_j]                       the bag mean                         (D)
 *   z = W h + c,  g = softmax(z) - onehot(y_b)      gradient of the example's cross-entropy wrt z  (C)
 *   gh = W^T g                                      taken before W moves, as in C++       (D)
 *   W -= rate g h^T,  c -= rate g,  E[id_j] -= rate share_j gh
 * The rate goes linearly from rate0 (first example) to rate1 (after the last one). Same math as
 * fasttext_sgd_step in nnlab/models/fasttext_sgd.py with batches of one (tested against it).
 * logits (B x C, may be NULL) receives z of each example before its update.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

void fasttext_sgd_f32(float *E, int64_t D, float *W, float *c, int64_t C, const int64_t *ids, const float *share,
                      int64_t M, const int64_t *labels, int64_t B, double rate0, double rate1, float *logits) {
    float *h = malloc(sizeof(float) * (size_t)(2 * D + C));
    if (!h) return;
    float *gh = h + D, *g = h + 2 * D;
    for (int64_t b = 0; b < B; b++) {
        const float rate = (float)(rate0 + (rate1 - rate0) * (double)b / (double)B);
        const int64_t *id = ids + b * M;
        const float *sh = share + b * M;
        for (int64_t d = 0; d < D; d++) h[d] = 0.0f;
        for (int64_t j = 0; j < M; j++) {
            if (sh[j] == 0.0f) continue;
            const float *e = E + id[j] * D;
            const float s = sh[j];
            for (int64_t d = 0; d < D; d++) h[d] += s * e[d];
        }
        float zmax = -INFINITY;
        for (int64_t k = 0; k < C; k++) {
            const float *w = W + k * D;
            float z = c[k];
            for (int64_t d = 0; d < D; d++) z += w[d] * h[d];
            g[k] = z;
            if (logits) logits[b * C + k] = z;
            if (z > zmax) zmax = z;
        }
        float sum = 0.0f;
        for (int64_t k = 0; k < C; k++) {
            g[k] = expf(g[k] - zmax);
            sum += g[k];
        }
        for (int64_t k = 0; k < C; k++) g[k] = g[k] / sum - (k == labels[b] ? 1.0f : 0.0f);
        for (int64_t d = 0; d < D; d++) gh[d] = 0.0f;
        for (int64_t k = 0; k < C; k++) {
            float *w = W + k * D;
            const float gk = g[k];
            for (int64_t d = 0; d < D; d++) {
                gh[d] += gk * w[d];
                w[d] -= rate * gk * h[d];
            }
            c[k] -= rate * gk;
        }
        for (int64_t j = 0; j < M; j++) {
            if (sh[j] == 0.0f) continue;
            float *e = E + id[j] * D;
            const float s = rate * sh[j];
            for (int64_t d = 0; d < D; d++) e[d] -= s * gh[d];
        }
    }
    free(h);
}
