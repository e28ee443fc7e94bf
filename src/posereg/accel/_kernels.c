/* Compact CPU kernels behind posereg.accel.fused (optional; built on first use by
   posereg/accel/_native.py with the system C compiler, loaded with ctypes).

   Why: the eager formulas of so3.py / quaternion.py run as 10-40 tensor kernels with a
   temporary each, 10-80x above the memory floor at large batches. Here each kernel walks
   the batch in blocks of BLOCK elements: it gathers the interleaved inputs ((N, 3), (N, 4)
   or (N, 3, 3), row-major) into component arrays on the stack, evaluates the formula
   element-wise on those arrays (a loop the compiler vectorises, calling glibc's SIMD
   sin/atan2 from libmvec when the build defines POSEREG_MVEC), and scatters the results
   back: one pass over memory.

   The formulas are the eager ones, branch for branch:
     rotvec -> matrix      half-angle quaternion (cos(t/2), sin(t/2)/t v), Shoemake's entries
     quaternion -> matrix  Shoemake's entries with s = 2 / |q|^2
     matrix -> rotvec      largest-diagonal quaternion (Markley 2008), then 2 atan2(|v|, w)
     geodesic distance     atan2(|sum_k R1[k] x R2[k]|, <R1, R2>_F - 1), and its gradient

   Threads: each kernel takes the thread count to use (torch.get_num_threads(), passed by
   the caller) and, when the build has OpenMP (-fopenmp) and the batch is at least
   PARALLEL_MIN elements, splits its blocks over an OpenMP team. The build links libgomp.so.1,
   the runtime torch loads from torch/lib, so the dynamic loader binds this library to torch's
   copy: one runtime and one thread pool, whose workers torch keeps warm. (A second pool of
   Python threads was tried first: it competed with torch's spinning workers and was slower.)
   Without -fopenmp the `omp parallel` pragmas are ignored and the loops run on one thread.
   Threads take whole blocks, and a block is computed the same way whichever thread takes it,
   so results do not depend on the thread count (the checksum's rounding may; it is only
   tested for being finite).

   Every kernel but the backward one returns a checksum: a sum over the batch of a quantity
   that is NaN or inf whenever an input entry is (or the formula would overflow or divide by
   a zero quaternion). The Python side falls back to the eager function when it is not
   finite, which then validates the input and raises the usual ValueError.

   The file includes itself once per floating type: the first pass (POSEREG_TEMPLATE
   undefined) sets real / SUFFIX / the math functions and includes the template part. */

#ifndef POSEREG_TEMPLATE

#include <math.h>
#include <stdint.h>

#ifndef BLOCK
#define BLOCK 256
#endif

#ifdef POSEREG_MVEC
/* Let the vectoriser call libmvec's SIMD variants (_ZGVdN4v_sin, ...). glibc's math.h only
   declares them under -ffast-math, which would also drop NaN/inf semantics. */
#pragma omp declare simd notinbranch
double sin(double) __attribute__((const));
#pragma omp declare simd notinbranch
double atan2(double, double) __attribute__((const));
#pragma omp declare simd notinbranch
float sinf(float) __attribute__((const));
#pragma omp declare simd notinbranch
float atan2f(float, float) __attribute__((const));
#endif

#ifndef PARALLEL_MIN
#define PARALLEL_MIN 16384 /* smaller batches take a few microseconds: not worth waking a team */
#endif

/* The block loop of every kernel: blocks split statically over `threads` OpenMP threads when
   the batch `n` is large enough (the names `n`, `threads` and, for FOR_BLOCKS_CHECK, the
   checksum `check` must be in scope). */
#define TEAM num_threads(threads) if (threads > 1 && n >= PARALLEL_MIN)
#define FOR_BLOCKS(start)                                                                 \
    _Pragma("omp parallel for schedule(static) TEAM")                                     \
    for (int64_t start = 0; start < n; start += BLOCK)
#define FOR_BLOCKS_CHECK(start)                                                           \
    _Pragma("omp parallel for schedule(static) reduction(+ : check) TEAM")                \
    for (int64_t start = 0; start < n; start += BLOCK)

#ifdef _OPENMP
#include <omp.h>
#endif

/* How many threads the kernels' loops over `n` elements run on when asked for `threads`
   (for tests: 1 without OpenMP). */
int posereg_team_size(int64_t n, int threads) {
    int size = 1;
#ifdef _OPENMP
    _Pragma("omp parallel TEAM")
    {
        _Pragma("omp single")
        size = omp_get_num_threads();
    }
#endif
    (void)n, (void)threads;
    return size;
}

#define SIMD _Pragma("omp simd")
#define SIMD_CHECK _Pragma("omp simd reduction(+ : check)") /* sums into `check` */
#define CAT_(a, b) a##_##b
#define CAT(a, b) CAT_(a, b)
#define NAME(f) CAT(f, SUFFIX)
#define MIN(a, b) ((a) < (b) ? (a) : (b))
/* Interleaved rows <-> component arrays: element i of `m` has `w` entries at src[w i + j]. */
#define GATHER(comp, src, w, m)                                                           \
    for (int64_t i_ = 0; i_ < (m); i_++)                                                  \
        for (int j_ = 0; j_ < (w); j_++) (comp)[j_][i_] = (src)[(w) * i_ + j_]
#define SCATTER(dst, comp, w, m)                                                          \
    for (int64_t i_ = 0; i_ < (m); i_++)                                                  \
        for (int j_ = 0; j_ < (w); j_++) (dst)[(w) * i_ + j_] = (comp)[j_][i_]

#define POSEREG_TEMPLATE
#define real float
#define SUFFIX f32
#define SIN_ sinf
#define ATAN2_ atan2f
#define SQRT_ sqrtf
#include "_kernels.c"
#undef real
#undef SUFFIX
#undef SIN_
#undef ATAN2_
#undef SQRT_

#define real double
#define SUFFIX f64
#define SIN_ sin
#define ATAN2_ atan2
#define SQRT_ sqrt
#include "_kernels.c"

#else /* POSEREG_TEMPLATE: one instantiation for `real` */

/* The nine entries of R = I + s (w [v]x + [v]x^2), v = (x, y, z) (Shoemake 1985). */
#define QUATERNION_ENTRIES(e, i, w, x, y, z, s)                                           \
    do {                                                                                  \
        const real sx_ = (s) * (x), sy_ = (s) * (y), sz_ = (s) * (z);                     \
        const real xx_ = sx_ * (x), yy_ = sy_ * (y), zz_ = sz_ * (z);                     \
        const real xy_ = sx_ * (y), xz_ = sx_ * (z), yz_ = sy_ * (z);                     \
        const real wx_ = sx_ * (w), wy_ = sy_ * (w), wz_ = sz_ * (w);                     \
        e[0][i] = 1 - (yy_ + zz_); e[1][i] = xy_ - wz_; e[2][i] = xz_ + wy_;              \
        e[3][i] = xy_ + wz_; e[4][i] = 1 - (xx_ + zz_); e[5][i] = yz_ - wx_;              \
        e[6][i] = xz_ - wy_; e[7][i] = yz_ + wx_; e[8][i] = 1 - (xx_ + yy_);              \
    } while (0)

double NAME(rotvec_to_matrix)(const real *restrict in, real *restrict out, int64_t n, int threads) {
    real check = 0;
    FOR_BLOCKS_CHECK(start) {
        const int64_t m = MIN(n - start, BLOCK);
        const real *src = in + 3 * start;
        real *dst = out + 9 * start;
        real v[3][BLOCK], e[9][BLOCK];
        GATHER(v, src, 3, m);
        SIMD_CHECK for (int64_t i = 0; i < m; i++) {
            const real x = v[0][i], y = v[1][i], z = v[2][i];
            const real t2 = x * x + y * y + z * z;
            const real t = SQRT_(t2);
            const real h = (real)0.5 * t;
            /* cos(h) as sin(pi/2 - h): two sines vectorise, while a sin and a cos of one
               argument are fused into a scalar sincos call; the absolute error is the same. */
            const real w = SIN_((real)1.57079632679489661923 - h);
            const real sh = SIN_(h);
            /* sin(t/2) / t has no cancellation; only t == 0 needs its limit 1/2 */
            const real k = t > 0 ? sh / (t > 0 ? t : (real)1) : (real)0.5;
            QUATERNION_ENTRIES(e, i, w, k * x, k * y, k * z, (real)2);
            check += t2;
        }
        SCATTER(dst, e, 9, m);
    }
    return (double)check;
}

double NAME(quaternion_to_matrix)(const real *restrict in, real *restrict out, int64_t n, int threads) {
    real check = 0;
    FOR_BLOCKS_CHECK(start) {
        const int64_t m = MIN(n - start, BLOCK);
        const real *src = in + 4 * start;
        real *dst = out + 9 * start;
        real q[4][BLOCK], e[9][BLOCK];
        GATHER(q, src, 4, m);
        SIMD_CHECK for (int64_t i = 0; i < m; i++) {
            const real w = q[0][i], x = q[1][i], y = q[2][i], z = q[3][i];
            const real s = 2 / (w * w + x * x + y * y + z * z); /* inf for q = 0 */
            QUATERNION_ENTRIES(e, i, w, x, y, z, s);
            check += s;
        }
        SCATTER(dst, e, 9, m);
    }
    return (double)check;
}

double NAME(matrix_to_rotvec)(const real *restrict in, real *restrict out, int64_t n, int threads) {
    real check = 0;
    FOR_BLOCKS_CHECK(start) {
        const int64_t m = MIN(n - start, BLOCK);
        const real *src = in + 9 * start;
        real *dst = out + 3 * start;
        real r[9][BLOCK], v[3][BLOCK];
        GATHER(r, src, 9, m);
        SIMD_CHECK for (int64_t i = 0; i < m; i++) {
            const real r00 = r[0][i], r01 = r[1][i], r02 = r[2][i];
            const real r10 = r[3][i], r11 = r[4][i], r12 = r[5][i];
            const real r20 = r[6][i], r21 = r[7][i], r22 = r[8][i];
            const real tr = r00 + r11 + r22;
            /* four candidates for 4 q_i q; take the one with the largest |q_i| */
            const real d0 = 1 + tr, dx = 1 + 2 * r00 - tr;
            const real dy = 1 + 2 * r11 - tr, dz = 1 + 2 * r22 - tr;
            const real ax = r21 - r12, ay = r02 - r20, az = r10 - r01;
            const real sxy = r01 + r10, sxz = r02 + r20, syz = r12 + r21;
            const int use_x = (r00 >= r11) & (r00 >= r22) & (r00 > tr);
            const int use_y = !use_x & (r11 >= r22) & (r11 > tr);
            const int use_z = !use_x & !use_y & (r22 > tr);
            real w = use_x ? ax : use_y ? ay : use_z ? az : d0;
            real x = use_x ? dx : use_y ? sxy : use_z ? sxz : ax;
            real y = use_x ? sxy : use_y ? dy : use_z ? syz : ay;
            real z = use_x ? sxz : use_y ? syz : use_z ? dz : az;
            const real sign = w < 0 ? (real)-1 : (real)1; /* the w >= 0 hemisphere */
            w *= sign;
            /* theta / |v| = 2 atan2(|v|, w) / |v|, its Taylor series where |v| << w */
            const real n2 = x * x + y * y + z * z;
            const int small = n2 < (real)1e-6 * (w * w);
            const real nv = SQRT_(small ? (real)1 : n2);
            const real ws = small ? w : (real)1;
            const real at = ATAN2_(nv, w);
            const real f = sign * (small ? (2 / ws) * (1 - n2 / (3 * ws * ws)) : 2 * at / nv);
            v[0][i] = f * x; v[1][i] = f * y; v[2][i] = f * z;
            check += tr + ax + ay + az + sxy + sxz + syz;
        }
        SCATTER(dst, v, 3, m);
    }
    return (double)check;
}

/* u = sum_k a_k x b_k and c = <R1, R2>_F - 1 for rows a_k of R1 and b_k of R2 */
#define GEODESIC_TERMS(a, b, i, ux, uy, uz, c)                                            \
    real ux = 0, uy = 0, uz = 0, c = -1;                                                  \
    for (int k = 0; k < 9; k += 3) {                                                      \
        ux += a[k + 1][i] * b[k + 2][i] - a[k + 2][i] * b[k + 1][i];                      \
        uy += a[k + 2][i] * b[k][i] - a[k][i] * b[k + 2][i];                              \
        uz += a[k][i] * b[k + 1][i] - a[k + 1][i] * b[k][i];                              \
        c += a[k][i] * b[k][i] + a[k + 1][i] * b[k + 1][i] + a[k + 2][i] * b[k + 2][i];   \
    }

double NAME(geodesic_distance)(const real *restrict in1, const real *restrict in2, real *restrict out,
                               int64_t n, int threads) {
    real check = 0;
    FOR_BLOCKS_CHECK(start) {
        const int64_t m = MIN(n - start, BLOCK);
        const real *s1 = in1 + 9 * start, *s2 = in2 + 9 * start;
        real a[9][BLOCK], b[9][BLOCK];
        GATHER(a, s1, 9, m);
        GATHER(b, s2, 9, m);
        SIMD_CHECK for (int64_t i = 0; i < m; i++) {
            GEODESIC_TERMS(a, b, i, ux, uy, uz, c)
            out[start + i] = ATAN2_(SQRT_(ux * ux + uy * uy + uz * uz), c);
            check += c; /* NaN or inf whenever an entry of R1 or R2 is */
        }
    }
    return (double)check;
}

/* d theta = (c ds - s dc) / (s^2 + c^2) with s = |u|; ds/da_k = b_k x u^, ds/db_k = u^ x a_k,
   dc/da_k = b_k, dc/db_k = a_k. u^ = u / |u|, and 0 where u = 0: the subgradient that
   torch.linalg.vector_norm gives the eager formula. */
void NAME(geodesic_distance_backward)(const real *restrict in1, const real *restrict in2,
                                      const real *restrict grad, real *restrict g1, real *restrict g2,
                                      int64_t n, int threads) {
    FOR_BLOCKS(start) {
        const int64_t m = MIN(n - start, BLOCK);
        const real *s1 = in1 + 9 * start, *s2 = in2 + 9 * start;
        real a[9][BLOCK], b[9][BLOCK], ga[9][BLOCK], gb[9][BLOCK];
        GATHER(a, s1, 9, m);
        GATHER(b, s2, 9, m);
        SIMD for (int64_t i = 0; i < m; i++) {
            GEODESIC_TERMS(a, b, i, ux, uy, uz, c)
            const real s2u = ux * ux + uy * uy + uz * uz;
            const real s = SQRT_(s2u);
            const real inv_s = s > 0 ? 1 / (s > 0 ? s : (real)1) : (real)0;
            const real den = s2u + c * c;
            const real g = den > 0 ? grad[start + i] / (den > 0 ? den : (real)1) : (real)0;
            const real p = g * c * inv_s; /* times (b_k x u) or (u x a_k) */
            const real q = -g * s;        /* times b_k or a_k */
            for (int k = 0; k < 9; k += 3) {
                const real a0 = a[k][i], a1 = a[k + 1][i], a2 = a[k + 2][i];
                const real b0 = b[k][i], b1 = b[k + 1][i], b2 = b[k + 2][i];
                ga[k][i] = p * (b1 * uz - b2 * uy) + q * b0;
                ga[k + 1][i] = p * (b2 * ux - b0 * uz) + q * b1;
                ga[k + 2][i] = p * (b0 * uy - b1 * ux) + q * b2;
                gb[k][i] = p * (uy * a2 - uz * a1) + q * a0;
                gb[k + 1][i] = p * (uz * a0 - ux * a2) + q * a1;
                gb[k + 2][i] = p * (ux * a1 - uy * a0) + q * a2;
            }
        }
        /* a NULL output is a gradient nobody asked for (e.g. a fixed target): not written */
        if (g1) {
            real *d1 = g1 + 9 * start;
            SCATTER(d1, ga, 9, m);
        }
        if (g2) {
            real *d2 = g2 + 9 * start;
            SCATTER(d2, gb, 9, m);
        }
    }
}

#undef QUATERNION_ENTRIES
#undef GEODESIC_TERMS

#endif /* POSEREG_TEMPLATE */
