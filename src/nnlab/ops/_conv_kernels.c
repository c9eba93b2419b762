/* Direct convolution for conv2d's stride-1 path (derivations §2; nnlab/ops/conv.py), float32.

   Why a kernel of its own: the three products of §2.2 (Y = W·X_col, dX = col2im(Wᵀ·dY), dW = Σ dY·X_colᵀ) are
   thin GEMMs here (65 536 × 288 × 64 for a 32→64 3×3 layer on a batch of 64 32×32 maps) on which a library GEMM
   reaches half of what the CPU can do, and the row-shift path adds copies of X around them. A register-blocked
   "implicit GEMM" reads the receptive fields straight from a padded NHWC copy of the input, keeps a tile of
   P output pixels × B·VL output channels in vector registers for the whole sum over (tap, input channel),
   broadcasts one input value per pixel and loads one weight vector per channel block, so every loaded value
   feeds B or P fused multiply-adds and nothing is written until the tile is done.

   The same tile computes all three products:
   - forward: y[n, i, j, o] = b[o] + Σ_{u, v, c} xp[n, i + u·dh, j + v·dw, c] · w[o, c, u, v], xp = the input
     padded (conv_rows);
   - dX: the transposed convolution is the forward one of dY padded by d·(k − 1) − p with the kernel flipped and
     its two channel axes swapped (conv.py packs that weight; conv_rows again);
   - dW: dw[u, v, c, o] = Σ_{n, i, j} xp[n, i + u·dh, j + v·dw, c] · dy[n, i, j, o] (conv_dw): the tile is now
     P (tap, input channel) pairs × B·VL output channels and the sum runs over pixels; db rides along.

   Vectors are GCC/Clang vector extensions, not intrinsics: the same source is a 16-float (zmm) kernel where
   AVX-512 exists and an 8- or 4-float one elsewhere, with the tile sized to the register file in each case. Only
   the 16 × 16 transposes between planar and NHWC layouts use AVX-512 intrinsics, with scalar copies elsewhere.
   Work sharing: Python threads (ctypes releases the GIL) call the same function, and each takes the next `grain`
   rows (output rows (n, i), or padded rows) from a shared counter until none are left, instead of a fixed half:
   on a shared machine a thread that the OS delays, or that starts late behind a spinning OpenMP worker of torch,
   then leaves its rows to the others rather than making them wait for it at the end. The rows are disjoint, so no
   locks; conv_dw writes per-thread partial sums (slot). */
#include <stdint.h>
#include <string.h>

#include "_parallel.h"
#ifdef __AVX512F__
#include <immintrin.h>
#endif

#if defined(__AVX512F__)
#define VL 16
#define NACC 24 /* 32 zmm registers: 24 accumulators, up to 4 weight vectors, a broadcast and spare */
#elif defined(__AVX__)
#define VL 8
#define NACC 12 /* 16 ymm registers */
#else
#define VL 4
#define NACC 8 /* SSE/NEON: 16 registers or more, 128-bit */
#endif
#define BMAX 4  /* vectors of output channels per tile */
#define PMAX 12 /* pixels (or dW rows) per tile: past this the broadcasts alone saturate the loads */

typedef float vf __attribute__((vector_size(VL * sizeof(float))));

static inline vf ld(const float* p) {
  vf v;
  memcpy(&v, p, sizeof v); /* an unaligned vector load */
  return v;
}

static inline void st(float* p, vf v) { memcpy(p, &v, sizeof v); }

static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* The next rows [*a, *b) of [0, total) for this thread, 0 when all are taken. */
static inline int take_rows(int64_t* next, int64_t grain, int64_t total, int64_t* a, int64_t* b) {
  *a = __atomic_fetch_add(next, grain, __ATOMIC_RELAXED);
  *b = min64(*a + grain, total);
  return *a < total;
}

/* The largest tile of B vectors the registers hold, at most PMAX rows. */
static inline int pmax_for(int B) {
  const int p = NACC / B;
  return p < 1 ? 1 : p > PMAX ? PMAX : p;
}

/* --------------------------------------------------------------------------------------- the two tiles */

/* out[p][b·VL + l] = init[b·VL + l] + Σ_t Σ_c x[p·xs + toff[t] + c] · w[t·C·ws + c·ws + b·VL + l]: P pixels
   (pixel stride xs) against B weight vectors, summed over ntaps taps (offsets toff) and C channels. P and B are
   constants after inlining, so gcc unrolls both loops and keeps acc in registers. */
static inline __attribute__((always_inline)) void conv_tile(const int P, const int B, const float* x, int64_t xs,
                                                            const int64_t* toff, int64_t ntaps, int64_t C,
                                                            const float* w, int64_t ws, const float* init,
                                                            float* out) {
  vf acc[PMAX][BMAX];
#pragma GCC unroll 16
  for (int p = 0; p < P; ++p)
#pragma GCC unroll 4
    for (int b = 0; b < B; ++b) acc[p][b] = init ? ld(init + b * VL) : (vf){0};
  for (int64_t t = 0; t < ntaps; ++t) {
    const float* xt = x + toff[t];
    const float* wt = w + t * C * ws;
    for (int64_t c = 0; c < C; ++c) {
      vf wv[BMAX];
#pragma GCC unroll 4
      for (int b = 0; b < B; ++b) wv[b] = ld(wt + c * ws + b * VL);
#pragma GCC unroll 16
      for (int p = 0; p < P; ++p) {
        const float xv = xt[p * xs + c];
#pragma GCC unroll 4
        for (int b = 0; b < B; ++b) acc[p][b] += wv[b] * xv;
      }
    }
  }
#pragma GCC unroll 16
  for (int p = 0; p < P; ++p)
#pragma GCC unroll 4
    for (int b = 0; b < B; ++b) st(out + (p * B + b) * VL, acc[p][b]);
}

/* acc[p][b·VL + l] += Σ_{r < rows, j < n} x[r·xr + j·xs + off[p]] · g[r·gr + j·gs + b·VL + l]: the dW tile, P
   (tap, input channel) pairs × B vectors of output channels, accumulated in place over rows × n pixels. Rows of
   the tile may come from different taps (off), so a layer with few input channels still fills the tile. */
static inline __attribute__((always_inline)) void dw_tile(const int P, const int B, const float* x, int64_t xr,
                                                          int64_t xs, const int64_t* off, const float* g,
                                                          int64_t gr, int64_t gs, int64_t rows, int64_t n,
                                                          float* accm, int64_t lda) {
  vf acc[PMAX][BMAX];
#pragma GCC unroll 16
  for (int p = 0; p < P; ++p)
#pragma GCC unroll 4
    for (int b = 0; b < B; ++b) acc[p][b] = ld(accm + p * lda + b * VL);
  for (int64_t r = 0; r < rows; ++r) {
    const float* xrow[PMAX];
#pragma GCC unroll 16
    for (int p = 0; p < P; ++p) xrow[p] = x + r * xr + off[p];
    const float* grow = g + r * gr;
    for (int64_t j = 0; j < n; ++j) {
      vf gv[BMAX];
#pragma GCC unroll 4
      for (int b = 0; b < B; ++b) gv[b] = ld(grow + j * gs + b * VL);
#pragma GCC unroll 16
      for (int p = 0; p < P; ++p) {
        const float xv = xrow[p][j * xs];
#pragma GCC unroll 4
        for (int b = 0; b < B; ++b) acc[p][b] += gv[b] * xv;
      }
    }
  }
#pragma GCC unroll 16
  for (int p = 0; p < P; ++p)
#pragma GCC unroll 4
    for (int b = 0; b < B; ++b) st(accm + p * lda + b * VL, acc[p][b]);
}

/* One non-inlined copy of each tile per (P, B), chosen at run time through a table: the loop bounds stay
   compile-time constants inside. */
typedef void (*conv_tile_fn)(const float*, int64_t, const int64_t*, int64_t, int64_t, const float*, int64_t,
                             const float*, float*);
typedef void (*dw_tile_fn)(const float*, int64_t, int64_t, const int64_t*, const float*, int64_t, int64_t, int64_t,
                           int64_t, float*, int64_t);

#define TILES(P, B)                                                                                              \
  static void conv_tile_##P##_##B(const float* x, int64_t xs, const int64_t* toff, int64_t ntaps, int64_t C,   \
                                  const float* w, int64_t ws, const float* init, float* out) {                 \
    conv_tile(P, B, x, xs, toff, ntaps, C, w, ws, init, out);                                                  \
  }                                                                                                            \
  static void dw_tile_##P##_##B(const float* x, int64_t xr, int64_t xs, const int64_t* off, const float* g,      \
                                int64_t gr, int64_t gs, int64_t rows, int64_t n, float* accm, int64_t lda) {    \
    dw_tile(P, B, x, xr, xs, off, g, gr, gs, rows, n, accm, lda);                                              \
  }
#define TILES_B(B)                                                                                               \
  TILES(1, B) TILES(2, B) TILES(3, B) TILES(4, B) TILES(5, B) TILES(6, B) TILES(7, B) TILES(8, B) TILES(9, B) \
      TILES(10, B) TILES(11, B) TILES(12, B)
TILES_B(1)
TILES_B(2)
TILES_B(3)
TILES_B(4)
#define ROW(B)                                                                                                  \
  {conv_tile_1_##B, conv_tile_2_##B, conv_tile_3_##B, conv_tile_4_##B,  conv_tile_5_##B,  conv_tile_6_##B,     \
   conv_tile_7_##B, conv_tile_8_##B, conv_tile_9_##B, conv_tile_10_##B, conv_tile_11_##B, conv_tile_12_##B}
static const conv_tile_fn CONV_TILES[BMAX][PMAX] = {ROW(1), ROW(2), ROW(3), ROW(4)};
#undef ROW
#define ROW(B)                                                                                             \
  {dw_tile_1_##B, dw_tile_2_##B, dw_tile_3_##B, dw_tile_4_##B,  dw_tile_5_##B,  dw_tile_6_##B,             \
   dw_tile_7_##B, dw_tile_8_##B, dw_tile_9_##B, dw_tile_10_##B, dw_tile_11_##B, dw_tile_12_##B}
static const dw_tile_fn DW_TILES[BMAX][PMAX] = {ROW(1), ROW(2), ROW(3), ROW(4)};
#undef ROW

/* Split n items into the fewest tiles of at most `most`, as even as possible (sizes differ by at most one): a
   32-pixel row with 6-pixel tiles is 5+5+5+5+6+6, not 6·5+2 with a tile that wastes most of its registers. */
static inline int64_t tiles_of(int64_t n, int64_t most) { return (n + most - 1) / most; }
static inline int64_t tile_start(int64_t k, int64_t n, int64_t count) { return n * k / count; }

/* Vectors of output channels per block: all of them in blocks of at most BMAX, as even as possible. */
static inline int64_t blocks_of(int64_t nv) { return (nv + BMAX - 1) / BMAX; }

/* The vector width this build uses: buffers of channels are rounded up to a multiple of it. */
void conv_lanes(int64_t* out) { *out = VL; }

/* ------------------------------------------------------------------------------------ layout copies */

#ifdef __AVX512F__
/* out[s·os + c] = in[c·is + s] for a 16 × 16 block, rows s < rows and lanes c in cols written: loads and stores
   stay whole vectors and the shuffles sort the lanes, where a scalar copy from planar data reads one float per
   cache line of 16 planes 4 KB apart. */
static void transpose16_masked(const float* in, int64_t is, float* out, int64_t os, int rows, __mmask16 cols) {
  __m512 r[16], t[16];
  for (int k = 0; k < 16; ++k) r[k] = _mm512_loadu_ps(in + k * is);
  for (int k = 0; k < 16; k += 2) {
    t[k] = _mm512_unpacklo_ps(r[k], r[k + 1]);
    t[k + 1] = _mm512_unpackhi_ps(r[k], r[k + 1]);
  }
  for (int k = 0; k < 16; k += 4) {
    r[k] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[k]), _mm512_castps_pd(t[k + 2])));
    r[k + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[k]), _mm512_castps_pd(t[k + 2])));
    r[k + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[k + 1]), _mm512_castps_pd(t[k + 3])));
    r[k + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[k + 1]), _mm512_castps_pd(t[k + 3])));
  }
  /* r[4q + m] now holds, in each 128-bit lane L, element m of the 4-row group q at column 4L..4L+3: gather the
     lanes (four 128-bit blocks from groups 0-3) in two rounds of 128-bit shuffles */
  for (int m = 0; m < 4; ++m) {
    t[m] = _mm512_shuffle_f32x4(r[m], r[4 + m], 0x88);      /* lanes 0, 2 of group 0 | lanes 0, 2 of group 1 */
    t[4 + m] = _mm512_shuffle_f32x4(r[m], r[4 + m], 0xdd);  /* lanes 1, 3 */
    t[8 + m] = _mm512_shuffle_f32x4(r[8 + m], r[12 + m], 0x88);
    t[12 + m] = _mm512_shuffle_f32x4(r[8 + m], r[12 + m], 0xdd);
  }
  for (int m = 0; m < 4; ++m) {
    r[m] = _mm512_shuffle_f32x4(t[m], t[8 + m], 0x88);
    r[4 + m] = _mm512_shuffle_f32x4(t[4 + m], t[12 + m], 0x88);
    r[8 + m] = _mm512_shuffle_f32x4(t[m], t[8 + m], 0xdd);
    r[12 + m] = _mm512_shuffle_f32x4(t[4 + m], t[12 + m], 0xdd);
  }
  for (int m = 0; m < rows; ++m) _mm512_mask_storeu_ps(out + m * os, cols, r[m]);
}

static void transpose16(const float* in, int64_t is, float* out, int64_t os) {
  transpose16_masked(in, is, out, os, 16, 0xffff);
}
#endif

/* Destination bytes transposed per group of rows: long runs of each source plane (about 30 rows of a 32 × 32
   map at 64 channels) for the prefetchers, destination and source still within a 1 MB L2. Of 16 KB to 512 KB,
   256 KB was fastest on Zen 4 (2.9 ms for (64, 64, 32, 32), against 5.3 ms at 16 KB and 1.2 ms for a memcpy). */
#define PAD_GROUP_BYTES (256 * 1024)

/* dst[n, r, s, c] = src[n, c, r - pt, s - pl] inside the source, 0 elsewhere (the zero padding, and channels
   C..Cp-1, which let the kernels load whole vectors): dst is (N, Hp, Wp, Cp) contiguous, taken by rows of N·Hp.
   src has any strides (contiguous, channels-last, or the stride-0 dY of a sum), so one pass both pads and
   converts to NHWC. pt/pl may be negative (a crop). */
void pad_nhwc_f32(const float* src, int64_t sN, int64_t sC, int64_t sH, int64_t sW, int64_t C, int64_t H,
                  int64_t W, float* dst, int64_t Hp, int64_t Wp, int64_t Cp, int64_t pt, int64_t pl, int64_t* next,
                  int64_t grain, int64_t total) {
  const int64_t s0 = pl > 0 ? pl : 0, s1 = min64(Wp, W + pl); /* dst columns that come from the source */
  /* Planar sources: pixels [s0, sv) and channels [0, cv) of every row go through 16 × 16 vector transposes, the
     rest element by element. */
  int64_t sv = s0, cv = 0;
#ifdef __AVX512F__
  if (sC != 1 && sW == 1 && C >= 16) {
    sv = s0 + (s1 - s0) / 16 * 16;
    cv = C / 16 * 16;
  }
#endif
  for (int64_t r0, r1; take_rows(next, grain, total, &r0, &r1);) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t n = r / Hp, h = r % Hp - pt;
      float* d = dst + r * Wp * Cp;
      if (h < 0 || h >= H || s1 <= s0) {
        memset(d, 0, (size_t)(Wp * Cp) * sizeof(float));
        continue;
      }
      memset(d, 0, (size_t)(s0 * Cp) * sizeof(float));
      memset(d + s1 * Cp, 0, (size_t)((Wp - s1) * Cp) * sizeof(float));
      const float* srow = src + n * sN + h * sH + (s0 - pl) * sW;
      for (int64_t s = s0; s < s1; ++s) {
        float* dp = d + s * Cp;
        const float* sp = srow + (s - s0) * sW;
        if (sC == 1) {
          memcpy(dp, sp, (size_t)C * sizeof(float));
        } else {
          for (int64_t c = s < sv ? cv : 0; c < C; ++c) dp[c] = sp[c * sC];
        }
        memset(dp + C, 0, (size_t)(Cp - C) * sizeof(float));
      }
    }
#ifdef __AVX512F__
    /* Channel blocks outside the rows of a cache-sized group: the 16 source planes of a block are read row after
       row, each a sequential stream, where pixel-major order would touch every plane (a page each, 4 KB apart)
       once per 16 pixels; the group's destination rows stay in cache for all channel blocks. */
    const int64_t group = 1 + PAD_GROUP_BYTES / (int64_t)(Wp * Cp * sizeof(float));
    for (int64_t g0 = r0; g0 < r1; g0 += group)
      for (int64_t c = 0; c < cv; c += 16)
        for (int64_t r = g0; r < min64(g0 + group, r1); ++r) {
          const int64_t n = r / Hp, h = r % Hp - pt;
          if (h < 0 || h >= H) continue;
          const float* srow = src + n * sN + h * sH + (s0 - pl) + c * sC;
          float* d = dst + r * Wp * Cp + c;
          for (int64_t s = s0; s < sv; s += 16) transpose16(srow + (s - s0), sC, d + s * Cp, Cp);
        }
#endif
  }
}

/* ------------------------------------------------------------------------------ forward and dX products */

/* y[o·ysC + j·ysW] = row[j·BV + o] for j < Wo, o < nlanes. row has room for Wo rounded up to VL pixels (a
   transpose of the last pixels reads, and drops, whatever is past Wo). */
static void store_row(const float* row, int64_t BV, int64_t Wo, int64_t nlanes, float* y, int64_t ysC,
                      int64_t ysW) {
  if (ysC == 1) { /* channels-last: each pixel's channels are contiguous */
    for (int64_t j = 0; j < Wo; ++j) memcpy(y + j * ysW, row + j * BV, (size_t)nlanes * sizeof(float));
    return;
  }
#ifdef __AVX512F__
  if (ysW == 1) { /* planar: 16 channels × 16 pixels at a time, the last ones masked */
    for (int64_t o = 0; o < nlanes; o += 16)
      for (int64_t j = 0; j < Wo; j += 16) {
        const int64_t nj = min64(16, Wo - j);
        transpose16_masked(row + j * BV + o, BV, y + o * ysC + j, ysC, (int)min64(16, nlanes - o),
                           (__mmask16)((1u << nj) - 1));
      }
    return;
  }
#endif
  for (int64_t o = 0; o < nlanes; ++o)
    for (int64_t j = 0; j < Wo; ++j) y[o * ysC + j * ysW] = row[j * BV + o];
}

/* y[n, o, i, j] (strides ysN, ysC, ysH, ysW) = bias[o] + Σ_{u, v, c} xp[n, i + u·dh, j + v·dw, c] · w[u, v, c, o]
   for output rows (n, i) of N·Ho (taken from the counter) and every j < Wo, o < O. xp: (N, Hp, Wp, ·) with
   pixel stride xs and C channels read; w: (kh, kw, C, Op) with Op = O rounded up to VL and zeros past O; bias: Op
   values or NULL; rows: Wr·Op floats of scratch per thread (slot), Wr = Wo rounded up to VL. */
void conv_rows_f32(const float* xp, int64_t Hp, int64_t Wp, int64_t xs, int64_t C, const float* w, int64_t Op,
                   int64_t O, const float* bias, int64_t kh, int64_t kw, int64_t dh, int64_t dw, float* y,
                   int64_t Ho, int64_t Wo, int64_t ysN, int64_t ysC, int64_t ysH, int64_t ysW, float* rows,
                   int64_t slot, int64_t* next, int64_t grain, int64_t total) {
  int64_t toff[kh * kw];
  for (int64_t u = 0; u < kh; ++u)
    for (int64_t v = 0; v < kw; ++v) toff[u * kw + v] = (u * dh * Wp + v * dw) * xs;
  const int64_t nv = Op / VL, nb = blocks_of(nv);
  /* Tiles write a whole output row of the block, pixel-major, here; channels-last output copies each pixel's
     channels out, planar output transposes the row (its channels are Wo floats apart). */
  float* rowbuf = rows + slot * ((Wo + VL - 1) / VL * VL) * Op;
  for (int64_t r0, r1; take_rows(next, grain, total, &r0, &r1);)
    for (int64_t ob = 0; ob < nb; ++ob) { /* outside the rows: one block's weights stay in cache for all of them */
      const int64_t v0 = tile_start(ob, nv, nb), B = tile_start(ob + 1, nv, nb) - v0, o0 = v0 * VL;
      const int64_t nlanes = min64(O - o0, B * VL), BV = B * VL;
      const int64_t P = pmax_for((int)B), nt = tiles_of(Wo, P);
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t n = r / Ho, i = r % Ho;
        const float* xrow = xp + ((n * Hp + i) * Wp) * xs;
        for (int64_t k = 0; k < nt; ++k) {
          const int64_t j0 = tile_start(k, Wo, nt), pj = tile_start(k + 1, Wo, nt) - j0;
          CONV_TILES[B - 1][pj - 1](xrow + j0 * xs, xs, toff, kh * kw, C, w + o0, Op, bias ? bias + o0 : NULL,
                                    rowbuf + j0 * BV);
        }
        store_row(rowbuf, BV, Wo, nlanes, y + n * ysN + i * ysH + o0 * ysC, ysC, ysW);
      }
    }
}

/* ------------------------------------------------------------------------------------------ dW and db */

/* Pixels per dW tile call: enough that loading and storing its accumulators is a small part of the call, few
   enough that the chunk of dY (pixels × Op floats) is reread from L1/L2 by every (tap, channel block). */
#define DW_CHUNK 128

/* part[slot][u][v][c][o] += Σ xp[n, i + u·dh, j + v·dw, c] · gp[n, i + qt, j + ql, o] over output rows (n, i)
   of N·Ho (taken from the counter) and j < Wo; dbpart[slot][o] += Σ gp[n, i + qt, j + ql, o] when dbpart is not
   NULL. xp: (N, Hp, Wp, C); gp: dY inside a (N, Hq, Wq, Op) buffer at offset (qt, ql), zeros in channels O..Op-1;
   part: zeroed by the caller, (slots, kh, kw, C, Op). */
void conv_dw_f32(const float* xp, int64_t Hp, int64_t Wp, int64_t C, const float* gp, int64_t Hq, int64_t Wq,
                 int64_t Op, int64_t qt, int64_t ql, int64_t kh, int64_t kw, int64_t dh, int64_t dw, int64_t Ho,
                 int64_t Wo, float* part, float* dbpart, int64_t slot, int64_t* next, int64_t grain,
                 int64_t total) {
  float* acc = part + slot * kh * kw * C * Op;
  const int64_t nv = Op / VL, nb = blocks_of(nv), K = kh * kw * C;
  int64_t toff[kh * kw];
  for (int64_t u = 0; u < kh; ++u)
    for (int64_t v = 0; v < kw; ++v) toff[u * kw + v] = (u * dh * Wp + v * dw) * C;
  const int64_t chunk = Wo >= DW_CHUNK ? 1 : DW_CHUNK / Wo;
  for (int64_t r0, r1; take_rows(next, grain, total, &r0, &r1);)
    for (int64_t r = r0; r < r1;) {
      const int64_t n = r / Ho, i = r % Ho, rows = min64(min64(chunk, Ho - i), r1 - r);
      const float* g = gp + ((n * Hq + i + qt) * Wq + ql) * Op;
      if (dbpart) {
        float* db = dbpart + slot * Op;
        for (int64_t q = 0; q < rows; ++q)
          for (int64_t j = 0; j < Wo; ++j)
            for (int64_t v = 0; v < nv; ++v) st(db + v * VL, ld(db + v * VL) + ld(g + (q * Wq + j) * Op + v * VL));
      }
      const float* x = xp + (n * Hp + i) * Wp * C;
      for (int64_t ob = 0; ob < nb; ++ob) {
        const int64_t v0 = tile_start(ob, nv, nb), B = tile_start(ob + 1, nv, nb) - v0, o0 = v0 * VL;
        const int64_t P = pmax_for((int)B), nt = tiles_of(K, P);
        for (int64_t t = 0; t < nt; ++t) { /* rows k = (u·kw + v)·C + c of dW, as laid out in part */
          const int64_t k0 = tile_start(t, K, nt), pk = tile_start(t + 1, K, nt) - k0;
          int64_t off[PMAX];
          for (int64_t p = 0; p < pk; ++p) off[p] = toff[(k0 + p) / C] + (k0 + p) % C;
          DW_TILES[B - 1][pk - 1](x, Wp * C, C, off, g + o0, Wq * Op, Op, rows, Wo, acc + k0 * Op + o0, Op);
        }
      }
      r += rows;
    }
}

/* ------------------------------------------------------------------------ OpenMP entry points (_parallel.h) */

NNLAB_SHARED(par_pad_nhwc_f32, pad_nhwc_f32,
             (const float* src, int64_t sN, int64_t sC, int64_t sH, int64_t sW, int64_t C, int64_t H, int64_t W,
              float* dst, int64_t Hp, int64_t Wp, int64_t Cp, int64_t pt, int64_t pl),
             (src, sN, sC, sH, sW, C, H, W, dst, Hp, Wp, Cp, pt, pl))
NNLAB_SHARED_SLOTS(par_conv_rows_f32, conv_rows_f32,
                   (const float* xp, int64_t Hp, int64_t Wp, int64_t xs, int64_t C, const float* w, int64_t Op,
                    int64_t O, const float* bias, int64_t kh, int64_t kw, int64_t dh, int64_t dw, float* y,
                    int64_t Ho, int64_t Wo, int64_t ysN, int64_t ysC, int64_t ysH, int64_t ysW, float* rows),
                   (xp, Hp, Wp, xs, C, w, Op, O, bias, kh, kw, dh, dw, y, Ho, Wo, ysN, ysC, ysH, ysW, rows))
NNLAB_SHARED_SLOTS(par_conv_dw_f32, conv_dw_f32,
                   (const float* xp, int64_t Hp, int64_t Wp, int64_t C, const float* gp, int64_t Hq, int64_t Wq,
                    int64_t Op, int64_t qt, int64_t ql, int64_t kh, int64_t kw, int64_t dh, int64_t dw, int64_t Ho,
                    int64_t Wo, float* part, float* dbpart),
                   (xp, Hp, Wp, C, gp, Hq, Wq, Op, qt, ql, kh, kw, dh, dw, Ho, Wo, part, dbpart))
