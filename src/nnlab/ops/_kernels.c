/* Native loops for the hand-derived ops (batch norm §1, tiled pools §3 of docs/derivations.md).

   Why C: each op is a few per-element multiply-adds, so its cost is passes over memory. In eager torch every
   intermediate ((x - mu), (x - mu) * scale, dy * centred, each window copy, ...) is a full tensor written and read
   back; here each pass reads its inputs once and keeps intermediates in registers, and a batch-norm channel
   (256 KB for 64 x 32 x 32) is reused from cache by the next pass. The formulas are exactly the ones the torch
   path in batchnorm.py / pooling.py evaluates (same centring, same per-channel coefficients), so both paths
   give the same values up to rounding.

   Layouts: "planar" is contiguous (N, C, S) (S = product of spatial sizes); "rows" is (M, C) with C fastest,
   which covers (N, C) features and channels-last maps (M = N * H * W). Every function works on a half-open
   range [b, e) of channels (batch norm) or output rows (pools), so threads can split the work without locks: an
   OpenMP team of torch's own pool through the par_* entry points at the end (_parallel.h), or Python threads
   when the build has no OpenMP. This file includes itself once per element type (T = float, double). */
#ifndef NNLAB_T
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include <string.h>

#include "_parallel.h"

#define NNLAB_T float
#define NNLAB_U uint32_t
#define NNLAB_FN(name) name##_f32
#include __FILE__
#undef NNLAB_T
#undef NNLAB_U
#undef NNLAB_FN
#define NNLAB_T double
#define NNLAB_U uint64_t
#define NNLAB_FN(name) name##_f64
#include __FILE__
#undef NNLAB_T
#undef NNLAB_U
#undef NNLAB_FN

#else
#define T NNLAB_T

/* ------------------------------------------------------------------------------------------- batch norm */

/* mean and biased variance per channel c in [b, e). The mean is shifted by the channel's first value K:
   mean = K + sum(x - K) / m. For a constant channel every x - K is exactly 0, so the mean is exactly the constant
   and x - mean gives exact zeros (derivations §1.1); the variance is the two-pass sum((x - mean)^2) / m, never
   the cancelling E[x^2] - mean^2. Sums are taken in T over blocks (one plane, or BLOCK rows) and the blocks
   added in double: T-speed vector loops, and an error that does not grow with the batch. */
#ifndef BLOCK
#define BLOCK 64
#endif
void NNLAB_FN(bn_stats)(const T* x, int64_t N, int64_t C, int64_t S, int64_t rows, T* mean, T* var, int64_t b,
                        int64_t e) {
  const double m = (double)N * (double)S;
  if (!rows) {
    for (int64_t c = b; c < e; ++c) {
      const T K = x[c * S];
      double s = 0, q = 0;
      for (int64_t n = 0; n < N; ++n) {
        const T* p = x + (n * C + c) * S;
        T t = 0;
#pragma omp simd reduction(+ : t)
        for (int64_t i = 0; i < S; ++i) t += p[i] - K;
        s += t;
      }
      const double mu = (double)K + s / m;
      const T mt = (T)mu, corr = (T)(mu - (double)mt); /* x - mu = (x - mt) - corr, in T */
      for (int64_t n = 0; n < N; ++n) {
        const T* p = x + (n * C + c) * S;
        T t = 0;
#pragma omp simd reduction(+ : t)
        for (int64_t i = 0; i < S; ++i) {
          const T d = (p[i] - mt) - corr;
          t += d * d;
        }
        q += t;
      }
      mean[c] = mt;
      var[c] = (T)(q / m);
    }
    return;
  }
  const int64_t w = e - b;
  double* acc = (double*)calloc((size_t)(2 * w), sizeof(double));
  T* tacc = (T*)malloc((size_t)(3 * w) * sizeof(T));
  double *s = acc, *q = acc + w;
  T *K = tacc, *t = tacc + w, *mt = tacc + 2 * w;
  for (int64_t c = 0; c < w; ++c) K[c] = x[b + c];
  for (int64_t r0 = 0; r0 < N; r0 += BLOCK) {
    const int64_t r1 = r0 + BLOCK < N ? r0 + BLOCK : N;
    for (int64_t c = 0; c < w; ++c) t[c] = 0;
    for (int64_t r = r0; r < r1; ++r) {
      const T* p = x + r * C + b;
#pragma omp simd
      for (int64_t c = 0; c < w; ++c) t[c] += p[c] - K[c];
    }
    for (int64_t c = 0; c < w; ++c) s[c] += t[c];
  }
  for (int64_t c = 0; c < w; ++c) {
    const double mu = (double)K[c] + s[c] / m;
    mt[c] = (T)mu;
    K[c] = (T)(mu - (double)mt[c]); /* K now holds the rounding correction of the mean */
  }
  for (int64_t r0 = 0; r0 < N; r0 += BLOCK) {
    const int64_t r1 = r0 + BLOCK < N ? r0 + BLOCK : N;
    for (int64_t c = 0; c < w; ++c) t[c] = 0;
    for (int64_t r = r0; r < r1; ++r) {
      const T* p = x + r * C + b;
#pragma omp simd
      for (int64_t c = 0; c < w; ++c) {
        const T d = (p[c] - mt[c]) - K[c];
        t[c] += d * d;
      }
    }
    for (int64_t c = 0; c < w; ++c) q[c] += t[c];
  }
  for (int64_t c = 0; c < w; ++c) {
    mean[b + c] = mt[c];
    var[b + c] = (T)(q[c] / m);
  }
  free(acc);
  free(tacc);
}

/* y = (x - mean) * scale + shift per channel: centring before scaling (derivations §1.1). */
void NNLAB_FN(bn_apply)(const T* x, T* y, int64_t N, int64_t C, int64_t S, int64_t rows,
                        const T* mean, const T* scale, const T* shift, int64_t b, int64_t e) {
  if (!rows) {
    for (int64_t n = 0; n < N; ++n)
      for (int64_t c = b; c < e; ++c) {
        const T mu = mean[c], a = scale[c], z = shift[c];
        const T* p = x + (n * C + c) * S;
        T* o = y + (n * C + c) * S;
#pragma omp simd
        for (int64_t i = 0; i < S; ++i) o[i] = (p[i] - mu) * a + z;
      }
    return;
  }
  for (int64_t r = 0; r < N; ++r) {
    const T* p = x + r * C;
    T* o = y + r * C;
#pragma omp simd
    for (int64_t c = b; c < e; ++c) o[c] = (p[c] - mean[c]) * scale[c] + shift[c];
  }
}

/* sum(dy) and sum(dy * (x - mean)) per channel (dbeta and dgamma / rstd of derivations §1.3); blocks as bn_stats. */
/* Rows r0..r1 of a channels-last (rows, stride) pair dy, x, columns off..off+w: s += sum dy, q += sum dy (x - mu),
   summed in T over blocks of BLOCK rows (ts, tq: w scratch values each) and the blocks in double. */
static inline void NNLAB_FN(bsum_rows)(const T* dy, const T* x, int64_t stride, int64_t off, int64_t w, const T* mu,
                                       int64_t r0, int64_t r1, T* ts, T* tq, double* s, double* q) {
  for (int64_t a = r0; a < r1; a += BLOCK) {
    const int64_t e = a + BLOCK < r1 ? a + BLOCK : r1;
    for (int64_t c = 0; c < w; ++c) ts[c] = tq[c] = 0;
    for (int64_t r = a; r < e; ++r) {
      const T* g = dy + r * stride + off;
      const T* p = x + r * stride + off;
#pragma omp simd
      for (int64_t c = 0; c < w; ++c) {
        ts[c] += g[c];
        tq[c] += g[c] * (p[c] - mu[c]);
      }
    }
    for (int64_t c = 0; c < w; ++c) {
      s[c] += ts[c];
      q[c] += tq[c];
    }
  }
}

void NNLAB_FN(bn_bwd_sums)(const T* dy, const T* x, int64_t N, int64_t C, int64_t S, int64_t rows,
                           const T* mean, T* sum_dy, T* sum_dy_xc, int64_t b, int64_t e) {
  if (!rows) {
    for (int64_t c = b; c < e; ++c) {
      const T mu = mean[c];
      double s = 0, q = 0;
      for (int64_t n = 0; n < N; ++n) {
        const T* g = dy + (n * C + c) * S;
        const T* p = x + (n * C + c) * S;
        T ts = 0, tq = 0;
#pragma omp simd reduction(+ : ts, tq)
        for (int64_t i = 0; i < S; ++i) {
          ts += g[i];
          tq += g[i] * (p[i] - mu);
        }
        s += ts;
        q += tq;
      }
      sum_dy[c] = (T)s;
      sum_dy_xc[c] = (T)q;
    }
    return;
  }
  const int64_t w = e - b;
  double* acc = (double*)calloc((size_t)(2 * w), sizeof(double));
  T* tacc = (T*)malloc((size_t)(2 * w) * sizeof(T));
  double *s = acc, *q = acc + w;
  T *ts = tacc, *tq = tacc + w;
  NNLAB_FN(bsum_rows)(dy, x, C, b, w, mean + b, 0, N, ts, tq, s, q);
  for (int64_t c = 0; c < w; ++c) {
    sum_dy[b + c] = (T)s[c];
    sum_dy_xc[b + c] = (T)q[c];
  }
  free(acc);
  free(tacc);
}

/* dx = a * dy + bb * (x - mean) + cc per channel: the compact form of derivations §1.3 expanded
   (a = gamma * rstd, bb = -a * rstd * dgamma / m, cc = -a * dbeta / m; eval: bb = cc = 0). */
void NNLAB_FN(bn_bwd_apply)(const T* dy, const T* x, T* dx, int64_t N, int64_t C, int64_t S, int64_t rows,
                            const T* mean, const T* a, const T* bb, const T* cc, int64_t b, int64_t e) {
  if (!rows) {
    for (int64_t n = 0; n < N; ++n)
      for (int64_t c = b; c < e; ++c) {
        const T mu = mean[c], ac = a[c], bc = bb[c], c0 = cc[c];
        const int64_t off = (n * C + c) * S;
        const T *g = dy + off, *p = x + off;
        T* o = dx + off;
#pragma omp simd
        for (int64_t i = 0; i < S; ++i) o[i] = (p[i] - mu) * bc + c0 + g[i] * ac;
      }
    return;
  }
  for (int64_t r = 0; r < N; ++r) {
    const T *g = dy + r * C, *p = x + r * C;
    T* o = dx + r * C;
#pragma omp simd
    for (int64_t c = b; c < e; ++c) o[c] = (p[c] - mean[c]) * bb[c] + cc[c] + g[c] * a[c];
  }
}

/* The whole forward for channels [b, e) in one call (a Python round trip per small vector costs more than a pass
   over a (256, 512) batch): statistics when training (else mean/var are the given running statistics),
   rstd = 1/sqrt(var + eps), y = (x - mean) * (gamma * rstd) + beta, and the running-statistics update
   r <- (1 - momentum) * r + momentum * stat (the variance unbiased, m / (m - 1)); NULL pointers skip gamma, beta
   or the update. */
void NNLAB_FN(bn_fwd)(const T* x, T* y, const T* gamma, const T* beta, T* mean, T* var, T* rstd, T* run_mean,
                      T* run_var, double momentum, double eps, int64_t training, int64_t N, int64_t C, int64_t S,
                      int64_t rows, int64_t b, int64_t e) {
  if (training) NNLAB_FN(bn_stats)(x, N, C, S, rows, mean, var, b, e);
  const int64_t w = e - b;
  T* coef = (T*)malloc((size_t)(2 * w) * sizeof(T));
  T *scale = coef - b, *shift = coef + w - b; /* indexed by channel */
  const double m = (double)N * (double)S;
  for (int64_t c = b; c < e; ++c) {
    const T r = (T)1 / (T)sqrt((double)(var[c] + (T)eps));
    rstd[c] = r;
    scale[c] = gamma ? r * gamma[c] : r;
    shift[c] = beta ? beta[c] : (T)0;
    if (training && run_mean) run_mean[c] = run_mean[c] * (T)(1 - momentum) + (T)momentum * mean[c];
    if (training && run_var)
      run_var[c] = run_var[c] * (T)(1 - momentum) + (T)momentum * (T)((double)var[c] * (m / (m - 1)));
  }
  NNLAB_FN(bn_apply)(x, y, N, C, S, rows, mean, scale, shift, b, e);
  free(coef);
}

/* The whole backward for channels [b, e): the sums, then dx by the compact form (derivations §1.3) with
   a = gamma * rstd, bb = -a * rstd * dgamma / m, cc = -a * dbeta / m (eval: bb = cc = 0, dx = a * dy);
   writes dgamma = rstd * sum(dy * (x - mean)) and dbeta = sum(dy). */
void NNLAB_FN(bn_bwd)(const T* dy, const T* x, T* dx, const T* gamma, const T* mean, const T* rstd, T* dgamma,
                      T* dbeta, int64_t training, int64_t N, int64_t C, int64_t S, int64_t rows, int64_t b,
                      int64_t e) {
  NNLAB_FN(bn_bwd_sums)(dy, x, N, C, S, rows, mean, dbeta, dgamma, b, e);
  const int64_t w = e - b;
  T* coef = (T*)malloc((size_t)(3 * w) * sizeof(T));
  T *a = coef - b, *bb = coef + w - b, *cc = coef + 2 * w - b;
  const T m = (T)((double)N * (double)S);
  for (int64_t c = b; c < e; ++c) {
    const T r = rstd[c], ga = gamma ? gamma[c] * r : r;
    dgamma[c] = dgamma[c] * r; /* sum(dy * xhat) */
    a[c] = ga;
    bb[c] = training ? -ga * r * dgamma[c] / m : (T)0;
    cc[c] = training ? -ga * dbeta[c] / m : (T)0;
  }
  NNLAB_FN(bn_bwd_apply)(dy, x, dx, N, C, S, rows, mean, a, bb, cc, b, e);
  free(coef);
}

/* Rows layout split by rows rather than channels (for several threads on channels-last maps: a column split makes
   every thread stream the whole tensor). Each thread sums rows [r0, r1) into its own slot of part (C doubles per
   slot, or 2 C for the backward); the caller adds the slots and calls the next pass. */
void NNLAB_FN(bn_rows_sum)(const T* x, int64_t C, const T* K, double* part, int64_t slot, int64_t r0, int64_t r1) {
  double* s = part + slot * C;
  T t[C];
  for (int64_t a = r0; a < r1; a += BLOCK) {
    const int64_t b = a + BLOCK < r1 ? a + BLOCK : r1;
    for (int64_t c = 0; c < C; ++c) t[c] = 0;
    for (int64_t r = a; r < b; ++r) {
      const T* p = x + r * C;
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) t[c] += p[c] - K[c];
    }
    for (int64_t c = 0; c < C; ++c) s[c] += t[c];
  }
}

void NNLAB_FN(bn_rows_sq)(const T* x, int64_t C, const T* mt, const T* corr, double* part, int64_t slot, int64_t r0,
                          int64_t r1) {
  double* s = part + slot * C;
  T t[C];
  for (int64_t a = r0; a < r1; a += BLOCK) {
    const int64_t b = a + BLOCK < r1 ? a + BLOCK : r1;
    for (int64_t c = 0; c < C; ++c) t[c] = 0;
    for (int64_t r = a; r < b; ++r) {
      const T* p = x + r * C;
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) {
        const T d = (p[c] - mt[c]) - corr[c];
        t[c] += d * d;
      }
    }
    for (int64_t c = 0; c < C; ++c) s[c] += t[c];
  }
}

void NNLAB_FN(bn_rows_bsum)(const T* dy, const T* x, int64_t C, const T* mean, double* part, int64_t slot,
                            int64_t r0, int64_t r1) {
  double *s = part + 2 * slot * C, *q = s + C;
  T ts[C], tq[C];
  NNLAB_FN(bsum_rows)(dy, x, C, 0, C, mean, r0, r1, ts, tq, s, q);
}

void NNLAB_FN(bn_rows_apply)(const T* x, T* y, int64_t C, const T* mean, const T* scale, const T* shift,
                             int64_t slot, int64_t r0, int64_t r1) {
  (void)slot;
  NNLAB_FN(bn_apply)(x + r0 * C, y + r0 * C, r1 - r0, C, 1, 1, mean, scale, shift, 0, C);
}

void NNLAB_FN(bn_rows_bwd_apply)(const T* dy, const T* x, T* dx, int64_t C, const T* mean, const T* a, const T* bb,
                                 const T* cc, int64_t slot, int64_t r0, int64_t r1) {
  (void)slot;
  NNLAB_FN(bn_bwd_apply)(dy + r0 * C, x + r0 * C, dx + r0 * C, r1 - r0, C, 1, 1, mean, a, bb, cc, 0, C);
}

/* The whole rows-layout forward and backward in one OpenMP team, split by rows: thread t of n takes rows
   [M t / n, M (t + 1) / n), the contiguous range torch's own element-wise ops give it, so what the step's other
   ops just wrote (dy, the output buffers) is read from the thread's own cache. A channel split reads half of every
   tensor from the other core's cache: on (256, 512) at 2 threads that made the backward 77 us against 48 with dy
   already local. The passes are those of bn_fwd / bn_bwd (the same blocks of BLOCK rows summed in T, the slots
   added in double), separated by barriers; between passes each thread finishes the per-channel vectors of its
   own channel range [C t / n, C (t + 1) / n). Without OpenMP the team is one thread and does it all.
   Arguments as bn_fwd / bn_bwd with M rows of C channels, and the team's size last. */
void NNLAB_FN(bn_rows_fwd_team)(const T* x, T* y, const T* gamma, const T* beta, T* mean, T* var, T* rstd,
                                T* run_mean, T* run_var, double momentum, double eps, int64_t training, int64_t M,
                                int64_t C, int64_t threads) {
  double* part = (double*)calloc((size_t)(2 * threads * C), sizeof(double)); /* a slot of C per thread, twice */
  T* scratch = (T*)malloc((size_t)(4 * C) * sizeof(T));
  T *K = scratch, *corr = scratch + C, *scale = scratch + 2 * C, *shift = scratch + 3 * C;
  double* part2 = part + threads * C;
  const double m = (double)M;
  memcpy(K, x, (size_t)C * sizeof(T)); /* the shift of bn_stats: each channel's first value */
  NNLAB_TEAM {
    const int64_t t = NNLAB_TID, n = NNLAB_NT;
    const int64_t r0 = M * t / n, r1 = M * (t + 1) / n, c0 = C * t / n, c1 = C * (t + 1) / n;
    if (training) {
      NNLAB_FN(bn_rows_sum)(x, C, K, part, t, r0, r1);
      _Pragma("omp barrier");
      for (int64_t c = c0; c < c1; ++c) {
        double s = 0;
        for (int64_t j = 0; j < n; ++j) s += part[j * C + c];
        const double mu = (double)K[c] + s / m;
        mean[c] = (T)mu;
        corr[c] = (T)(mu - (double)mean[c]);
      }
      _Pragma("omp barrier");
      NNLAB_FN(bn_rows_sq)(x, C, mean, corr, part2, t, r0, r1);
      _Pragma("omp barrier");
      for (int64_t c = c0; c < c1; ++c) {
        double q = 0;
        for (int64_t j = 0; j < n; ++j) q += part2[j * C + c];
        var[c] = (T)(q / m);
      }
    }
    for (int64_t c = c0; c < c1; ++c) {
      const T r = (T)1 / (T)sqrt((double)(var[c] + (T)eps));
      rstd[c] = r;
      scale[c] = gamma ? r * gamma[c] : r;
      shift[c] = beta ? beta[c] : (T)0;
      if (training && run_mean) run_mean[c] = run_mean[c] * (T)(1 - momentum) + (T)momentum * mean[c];
      if (training && run_var)
        run_var[c] = run_var[c] * (T)(1 - momentum) + (T)momentum * (T)((double)var[c] * (m / (m - 1)));
    }
    _Pragma("omp barrier");
    NNLAB_FN(bn_apply)(x + r0 * C, y + r0 * C, r1 - r0, C, 1, 1, mean, scale, shift, 0, C);
  }
  free(part);
  free(scratch);
}

void NNLAB_FN(bn_rows_bwd_team)(const T* dy, const T* x, T* dx, const T* gamma, const T* mean, const T* rstd,
                                T* dgamma, T* dbeta, int64_t training, int64_t M, int64_t C, int64_t threads) {
  double* part = (double*)calloc((size_t)(2 * threads * C), sizeof(double));
  T* scratch = (T*)malloc((size_t)(3 * C) * sizeof(T));
  T *a = scratch, *bb = scratch + C, *cc = scratch + 2 * C;
  const T m = (T)M;
  NNLAB_TEAM {
    const int64_t t = NNLAB_TID, n = NNLAB_NT;
    const int64_t r0 = M * t / n, r1 = M * (t + 1) / n, c0 = C * t / n, c1 = C * (t + 1) / n;
    NNLAB_FN(bn_rows_bsum)(dy, x, C, mean, part, t, r0, r1);
    _Pragma("omp barrier");
    for (int64_t c = c0; c < c1; ++c) {
      double s = 0, q = 0;
      for (int64_t j = 0; j < n; ++j) {
        s += part[2 * j * C + c];
        q += part[(2 * j + 1) * C + c];
      }
      const T r = rstd[c], ga = gamma ? gamma[c] * r : r;
      dbeta[c] = (T)s;
      dgamma[c] = (T)q * r; /* sum(dy * xhat) */
      a[c] = ga;
      bb[c] = training ? -ga * r * dgamma[c] / m : (T)0;
      cc[c] = training ? -ga * dbeta[c] / m : (T)0;
    }
    _Pragma("omp barrier");
    NNLAB_FN(bn_bwd_apply)(dy + r0 * C, x + r0 * C, dx + r0 * C, r1 - r0, C, 1, 1, mean, a, bb, cc, 0, C);
  }
  free(part);
  free(scratch);
}

/* ----------------------------------------------------------------------------------------------- pools

   Tiled windows only (stride = kernel, no padding or dilation): each input element lies in at most one window.
   Planar: x is (P, H, W) with P = N * C planes, and the work items are the P * Ho output rows.
   Rows (channels-last): x is (N, H, W, C), the items are the N * Ho output rows, each for all C channels.
   Within a window, k = u * kw + v is the row-major position (what the max pool's index records). */

#define POOL_ITEM_SETUP                                                                 \
  const int64_t plane = it / Ho, i = it % Ho;                                           \
  const T* xr = x + (rows ? (plane * H + i * kh) * W * C : (plane * H + i * kh) * W);    \
  const int64_t yoff = rows ? (plane * Ho + i) * Wo * C : (plane * Ho + i) * Wo;

/* A 2 x 2 window's maximum M and the position K (0-3) of its first maximum, or of its first NaN with M = NaN (what
   torch.max returns), from its taps V0..V3 in row-major order: the maximum first, then the first position holding
   it, as selects rather than branches so that the loops around it vectorise. */
#define MAX4_FIRST(V0, V1, V2, V3, M, K)                                                              \
  do {                                                                                                \
    const T m01_ = (V1) > (V0) ? (V1) : (V0), m23_ = (V3) > (V2) ? (V3) : (V2);                       \
    const T m_ = m23_ > m01_ ? m23_ : m01_;                                                           \
    const int n0_ = (V0) != (V0), n1_ = (V1) != (V1), n2_ = (V2) != (V2), n3_ = (V3) != (V3);         \
    const int nan_ = n0_ | n1_ | n2_ | n3_;                                                           \
    const int h0_ = nan_ ? n0_ : (V0) == m_, h1_ = nan_ ? n1_ : (V1) == m_, h2_ = nan_ ? n2_ : (V2) == m_; \
    (K) = h0_ ? 0 : h1_ ? 1 : h2_ ? 2 : 3;                                                            \
    (M) = nan_ ? (T)NAN : m_;                                                                         \
  } while (0)

/* y = max over the window; idx = row-major position of its first maximum (a NaN, once seen, stays). */
void NNLAB_FN(maxpool_fwd)(const T* x, T* y, uint8_t* idx, int64_t H, int64_t W, int64_t C, int64_t rows,
                           int64_t kh, int64_t kw, int64_t Ho, int64_t Wo, int64_t b, int64_t e) {
  const int64_t cs = rows ? C : 1; /* distance between horizontally adjacent elements */
  const int64_t nc = rows ? C : 1; /* channels handled per output position */
  for (int64_t it = b; it < e; ++it) {
    POOL_ITEM_SETUP
    if (kh == 2 && kw == 2 && !rows) {
      const T *r0 = xr, *r1 = xr + W;
      T* yo = y + yoff;
      uint8_t* io = idx + yoff;
      /* simdlen: left alone, the uint8 store makes gcc pick 64 lanes, more than a row has (Wo = 16) */
#pragma omp simd simdlen(16)
      for (int64_t j = 0; j < Wo; ++j) {
        const T v0 = r0[2 * j], v1 = r0[2 * j + 1], v2 = r1[2 * j], v3 = r1[2 * j + 1];
        T m;
        int k;
        MAX4_FIRST(v0, v1, v2, v3, m, k);
        yo[j] = m;
        io[j] = (uint8_t)k;
      }
      continue;
    }
    if (kh == 2 && kw == 2 && rows) {
      /* Channels-last 2 x 2: the four taps of a window are four channel vectors, so the whole window is one
         pass over channels. The general loop below re-reads and re-writes y and
         the uint8 index once per tap, which ran at twice torch's time. */
      for (int64_t j = 0; j < Wo; ++j) {
        const T *t0 = xr + 2 * j * C, *t1 = t0 + C, *t2 = t0 + W * C, *t3 = t2 + C;
        T* yo = y + yoff + j * C;
        uint8_t* io = idx + yoff + j * C;
        /* Without NaNs the first maximum is a chain of strict comparisons, half the work of the NaN-aware
           selects; a NaN anywhere in the four vectors (their sum is NaN: inf - inf also lands here, harmlessly)
           sends the window position back through the selects. */
        int nan_seen = 0;
#pragma omp simd simdlen(16) reduction(| : nan_seen)
        for (int64_t c = 0; c < C; ++c) {
          const T v0 = t0[c], v1 = t1[c], v2 = t2[c], v3 = t3[c];
          const int g1 = v1 > v0;
          const T m1 = g1 ? v1 : v0;
          const int g2 = v2 > m1;
          const T m2 = g2 ? v2 : m1;
          const int g3 = v3 > m2;
          const int k = g3 ? 3 : g2 ? 2 : g1;
          const T sum = v0 + v1 + v2 + v3;
          nan_seen |= sum != sum;
          yo[c] = g3 ? v3 : m2;
          io[c] = (uint8_t)k;
        }
        if (!nan_seen) continue;
#pragma omp simd simdlen(16)
        for (int64_t c = 0; c < C; ++c) {
          T m;
          int k;
          MAX4_FIRST(t0[c], t1[c], t2[c], t3[c], m, k);
          yo[c] = m;
          io[c] = (uint8_t)k;
        }
      }
      continue;
    }
    for (int64_t j = 0; j < Wo; ++j) {
      const T* xw = xr + j * kw * cs;
      T* yo = y + yoff + j * nc;
      uint8_t* io = idx + yoff + j * nc;
#pragma omp simd simdlen(16)
      for (int64_t c = 0; c < nc; ++c) {
        yo[c] = xw[c];
        io[c] = 0;
      }
      for (int64_t u = 0; u < kh; ++u)
        for (int64_t v = 0; v < kw; ++v) {
          if (u == 0 && v == 0) continue;
          const T* xv = xw + (u * W + v) * cs;
          const uint8_t k = (uint8_t)(u * kw + v);
#pragma omp simd simdlen(16)
          for (int64_t c = 0; c < nc; ++c) {
            const T val = xv[c], best = yo[c];
            const int take = val > best || (val != val && best == best);
            yo[c] = take ? val : best;
            io[c] = take ? k : io[c];
          }
        }
    }
  }
}

/* dx = dy at each window's recorded maximum, 0 elsewhere in the window (derivations §3.1). */
void NNLAB_FN(maxpool_bwd)(const T* dy, const uint8_t* idx, T* dx, int64_t H, int64_t W, int64_t C, int64_t rows,
                           int64_t kh, int64_t kw, int64_t Ho, int64_t Wo, int64_t b, int64_t e) {
  const int64_t cs = rows ? C : 1, nc = rows ? C : 1;
  const T* x = dx; /* POOL_ITEM_SETUP addresses the input through x */
  for (int64_t it = b; it < e; ++it) {
    POOL_ITEM_SETUP
    T* dr = dx + (xr - x);
    if (kh == 2 && kw == 2 && !rows) {
      T *r0 = dr, *r1 = dr + W;
      const T* g = dy + yoff;
      const uint8_t* io = idx + yoff;
      /* Bit masks, not selects: gcc turns `k == v ? g : 0` into a branch, which random argmaxes mispredict half
         the time (14 ms instead of 2 for 64 x 64 x 32 x 32). Column q belongs to window q / 2, tap q % 2. */
      NNLAB_U gb[Wo];
      memcpy(gb, g, sizeof(T) * (size_t)Wo);
      NNLAB_U* o0 = (NNLAB_U*)r0;
      NNLAB_U* o1 = (NNLAB_U*)r1;
#pragma omp simd
      for (int64_t q = 0; q < 2 * Wo; ++q) {
        const NNLAB_U gj = gb[q >> 1], v = (NNLAB_U)(q & 1), k = io[q >> 1];
        o0[q] = gj & -(NNLAB_U)(k == v);
        o1[q] = gj & -(NNLAB_U)(k == 2 + v);
      }
      continue;
    }
    if (kh == 2 && kw == 2 && rows) {
      /* Channels-last 2 x 2: each window's four taps written in one pass over channels, with the planar case's
         bit masks (the general loop's select per tap ran at 2.9x torch's time for 32 channels). */
      for (int64_t j = 0; j < Wo; ++j) {
        T *d0 = dr + 2 * j * C, *d1 = d0 + C, *d2 = d0 + W * C, *d3 = d2 + C;
        const T* g = dy + yoff + j * C;
        const uint8_t* io = idx + yoff + j * C;
#pragma omp simd
        for (int64_t c = 0; c < C; ++c) {
          NNLAB_U gj, r0, r1, r2, r3;
          memcpy(&gj, g + c, sizeof gj);
          const NNLAB_U k = io[c];
          r0 = gj & -(NNLAB_U)(k == 0);
          r1 = gj & -(NNLAB_U)(k == 1);
          r2 = gj & -(NNLAB_U)(k == 2);
          r3 = gj & -(NNLAB_U)(k == 3);
          memcpy(d0 + c, &r0, sizeof r0);
          memcpy(d1 + c, &r1, sizeof r1);
          memcpy(d2 + c, &r2, sizeof r2);
          memcpy(d3 + c, &r3, sizeof r3);
        }
      }
      continue;
    }
    for (int64_t j = 0; j < Wo; ++j) {
      T* dw = dr + j * kw * cs;
      const T* g = dy + yoff + j * nc;
      const uint8_t* io = idx + yoff + j * nc;
      for (int64_t u = 0; u < kh; ++u)
        for (int64_t v = 0; v < kw; ++v) {
          T* dv = dw + (u * W + v) * cs;
          const uint8_t k = (uint8_t)(u * kw + v);
#pragma omp simd simdlen(16)
          for (int64_t c = 0; c < nc; ++c) dv[c] = io[c] == k ? g[c] : (T)0;
        }
    }
  }
}

/* y = sum over the window / D (derivations §3.2). */
void NNLAB_FN(avgpool_fwd)(const T* x, T* y, T D, int64_t H, int64_t W, int64_t C, int64_t rows, int64_t kh,
                           int64_t kw, int64_t Ho, int64_t Wo, int64_t b, int64_t e) {
  const int64_t cs = rows ? C : 1, nc = rows ? C : 1;
  for (int64_t it = b; it < e; ++it) {
    POOL_ITEM_SETUP
    if (kh == 2 && kw == 2 && !rows) {
      const T *r0 = xr, *r1 = xr + W;
      T* yo = y + yoff;
#pragma omp simd
      for (int64_t j = 0; j < Wo; ++j) yo[j] = (r0[2 * j] + r0[2 * j + 1] + r1[2 * j] + r1[2 * j + 1]) / D;
      continue;
    }
    for (int64_t j = 0; j < Wo; ++j) {
      const T* xw = xr + j * kw * cs;
      T* yo = y + yoff + j * nc;
#pragma omp simd
      for (int64_t c = 0; c < nc; ++c) yo[c] = 0;
      for (int64_t u = 0; u < kh; ++u)
        for (int64_t v = 0; v < kw; ++v) {
          const T* xv = xw + (u * W + v) * cs;
#pragma omp simd
          for (int64_t c = 0; c < nc; ++c) yo[c] += xv[c];
        }
#pragma omp simd
      for (int64_t c = 0; c < nc; ++c) yo[c] /= D;
    }
  }
}

/* dx = dy / D on every element of the window. */
void NNLAB_FN(avgpool_bwd)(const T* dy, T* dx, T D, int64_t H, int64_t W, int64_t C, int64_t rows, int64_t kh,
                           int64_t kw, int64_t Ho, int64_t Wo, int64_t b, int64_t e) {
  const int64_t cs = rows ? C : 1, nc = rows ? C : 1;
  const T* x = dx;
  for (int64_t it = b; it < e; ++it) {
    POOL_ITEM_SETUP
    T* dr = dx + (xr - x);
    if (kh == 2 && kw == 2 && !rows) {
      T *r0 = dr, *r1 = dr + W;
      const T* g = dy + yoff;
#pragma omp simd
      for (int64_t j = 0; j < Wo; ++j) {
        const T gj = g[j] / D;
        r0[2 * j] = gj;
        r0[2 * j + 1] = gj;
        r1[2 * j] = gj;
        r1[2 * j + 1] = gj;
      }
      continue;
    }
    for (int64_t j = 0; j < Wo; ++j) {
      T* dw = dr + j * kw * cs;
      const T* g = dy + yoff + j * nc;
      for (int64_t u = 0; u < kh; ++u)
        for (int64_t v = 0; v < kw; ++v) {
          T* dv = dw + (u * W + v) * cs;
#pragma omp simd
          for (int64_t c = 0; c < nc; ++c) dv[c] = g[c] / D;
        }
    }
  }
}

static inline T NNLAB_FN(lp_power)(T r, double p) {
  return p == 2.0 ? r * r : p == 1.0 ? r : (T)pow((double)r, p);
}

/* y = M * (sum (|w| / M)^p)^(1/p) with M = max |w| (0 for an all-zero window): the p-norm of the window,
   scaled so that large p cannot overflow (derivations §3.3). */
void NNLAB_FN(lppool_fwd)(const T* x, T* y, double p, int64_t H, int64_t W, int64_t C, int64_t rows, int64_t kh,
                          int64_t kw, int64_t Ho, int64_t Wo, int64_t b, int64_t e) {
  const int64_t cs = rows ? C : 1, nc = rows ? C : 1;
  const double inv = 1.0 / p;
  for (int64_t it = b; it < e; ++it) {
    POOL_ITEM_SETUP
    if (rows) { /* channels-last: the window loops outside, the channels inside (vectorised), 64 at a time */
      for (int64_t j = 0; j < Wo; ++j)
        for (int64_t c0 = 0; c0 < C; c0 += 64) {
          const int64_t n = C - c0 < 64 ? C - c0 : 64;
          const T* xw = xr + j * kw * C + c0;
          T* yo = y + yoff + j * C + c0;
          T M[64], sum[64];
          for (int64_t c = 0; c < n; ++c) M[c] = sum[c] = 0;
          for (int64_t u = 0; u < kh; ++u)
            for (int64_t v = 0; v < kw; ++v) {
              const T* xv = xw + (u * W + v) * C;
#pragma omp simd
              for (int64_t c = 0; c < n; ++c) {
                const T a = xv[c] < 0 ? -xv[c] : xv[c];
                M[c] = a > M[c] ? a : M[c];
              }
            }
          for (int64_t u = 0; u < kh; ++u)
            for (int64_t v = 0; v < kw; ++v) {
              const T* xv = xw + (u * W + v) * C;
              if (p == 2.0) {
#pragma omp simd
                for (int64_t c = 0; c < n; ++c) {
                  const T r = M[c] > 0 ? (xv[c] < 0 ? -xv[c] : xv[c]) / M[c] : (T)0;
                  sum[c] += r * r;
                }
              } else {
                for (int64_t c = 0; c < n; ++c)
                  if (M[c] > 0) sum[c] += NNLAB_FN(lp_power)(fabs(xv[c]) / M[c], p);
              }
            }
#pragma omp simd
          for (int64_t c = 0; c < n; ++c)
            yo[c] = M[c] * (p == 2.0 ? (T)sqrt(sum[c]) : p == 1.0 ? sum[c] : (T)pow((double)sum[c], inv));
        }
      continue;
    }
    if (kh == 2 && kw == 2 && p == 2.0) { /* planar 2 x 2, p = 2: the same steps, vectorised over windows */
      const T *q0 = xr, *q1 = xr + W;
      T* yo = y + yoff;
#pragma omp simd
      for (int64_t j = 0; j < Wo; ++j) {
        const T a0 = fabs(q0[2 * j]), a1 = fabs(q0[2 * j + 1]), a2 = fabs(q1[2 * j]), a3 = fabs(q1[2 * j + 1]);
        const T m01 = a1 > a0 ? a1 : a0, m23 = a3 > a2 ? a3 : a2;
        const T M = m23 > m01 ? m23 : m01;
        const T inv_m = M > 0 ? (T)1 / M : (T)0;
        const T r0 = a0 * inv_m, r1 = a1 * inv_m, r2 = a2 * inv_m, r3 = a3 * inv_m;
        yo[j] = M * (T)sqrt(r0 * r0 + r1 * r1 + r2 * r2 + r3 * r3);
      }
      continue;
    }
    for (int64_t j = 0; j < Wo; ++j) {
      const T* xw = xr + j * kw * cs;
      T* yo = y + yoff + j * nc;
      for (int64_t c = 0; c < nc; ++c) {
        T M = 0;
        for (int64_t u = 0; u < kh; ++u)
          for (int64_t v = 0; v < kw; ++v) {
            const T a = fabs(xw[(u * W + v) * cs + c]);
            M = a > M ? a : M;
          }
        T s = 0;
        if (M > 0)
          for (int64_t u = 0; u < kh; ++u)
            for (int64_t v = 0; v < kw; ++v) s += NNLAB_FN(lp_power)(fabs(xw[(u * W + v) * cs + c]) / M, p);
        yo[c] = M * (p == 2.0 ? sqrt(s) : p == 1.0 ? s : (T)pow((double)s, inv));
      }
    }
  }
}

/* dx = sign(w) * (|w| / y)^(p - 1) * dy, and 0 where w = 0 or y = 0 (derivations §3.3). */
void NNLAB_FN(lppool_bwd)(const T* dy, const T* x, const T* y, T* dx, double p, int64_t H, int64_t W, int64_t C,
                          int64_t rows, int64_t kh, int64_t kw, int64_t Ho, int64_t Wo, int64_t b, int64_t e) {
  const int64_t cs = rows ? C : 1, nc = rows ? C : 1;
  for (int64_t it = b; it < e; ++it) {
    POOL_ITEM_SETUP
    T* dr = dx + (xr - x);
    if (!rows && kh == 2 && kw == 2 && p == 2.0) { /* planar 2 x 2: w / y per input column, vectorised */
      const T* yv = y + yoff;
      const T* g = dy + yoff;
      const T *q0 = xr, *q1 = xr + W;
      T *d0 = dr, *d1 = dr + W;
#pragma omp simd
      for (int64_t q = 0; q < 2 * Wo; ++q) {
        const T yj = yv[q >> 1], gj = g[q >> 1];
        const T f = yj > 0 ? gj / yj : (T)0;
        d0[q] = q0[q] * f;
        d1[q] = q1[q] * f;
      }
      continue;
    }
    if (rows && p == 2.0) { /* sign(w) * |w| / y = w / y: channels inside, vectorised */
      for (int64_t j = 0; j < Wo; ++j) {
        const T* yv = y + yoff + j * C;
        const T* g = dy + yoff + j * C;
        for (int64_t u = 0; u < kh; ++u)
          for (int64_t v = 0; v < kw; ++v) {
            const int64_t o = j * kw * C + (u * W + v) * C;
            const T* xv = xr + o;
            T* dv = dr + o;
#pragma omp simd
            for (int64_t c = 0; c < C; ++c) dv[c] = yv[c] > 0 ? (xv[c] / yv[c]) * g[c] : (T)0;
          }
      }
      continue;
    }
    for (int64_t j = 0; j < Wo; ++j) {
      const T* xw = xr + j * kw * cs;
      T* dw = dr + j * kw * cs;
      for (int64_t c = 0; c < nc; ++c) {
        const T yv = y[yoff + j * nc + c], g = dy[yoff + j * nc + c];
        for (int64_t u = 0; u < kh; ++u)
          for (int64_t v = 0; v < kw; ++v) {
            const int64_t o = (u * W + v) * cs + c;
            const T w = xw[o];
            T local = 0;
            if (yv > 0 && w != 0) {
              const T ratio = fabs(w) / yv;
              local = (p == 2.0 ? ratio : p == 1.0 ? (T)1 : (T)pow((double)ratio, p - 1.0)) * (w > 0 ? 1 : -1);
            }
            dw[o] = local * g;
          }
      }
    }
  }
}

/* ------------------------------------------------------------------------ OpenMP entry points (_parallel.h) */

#define POOL_PARAMS int64_t H, int64_t W, int64_t C, int64_t rows, int64_t kh, int64_t kw, int64_t Ho, int64_t Wo
#define POOL_ARGS H, W, C, rows, kh, kw, Ho, Wo
NNLAB_RANGES(NNLAB_FN(par_bn_fwd), NNLAB_FN(bn_fwd),
             (const T* x, T* y, const T* gamma, const T* beta, T* mean, T* var, T* rstd, T* run_mean, T* run_var,
              double momentum, double eps, int64_t training, int64_t N, int64_t C, int64_t S, int64_t rows),
             (x, y, gamma, beta, mean, var, rstd, run_mean, run_var, momentum, eps, training, N, C, S, rows))
NNLAB_RANGES(NNLAB_FN(par_bn_bwd), NNLAB_FN(bn_bwd),
             (const T* dy, const T* x, T* dx, const T* gamma, const T* mean, const T* rstd, T* dgamma, T* dbeta,
              int64_t training, int64_t N, int64_t C, int64_t S, int64_t rows),
             (dy, x, dx, gamma, mean, rstd, dgamma, dbeta, training, N, C, S, rows))
NNLAB_SLOTS(NNLAB_FN(par_bn_rows_sum), NNLAB_FN(bn_rows_sum), (const T* x, int64_t C, const T* K, double* part),
            (x, C, K, part))
NNLAB_SLOTS(NNLAB_FN(par_bn_rows_sq), NNLAB_FN(bn_rows_sq),
            (const T* x, int64_t C, const T* mt, const T* corr, double* part), (x, C, mt, corr, part))
NNLAB_SLOTS(NNLAB_FN(par_bn_rows_bsum), NNLAB_FN(bn_rows_bsum),
            (const T* dy, const T* x, int64_t C, const T* mean, double* part), (dy, x, C, mean, part))
NNLAB_SLOTS(NNLAB_FN(par_bn_rows_apply), NNLAB_FN(bn_rows_apply),
            (const T* x, T* y, int64_t C, const T* mean, const T* scale, const T* shift),
            (x, y, C, mean, scale, shift))
NNLAB_SLOTS(NNLAB_FN(par_bn_rows_bwd_apply), NNLAB_FN(bn_rows_bwd_apply),
            (const T* dy, const T* x, T* dx, int64_t C, const T* mean, const T* a, const T* bb, const T* cc),
            (dy, x, dx, C, mean, a, bb, cc))
NNLAB_RANGES(NNLAB_FN(par_maxpool_fwd), NNLAB_FN(maxpool_fwd), (const T* x, T* y, uint8_t* idx, POOL_PARAMS),
             (x, y, idx, POOL_ARGS))
NNLAB_RANGES(NNLAB_FN(par_maxpool_bwd), NNLAB_FN(maxpool_bwd), (const T* dy, const uint8_t* idx, T* dx, POOL_PARAMS),
             (dy, idx, dx, POOL_ARGS))
NNLAB_RANGES(NNLAB_FN(par_avgpool_fwd), NNLAB_FN(avgpool_fwd), (const T* x, T* y, T D, POOL_PARAMS),
             (x, y, D, POOL_ARGS))
NNLAB_RANGES(NNLAB_FN(par_avgpool_bwd), NNLAB_FN(avgpool_bwd), (const T* dy, T* dx, T D, POOL_PARAMS),
             (dy, dx, D, POOL_ARGS))
NNLAB_RANGES(NNLAB_FN(par_lppool_fwd), NNLAB_FN(lppool_fwd), (const T* x, T* y, double p, POOL_PARAMS),
             (x, y, p, POOL_ARGS))
NNLAB_RANGES(NNLAB_FN(par_lppool_bwd), NNLAB_FN(lppool_bwd),
             (const T* dy, const T* x, const T* y, T* dx, double p, POOL_PARAMS), (dy, x, y, dx, p, POOL_ARGS))
#undef POOL_PARAMS
#undef POOL_ARGS

#undef POOL_ITEM_SETUP
#undef T
#endif
