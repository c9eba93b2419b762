/* Native loops for the hand-derived ops (batch norm §1, tiled pools §3 of docs/derivations.md).

   Why C: each op is a few per-element multiply-adds, so its cost is passes over memory. In eager torch every
   intermediate ((x - mu), (x - mu) * scale, dy * centred, each window copy, ...) is a full tensor written and read
   back; here each pass reads its inputs once and keeps intermediates in registers, and a batch-norm channel
   (256 KB for 64 x 32 x 32) is reused from cache by the next pass. The formulas are exactly the ones the torch
   path in batchnorm.py / pooling.py evaluates (same centring, same per-channel coefficients), so both paths
   give the same values up to rounding.

   Layouts: "planar" is contiguous (N, C, S) (S = product of spatial sizes); "rows" is (M, C) with C fastest,
   which covers (N, C) features and channels-last maps (M = N * H * W). Every function works on a half-open
   range [b, e) of channels (batch norm) or output rows (pools), so Python threads (ctypes releases the GIL)
   can split the work without locks. This file includes itself once per element type (T = float, double). */
#ifndef NNLAB_T
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#define NNLAB_T float
#define NNLAB_FN(name) name##_f32
#include __FILE__
#undef NNLAB_T
#undef NNLAB_FN
#define NNLAB_T double
#define NNLAB_FN(name) name##_f64
#include __FILE__
#undef NNLAB_T
#undef NNLAB_FN

#else
#define T NNLAB_T

/* ------------------------------------------------------------------------------------------- batch norm */

/* mean and biased variance per channel c in [b, e). Sums run in double, and the mean is shifted by the channel's
   first value K: mean = K + sum(x - K) / m. For a constant channel every x - K is exactly 0, so the mean is
   exactly the constant and x - mean gives exact zeros (derivations §1.1); the variance is the two-pass
   sum((x - mean)^2) / m, never the cancelling E[x^2] - mean^2. */
void NNLAB_FN(bn_stats)(const T* x, int64_t N, int64_t C, int64_t S, int64_t rows, T* mean, T* var,
                        int64_t b, int64_t e) {
  const double m = (double)N * (double)S;
  if (!rows) {
    for (int64_t c = b; c < e; ++c) {
      const double K = x[c * S];
      double s = 0, q = 0;
      for (int64_t n = 0; n < N; ++n) {
        const T* p = x + (n * C + c) * S;
#pragma omp simd reduction(+ : s)
        for (int64_t i = 0; i < S; ++i) s += (double)p[i] - K;
      }
      const double mu = K + s / m;
      for (int64_t n = 0; n < N; ++n) {
        const T* p = x + (n * C + c) * S;
#pragma omp simd reduction(+ : q)
        for (int64_t i = 0; i < S; ++i) {
          const double d = (double)p[i] - mu;
          q += d * d;
        }
      }
      mean[c] = (T)mu;
      var[c] = (T)(q / m);
    }
    return;
  }
  const int64_t w = e - b;
  double* acc = (double*)calloc((size_t)(3 * w), sizeof(double));
  double *s = acc, *q = acc + w, *K = acc + 2 * w;
  for (int64_t c = 0; c < w; ++c) K[c] = x[b + c];
  for (int64_t r = 0; r < N; ++r) {
    const T* p = x + r * C + b;
#pragma omp simd
    for (int64_t c = 0; c < w; ++c) s[c] += (double)p[c] - K[c];
  }
  for (int64_t c = 0; c < w; ++c) s[c] = K[c] + s[c] / m;  /* s now holds the mean */
  for (int64_t r = 0; r < N; ++r) {
    const T* p = x + r * C + b;
#pragma omp simd
    for (int64_t c = 0; c < w; ++c) {
      const double d = (double)p[c] - s[c];
      q[c] += d * d;
    }
  }
  for (int64_t c = 0; c < w; ++c) {
    mean[b + c] = (T)s[c];
    var[b + c] = (T)(q[c] / m);
  }
  free(acc);
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

/* sum(dy) and sum(dy * (x - mean)) per channel (dbeta and dgamma / rstd of derivations §1.3), in double. */
void NNLAB_FN(bn_bwd_sums)(const T* dy, const T* x, int64_t N, int64_t C, int64_t S, int64_t rows,
                           const T* mean, T* sum_dy, T* sum_dy_xc, int64_t b, int64_t e) {
  if (!rows) {
    for (int64_t c = b; c < e; ++c) {
      const double mu = mean[c];
      double s = 0, q = 0;
      for (int64_t n = 0; n < N; ++n) {
        const T* g = dy + (n * C + c) * S;
        const T* p = x + (n * C + c) * S;
#pragma omp simd reduction(+ : s, q)
        for (int64_t i = 0; i < S; ++i) {
          s += (double)g[i];
          q += (double)g[i] * ((double)p[i] - mu);
        }
      }
      sum_dy[c] = (T)s;
      sum_dy_xc[c] = (T)q;
    }
    return;
  }
  const int64_t w = e - b;
  double* acc = (double*)calloc((size_t)(3 * w), sizeof(double));
  double *s = acc, *q = acc + w, *mu = acc + 2 * w;
  for (int64_t c = 0; c < w; ++c) mu[c] = mean[b + c];
  for (int64_t r = 0; r < N; ++r) {
    const T* g = dy + r * C + b;
    const T* p = x + r * C + b;
#pragma omp simd
    for (int64_t c = 0; c < w; ++c) {
      s[c] += (double)g[c];
      q[c] += (double)g[c] * ((double)p[c] - mu[c]);
    }
  }
  for (int64_t c = 0; c < w; ++c) {
    sum_dy[b + c] = (T)s[c];
    sum_dy_xc[b + c] = (T)q[c];
  }
  free(acc);
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

/* ----------------------------------------------------------------------------------------------- pools

   Tiled windows only (stride = kernel, no padding or dilation): each input element lies in at most one window.
   Planar: x is (P, H, W) with P = N * C planes, and the work items are the P * Ho output rows.
   Rows (channels-last): x is (N, H, W, C), the items are the N * Ho output rows, each for all C channels.
   Within a window, k = u * kw + v is the row-major position (what the max pool's index records). */

#define POOL_ITEM_SETUP                                                                 \
  const int64_t plane = it / Ho, i = it % Ho;                                           \
  const T* xr = x + (rows ? (plane * H + i * kh) * W * C : (plane * H + i * kh) * W);    \
  const int64_t yoff = rows ? (plane * Ho + i) * Wo * C : (plane * Ho + i) * Wo;

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
        /* The maximum first, then the first position holding it (or the first NaN, which torch.max returns),
           as selects rather than branches so that the loop vectorises. */
        const T m01 = v1 > v0 ? v1 : v0, m23 = v3 > v2 ? v3 : v2;
        const T m = m23 > m01 ? m23 : m01;
        const int n0 = v0 != v0, n1 = v1 != v1, n2 = v2 != v2, n3 = v3 != v3;
        const int nan = n0 | n1 | n2 | n3;
        const int h0 = nan ? n0 : v0 == m, h1 = nan ? n1 : v1 == m, h2 = nan ? n2 : v2 == m;
        const int k = h0 ? 0 : h1 ? 1 : h2 ? 2 : 3;
        yo[j] = nan ? (T)NAN : m;
        io[j] = (uint8_t)k;
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
#pragma omp simd simdlen(16)
      for (int64_t j = 0; j < Wo; ++j) {
        const T gj = g[j];
        const uint8_t k = io[j];
        r0[2 * j] = k == 0 ? gj : (T)0;
        r0[2 * j + 1] = k == 1 ? gj : (T)0;
        r1[2 * j] = k == 2 ? gj : (T)0;
        r1[2 * j + 1] = k == 3 ? gj : (T)0;
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

#undef POOL_ITEM_SETUP
#undef T
#endif
