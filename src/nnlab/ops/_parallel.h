/* OpenMP entry points of the ops' kernels (nnlab/ops/_native.py).

   Every kernel works on a range it is given ([b, e), with a slot for per-thread partial sums) or takes rows from a
   shared counter. The wrappers below run it in an OpenMP team. The library is built with -fopenmp and resolves
   libgomp.so.1 to the copy torch has already loaded, so the team is torch's own intra-op pool: the threads that
   are still spinning after torch's last parallel region pick the kernel up at once. The Python thread pool this
   replaces was a second set of threads competing with those spinning workers for the same cores.

   Without OpenMP (a compiler that lacks it) the pragma is ignored and a wrapper runs its kernel on one thread;
   nnlab_openmp() tells Python which build it got, and Python then splits the work over its own threads. */
#ifndef NNLAB_PARALLEL_H
#define NNLAB_PARALLEL_H
#include <stdint.h>
#ifdef _OPENMP
#include <omp.h>
#define NNLAB_TEAM _Pragma("omp parallel num_threads(threads)")
#define NNLAB_TID ((int64_t)omp_get_thread_num())
#define NNLAB_NT ((int64_t)omp_get_num_threads())
#else
#define NNLAB_TEAM
#define NNLAB_TID ((int64_t)0)
#define NNLAB_NT ((int64_t)1)
#endif
#define NNLAB_UNPAREN(...) __VA_ARGS__

/* par(params..., total, threads): name(args..., b, e) on the team's disjoint ranges of [0, total). */
#define NNLAB_RANGES(par, name, params, args)                                   \
  void par(NNLAB_UNPAREN params, int64_t total, int64_t threads) {              \
    NNLAB_TEAM {                                                                \
      const int64_t t_ = NNLAB_TID, n_ = NNLAB_NT;                              \
      name(NNLAB_UNPAREN args, total * t_ / n_, total * (t_ + 1) / n_);        \
    }                                                                           \
  }
/* The same with each range's slot (the thread's index, < threads) before it. */
#define NNLAB_SLOTS(par, name, params, args)                                    \
  void par(NNLAB_UNPAREN params, int64_t total, int64_t threads) {              \
    NNLAB_TEAM {                                                                \
      const int64_t t_ = NNLAB_TID, n_ = NNLAB_NT;                              \
      name(NNLAB_UNPAREN args, t_, total * t_ / n_, total * (t_ + 1) / n_);    \
    }                                                                           \
  }
/* par(params..., grain, total, threads): name(args..., [slot,] &next, grain, total) on every thread of the team,
   each taking `grain` rows at a time from the shared counter `next`. */
#define NNLAB_SHARED(par, name, params, args)                                   \
  void par(NNLAB_UNPAREN params, int64_t grain, int64_t total, int64_t threads) { \
    int64_t next_ = 0;                                                          \
    NNLAB_TEAM { name(NNLAB_UNPAREN args, &next_, grain, total); }              \
  }
#define NNLAB_SHARED_SLOTS(par, name, params, args)                             \
  void par(NNLAB_UNPAREN params, int64_t grain, int64_t total, int64_t threads) { \
    int64_t next_ = 0;                                                          \
    NNLAB_TEAM { name(NNLAB_UNPAREN args, NNLAB_TID, &next_, grain, total); }   \
  }

void nnlab_openmp(int64_t* out) {
#ifdef _OPENMP
  *out = 1;
#else
  *out = 0;
#endif
}
#endif
