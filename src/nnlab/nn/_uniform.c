/* A counter-based uniform init for large tables (fastText's 2M-row input matrix).
 *
 * x[i] = bound (2 u_i - 1), u_i = the top 24 bits of splitmix64(seed + i) / 2^24: each value depends only
 * on (seed, i), so the table is the same for any number of threads, and the torch fallback
 * (nnlab.nn.text.hash_uniform_) computes the same bits. The C++ fastText also draws its input matrix on
 * its training threads; torch's uniform_ runs one Mersenne Twister in one thread, ~8x slower here.
 */
#include <pthread.h>
#include <stdint.h>

typedef struct {
    float *x;
    int64_t lo, hi;
    float scale;
    uint64_t seed;
} Block;

static void *fill(void *arg) {
    const Block *b = arg;
    for (int64_t i = b->lo; i < b->hi; i++) {
        uint64_t z = b->seed + (uint64_t)i + 0x9e3779b97f4a7c15ULL;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        z ^= z >> 31;
        /* 24 random bits, centred (exact in float), times bound / 2^24 (exact): one rounding, as in torch */
        const int32_t v = (int32_t)(z >> 40) * 2 - (1 << 24);
        b->x[i] = (float)v * b->scale;
    }
    return 0;
}

void hash_uniform_f32(float *x, int64_t n, float bound, uint64_t seed, int64_t threads) {
    enum { MAX_THREADS = 64 };
    if (threads < 1) threads = 1;
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    Block blocks[MAX_THREADS];
    pthread_t tid[MAX_THREADS];
    int started[MAX_THREADS] = {0};
    for (int64_t t = 0; t < threads; t++) blocks[t] = (Block){x, n * t / threads, n * (t + 1) / threads, bound / 16777216.0f, seed};
    for (int64_t t = 1; t < threads; t++) started[t] = pthread_create(&tid[t], 0, fill, &blocks[t]) == 0;
    fill(&blocks[0]);
    for (int64_t t = 1; t < threads; t++) {
        if (started[t])
            pthread_join(tid[t], 0);
        else
            fill(&blocks[t]);
    }
}
