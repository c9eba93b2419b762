/* fastText's supervised SGD (Joulin et al. 2016), one example at a time, as the C++ original does.
 *
 * Bags are ragged (CSR): example i's ids are ids[offsets[i] .. offsets[i+1]), each with share 1/|bag|.
 * Step b of the call trains example i = order[b] (order may be NULL: i = b) at rate rates[b]:
 *   h = sum_j share E[id_j]                         the bag mean                         (D)
 *   z = W h + c,  g = softmax(z) - onehot(y_i)      gradient of the example's cross-entropy wrt z  (C)
 *   gh = W^T g                                      taken before W moves, as in C++       (D)
 *   W -= rate g h^T,  c -= rate g,  E[id_j] -= rate share gh
 * Same math as fasttext_sgd_step in nnlab/models/fasttext_sgd.py with batches of one (tested against it).
 * train_c = 0 leaves c as it is (the C++ output layer has no bias: ours holds it at zero).
 * logits (B x C, may be NULL) receives z of step b before its update.
 *
 * threads > 1 is the C++ trainer's Hogwild: thread t takes steps t, t + threads, ... so that all threads
 * walk the rate schedule together (the C++ threads share one token counter), and they update E, W and c
 * without locks. The result then depends on the interleaving; threads = 1 is deterministic.
 */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct {
    float *E, *W, *c, *logits;
    int64_t D, C, B, first, stride, train_c;
    const int64_t *ids, *offsets, *order, *labels;
    const double *rates;
} Job;

typedef struct {
    const Job *job;
    float *scratch; /* 2 D + C floats */
} Task;

static void *run(void *arg) {
    const Job *j = ((const Task *)arg)->job;
    const int64_t D = j->D, C = j->C;
    float *h = ((const Task *)arg)->scratch, *gh = h + D, *g = h + 2 * D;
    const int64_t ahead = j->stride;
    for (int64_t b = j->first; b < j->B; b += j->stride) {
        /* A shuffled epoch reads its bags (and their rows of E) at random: ask for them a few steps ahead,
         * so the memory waits overlap the arithmetic (3x faster on SST's phrases than without). */
        if (b + 3 * ahead < j->B) {
            const int64_t next3 = j->order ? j->order[b + 3 * ahead] : b + 3 * ahead;
            __builtin_prefetch(j->offsets + next3);
            __builtin_prefetch(j->labels + next3);
        }
        if (b + 2 * ahead < j->B) {
            const int64_t next2 = j->order ? j->order[b + 2 * ahead] : b + 2 * ahead;
            const int64_t *bag2 = j->ids + j->offsets[next2];
            for (int64_t k = 0; k < j->offsets[next2 + 1] - j->offsets[next2]; k += 8) __builtin_prefetch(bag2 + k);
        }
        if (b + ahead < j->B) {
            const int64_t next1 = j->order ? j->order[b + ahead] : b + ahead;
            const int64_t *bag1 = j->ids + j->offsets[next1];
            for (int64_t k = 0; k < j->offsets[next1 + 1] - j->offsets[next1]; k++) __builtin_prefetch(j->E + bag1[k] * D, 1);
        }
        const int64_t i = j->order ? j->order[b] : b;
        const int64_t *id = j->ids + j->offsets[i];
        const int64_t m = j->offsets[i + 1] - j->offsets[i];
        const float rate = (float)j->rates[b];
        const float share = m > 0 ? 1.0f / (float)m : 0.0f;
        for (int64_t d = 0; d < D; d++) h[d] = 0.0f;
        for (int64_t k = 0; k < m; k++) {
            const float *e = j->E + id[k] * D;
            for (int64_t d = 0; d < D; d++) h[d] += share * e[d];
        }
        float zmax = -INFINITY;
        for (int64_t k = 0; k < C; k++) {
            const float *w = j->W + k * D;
            float z = j->c[k];
            for (int64_t d = 0; d < D; d++) z += w[d] * h[d];
            g[k] = z;
            if (j->logits) j->logits[b * C + k] = z;
            if (z > zmax) zmax = z;
        }
        float sum = 0.0f;
        for (int64_t k = 0; k < C; k++) {
            g[k] = expf(g[k] - zmax);
            sum += g[k];
        }
        for (int64_t k = 0; k < C; k++) g[k] = g[k] / sum - (k == j->labels[i] ? 1.0f : 0.0f);
        for (int64_t d = 0; d < D; d++) gh[d] = 0.0f;
        for (int64_t k = 0; k < C; k++) {
            float *w = j->W + k * D;
            const float gk = g[k];
            for (int64_t d = 0; d < D; d++) {
                gh[d] += gk * w[d];
                w[d] -= rate * gk * h[d];
            }
            if (j->train_c) j->c[k] -= rate * gk;
        }
        const float s = rate * share;
        for (int64_t k = 0; k < m; k++) {
            float *e = j->E + id[k] * D;
            for (int64_t d = 0; d < D; d++) e[d] -= s * gh[d];
        }
    }
    return NULL;
}

/* Returns 0, or -1 (nothing trained) when the scratch memory cannot be had. A thread the system refuses to
 * start has its steps run by the calling thread, so every step is taken once. */
int fasttext_sgd_f32(float *E, int64_t D, float *W, float *c, int64_t train_c, int64_t C, const int64_t *ids,
                     const int64_t *offsets, const int64_t *order, const int64_t *labels, const double *rates,
                     int64_t B, int64_t threads, float *logits) {
    if (threads < 1) threads = 1;
    if (threads > B) threads = B > 0 ? B : 1;
    const size_t n = (size_t)threads;
    Job *jobs = malloc(sizeof(Job) * n);
    Task *tasks = malloc(sizeof(Task) * n);
    pthread_t *tid = malloc(sizeof(pthread_t) * n);
    int *started = calloc(n, sizeof(int));
    float *scratch = malloc(sizeof(float) * (size_t)(2 * D + C) * n);
    int rc = (jobs && tasks && tid && started && scratch) ? 0 : -1;
    if (rc == 0) {
        for (int64_t t = 0; t < threads; t++) {
            jobs[t] = (Job){E, W, c, logits, D, C, B, t, threads, train_c, ids, offsets, order, labels, rates};
            tasks[t] = (Task){&jobs[t], scratch + (size_t)t * (size_t)(2 * D + C)};
        }
        for (int64_t t = 1; t < threads; t++) started[t] = pthread_create(&tid[t], NULL, run, &tasks[t]) == 0;
        run(&tasks[0]);
        for (int64_t t = 1; t < threads; t++) {
            if (started[t])
                pthread_join(tid[t], NULL);
            else
                run(&tasks[t]);
        }
    }
    free(jobs);
    free(tasks);
    free(tid);
    free(started);
    free(scratch);
    return rc;
}
