/* Measured peak floating-point rate of this machine's FMA units (the benchmark's yardstick
 * for "what fraction of peak does a GEMM reach"): every thread runs independent FMA chains on
 * the ISA's widest vectors (24 zmm or 12 ymm accumulators, more than the 2 pipes x 4 cycles
 * of latency need) for a fixed number of iterations; rate = 2 x lanes x FMAs / wall time.
 * The portable ISA measures what plain C gets (the compiler's mul + add). */
#define _POSIX_C_SOURCE 200809L
#include <time.h>
#include "gemm_internal.h"
#include "../openmp_shim.h"

static double pbn_wall(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* the chains' results go here, so the compiler cannot drop the loops */
static volatile double pbn_peak_sink;

/* a := a * x + y per chain; x < 1 and y > 0 keep every value near 1 (no overflow, no
 * subnormals). Returns the FMA lanes done. */
#define PBN_PEAK_BODY(VT, CHAINS, LANES, SET1, FMA, SUM)                         \
    VT acc[CHAINS];                                                              \
    const VT x = SET1(0.9999999), y = SET1(1e-7);                                \
    for (int c = 0; c < CHAINS; c++) acc[c] = SET1(1.0 + c);                     \
    for (long it = 0; it < iters; it++) {                                        \
        _Pragma("GCC unroll 24")                                                 \
        for (int c = 0; c < CHAINS; c++) acc[c] = FMA(acc[c], x, y);             \
    }                                                                            \
    double s = 0;                                                                \
    for (int c = 0; c < CHAINS; c++) s += SUM(acc[c]);                           \
    pbn_peak_sink = s;                                                           \
    return (double)iters * CHAINS * LANES;

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>
#define PBN_AVX512 __attribute__((target("avx512f,avx512dq,fma")))
#define PBN_AVX2 __attribute__((target("avx2,fma")))
PBN_AVX512 static double first_ps512(__m512 v) { return _mm512_cvtss_f32(v); }
PBN_AVX512 static double first_pd512(__m512d v) { return _mm512_cvtsd_f64(v); }
PBN_AVX2 static double first_ps256(__m256 v) { return _mm256_cvtss_f32(v); }
PBN_AVX2 static double first_pd256(__m256d v) { return _mm256_cvtsd_f64(v); }
#define SET1_PS512(v) _mm512_set1_ps((float)(v))
#define SET1_PD512(v) _mm512_set1_pd(v)
#define SET1_PS256(v) _mm256_set1_ps((float)(v))
#define SET1_PD256(v) _mm256_set1_pd(v)
PBN_AVX512 static double peak_avx512_f32(long iters)
{ PBN_PEAK_BODY(__m512, 24, 16, SET1_PS512, _mm512_fmadd_ps, first_ps512) }
PBN_AVX512 static double peak_avx512_f64(long iters)
{ PBN_PEAK_BODY(__m512d, 24, 8, SET1_PD512, _mm512_fmadd_pd, first_pd512) }
PBN_AVX2 static double peak_avx2_f32(long iters)
{ PBN_PEAK_BODY(__m256, 12, 8, SET1_PS256, _mm256_fmadd_ps, first_ps256) }
PBN_AVX2 static double peak_avx2_f64(long iters)
{ PBN_PEAK_BODY(__m256d, 12, 4, SET1_PD256, _mm256_fmadd_pd, first_pd256) }
#endif

#define PBN_ID(v) (v)
#define PBN_FMA_C(a, x, y) ((a) * (x) + (y))
#define SET1_F(v) ((float)(v))
#define SET1_D(v) ((double)(v))
static double peak_portable_f32(long iters)
{ PBN_PEAK_BODY(float, 16, 1, SET1_F, PBN_FMA_C, PBN_ID) }
static double peak_portable_f64(long iters)
{ PBN_PEAK_BODY(double, 16, 1, SET1_D, PBN_FMA_C, PBN_ID) }

/* FMA lanes done by one thread in `iters` iterations on this ISA / dtype */
static double pbn_peak_run(int isa, int f64, long iters)
{
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    if (isa == PBN_ISA_AVX512) return f64 ? peak_avx512_f64(iters) : peak_avx512_f32(iters);
    if (isa == PBN_ISA_AVX2) return f64 ? peak_avx2_f64(iters) : peak_avx2_f32(iters);
#endif
    return f64 ? peak_portable_f64(iters) : peak_portable_f32(iters);
}

double pbn_peak_gflops(int isa, int f64, int n_threads, double seconds)
{
    if (!pbn_isa_supported(isa) || n_threads < 1 || !(seconds > 0)) return -1.0;
    if (n_threads > PBN_MAX_PEAK_THREADS) n_threads = PBN_MAX_PEAK_THREADS;
    /* calibrate on one thread, then every thread runs that many iterations at once */
    long iters = 1 << 16;
    double t = 0;
    for (;;) {
        const double t0 = pbn_wall();
        pbn_peak_run(isa, f64, iters);
        t = pbn_wall() - t0;
        if (t >= seconds / 4 || iters > (1L << 40)) break;
        iters *= 2;
    }
    iters = (long)((double)iters * seconds / (t > 0 ? t : seconds));
    if (iters < 1) iters = 1;
    double lanes = 0;
    const double t0 = pbn_wall();
    _Pragma("omp parallel for num_threads(n_threads) schedule(static) reduction(+:lanes)")
    for (int i = 0; i < n_threads; i++) lanes += pbn_peak_run(isa, f64, iters);
    return 2.0 * lanes / (pbn_wall() - t0) * 1e-9;
}
