/* Fused exact t-SNE gradient pass for CPU (see docs/derivations-tsne.md, section 4.3).

   For rows i in [row_begin, row_end) and all j, with w_ij = 1 / (1 + |y_i - y_j|^2) and d = n_components,
   writes out[i * (2 d + 2) + k]:
     k = 0          S_i   = sum_j w_ij                   (so Z = sum_i S_i - n: the diagonal has w_ii = 1)
     k = 1 .. d     A_i   = sum_j p_ij w_ij (y_i - y_j)   (attraction)
     k = d+1 .. 2d  R_i   = sum_j w_ij^2 (y_i - y_j)      (repulsion, still to be divided by Z)
     k = 2d+1       L_i   = sum_j p_ij log(1 + |y_i - y_j|^2)   only when with_kl != 0, else 0
   One pass over a row of P with everything else recomputed from Y (which stays in cache), so the cost is
   one read of P plus O(n^2) flops and nothing of size n^2 is ever written.  The caller forms
   grad_i = 4 (A_i - R_i / Z)  and  KL = sum p log p + sum_i L_i + log Z.
   Y is stored component-major (d x n) so that the loop over j is contiguous and vectorises.
   Python threads call this on disjoint row ranges (ctypes releases the GIL), so no OpenMP runtime is needed. */
#include <math.h>
#include <stdint.h>

#define TSNE_ROWS(NAME, T, LOG)                                                                        \
  void NAME(const T* P, const T* Yt, int64_t n, int64_t d, int64_t row_begin, int64_t row_end,           \
            int64_t with_kl, T* out) {                                                                   \
    const int64_t stride = 2 * d + 2;                                                                     \
    for (int64_t i = row_begin; i < row_end; ++i) {                                                       \
      const T* p = P + i * n;                                                                             \
      T* o = out + i * stride;                                                                            \
      T s = 0, l = 0;                                                                                     \
      if (d == 2) {                                                                                       \
        /* the common case, unrolled so that everything stays in registers */                             \
        const T* x = Yt;                                                                                  \
        const T* y = Yt + n;                                                                              \
        const T xi = x[i], yi = y[i];                                                                     \
        T ax = 0, ay = 0, rx = 0, ry = 0;                                                                 \
        _Pragma("omp simd reduction(+ : s, ax, ay, rx, ry)")                                              \
        for (int64_t j = 0; j < n; ++j) {                                                                 \
          const T dx = xi - x[j], dy = yi - y[j];                                                         \
          const T w = (T)1 / ((T)1 + dx * dx + dy * dy);                                                  \
          const T pw = p[j] * w, w2 = w * w;                                                              \
          s += w;                                                                                         \
          ax += pw * dx;                                                                                  \
          ay += pw * dy;                                                                                  \
          rx += w2 * dx;                                                                                  \
          ry += w2 * dy;                                                                                  \
        }                                                                                                 \
        o[1] = ax; o[2] = ay; o[3] = rx; o[4] = ry;                                                       \
        if (with_kl) {                                                                                    \
          _Pragma("omp simd reduction(+ : l)")                                                            \
          for (int64_t j = 0; j < n; ++j) {                                                               \
            const T dx = xi - x[j], dy = yi - y[j];                                                       \
            l += p[j] * LOG((T)1 + dx * dx + dy * dy);                                                    \
          }                                                                                               \
        }                                                                                                 \
      } else {                                                                                            \
        for (int64_t k = 1; k <= 2 * d; ++k) o[k] = 0;                                                    \
        for (int64_t j = 0; j < n; ++j) {                                                                 \
          T q = 0;                                                                                        \
          for (int64_t c = 0; c < d; ++c) {                                                               \
            const T diff = Yt[c * n + i] - Yt[c * n + j];                                                 \
            q += diff * diff;                                                                             \
          }                                                                                               \
          const T w = (T)1 / ((T)1 + q);                                                                  \
          const T pw = p[j] * w, w2 = w * w;                                                              \
          s += w;                                                                                         \
          if (with_kl) l += p[j] * LOG((T)1 + q);                                                         \
          for (int64_t c = 0; c < d; ++c) {                                                               \
            const T diff = Yt[c * n + i] - Yt[c * n + j];                                                 \
            o[1 + c] += pw * diff;                                                                        \
            o[1 + d + c] += w2 * diff;                                                                    \
          }                                                                                               \
        }                                                                                                 \
      }                                                                                                   \
      o[0] = s;                                                                                           \
      o[2 * d + 1] = l;                                                                                   \
    }                                                                                                     \
  }

TSNE_ROWS(tsne_rows_f32, float, logf)
TSNE_ROWS(tsne_rows_f64, double, log)
