/* Counter-based standard normal noise for ZO perturbations, fused with the in-place update.

   z[i] for element i of a tensor with 64-bit seed k is a pure function of (k, i):
     block b = i / 4, lane j = i % 4
     (x0, x1, x2, x3) = Philox4x32-10(counter = (lo32(b), hi32(b), 0, 0), key = (lo32(k), hi32(k)))
     lanes 0, 1 = Box-Muller(x0, x1); lanes 2, 3 = Box-Muller(x2, x3)
     Box-Muller(a, c): u = ((a >> 8) + 1) * 2^-24 in (0, 1]; r = sqrt(-2 ln u);
                      phi = ((c >> 30) + ((c >> 6) & 0xFFFFFF) * 2^-24) * pi/2;  (r cos phi, r sin phi)
   ln, sin and cos are the fixed polynomials below (not libm), and the file is compiled without
   floating-point contraction, so every value is the same on every machine, thread count, vector
   width and chunking, and the same as zoharness.philox.reference (torch ops, any device).

   Philox4x32-10 is Salmon et al. (SC'11, "Parallel random numbers: as easy as 1, 2, 3"), the
   generator behind torch's and JAX's GPU random numbers; it passes TestU01's BigCrush.

   Built on first use by zoharness.philox with -O3 -march=native -ffp-contract=off -fno-math-errno;
   called through ctypes (which releases the GIL), one contiguous float32 range per call. Philox runs
   in 16 lanes with AVX-512, 8 with AVX2, one at a time otherwise: the same integers (tests/test_philox.py
   builds each path the CPU can run and compares it with the reference). AVX-512 more than halves the pass's
   time on a Zen 5 core (0.61 against 1.41 ns per value, axpy over 2^25 values, one thread). */

#include <stdint.h>
#include <string.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u
/* Blocks per tile (4 values each): two vectors' worth of lanes, so two Philox chains interleave. Values
   depend on the element index only, never on the tile size. */
#if defined(__AVX512F__)
#define TILE 32
#else
#define TILE 16
#endif

int zo_philox_gauss_version(void) { return 3; }  /* 2: adds zo_philox_gauss_axpy2; 3: zo_philox_gauss_sweep */

static inline float as_float(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static inline uint32_t as_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

/* -2 ln(u) for u in (0, 1]: u = m 2^e with m in [sqrt(2)/2, sqrt(2)), ln m = 2 atanh(s), s = (m-1)/(m+1),
   |s| <= 0.172, series to s^9 (truncation < 3e-9 relative). */
static inline float neg2log(float u) {
    uint32_t bits = as_bits(u);
    uint32_t mant = bits & 0x7FFFFFu;
    uint32_t big = mant > 0x3504F3u; /* m > sqrt(2): take m/2 and e+1 */
    int32_t e = (int32_t)(bits >> 23) - 127 + (int32_t)big;
    float m = as_float(mant | (0x3F800000u - (big << 23)));
    float s = (m - 1.0f) / (m + 1.0f);
    float s2 = s * s;
    float p = 0x1.c71c72p-4f; /* 1/9 */
    p = p * s2 + 0x1.24924ap-3f; /* 1/7 */
    p = p * s2 + 0x1.99999ap-3f; /* 1/5 */
    p = p * s2 + 0x1.555556p-2f; /* 1/3 */
    p = p * s2 + 1.0f;
    float ln = (float)e * 0x1.62e430p-1f + (s + s) * p; /* ln 2 */
    return -2.0f * ln;
}

/* Two standard normals from two 32-bit words. sin and cos of x in [0, pi/2) by Taylor polynomials
   (degree 11 and 12: error < 6e-8), rotated into the quadrant given by c's top two bits. */
static inline void box_muller(uint32_t a, uint32_t c, float *z0, float *z1) {
    float u = (float)(int32_t)((a >> 8) + 1u) * 0x1p-24f;
    float r = __builtin_sqrtf(neg2log(u));
    uint32_t q = c >> 30;
    float x = (float)(int32_t)((c >> 6) & 0xFFFFFFu) * 0x1.921fb6p-24f; /* pi/2 * 2^-24 */
    float x2 = x * x;
    float sn = -0x1.ae6456p-26f;
    sn = sn * x2 + 0x1.71de3ap-19f;
    sn = sn * x2 - 0x1.a01a02p-13f;
    sn = sn * x2 + 0x1.111112p-7f;
    sn = sn * x2 - 0x1.555556p-3f;
    sn = sn * x2 * x + x;
    float cs = 0x1.1eed8ep-29f;
    cs = cs * x2 - 0x1.27e4fcp-22f;
    cs = cs * x2 + 0x1.a01a02p-16f;
    cs = cs * x2 - 0x1.6c16c2p-10f;
    cs = cs * x2 + 0x1.555556p-5f;
    cs = cs * x2 - 0.5f;
    cs = cs * x2 + 1.0f;
    uint32_t odd = 0u - (q & 1u); /* quadrants 1 and 3: cos and sin swap */
    uint32_t cb = (as_bits(sn) & odd) | (as_bits(cs) & ~odd);
    uint32_t sb = (as_bits(cs) & odd) | (as_bits(sn) & ~odd);
    cb ^= ((q ^ (q >> 1)) & 1u) << 31; /* cos < 0 in quadrants 1 and 2 */
    sb ^= (q >> 1) << 31;              /* sin < 0 in quadrants 2 and 3 */
    *z0 = r * as_float(cb);
    *z1 = r * as_float(sb);
}


#if defined(__AVX512F__)
#include <immintrin.h>
/* Philox4x32-10 of the TILE counters block .. block+31 (AVX-512), each 32-bit word in a 64-bit lane: one
   vpmuludq gives a lane's whole 64-bit product, so hi is one shift and lo is the product itself (its high
   half is ignored by the next vpmuludq and dropped at the end). Four chains of 8 blocks interleave. Against
   16 words per vector with blends to split the products, the Philox half of the pass took 2.5x less time
   and the whole axpy 10% less (0.61 against 0.68 ns per value, one thread, Zen 5); the same integers. */
static inline void philox_tile(uint64_t block, uint32_t k0, uint32_t k1, uint32_t x[4][TILE]) {
    const __m512i m0 = _mm512_set1_epi64(PHILOX_M0), m1 = _mm512_set1_epi64(PHILOX_M1);
    const __m512i lane = _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0);
    __m512i c0[4], c1[4], c2[4], c3[4];
    for (int g = 0; g < 4; g++) {
        __m512i b = _mm512_add_epi64(_mm512_set1_epi64((long long)(block + 8 * (uint64_t)g)), lane);
        c0[g] = b; /* lo32(b) in the low half; the high half is ignored by vpmuludq */
        c1[g] = _mm512_srli_epi64(b, 32);
        c2[g] = c3[g] = _mm512_setzero_si512();
    }
    for (uint32_t r = 0; r < 10; r++) {
        __m512i ka = _mm512_set1_epi64(k0 + r * PHILOX_W0);
        __m512i kb = _mm512_set1_epi64(k1 + r * PHILOX_W1);
        for (int g = 0; g < 4; g++) {
            __m512i p0 = _mm512_mul_epu32(c0[g], m0), p1 = _mm512_mul_epu32(c2[g], m1);
            c0[g] = _mm512_ternarylogic_epi64(_mm512_srli_epi64(p1, 32), c1[g], ka, 0x96);
            c2[g] = _mm512_ternarylogic_epi64(_mm512_srli_epi64(p0, 32), c3[g], kb, 0x96);
            c1[g] = p1, c3[g] = p0;
        }
    }
    for (int g = 0; g < 4; g++) {
        _mm256_storeu_si256((__m256i *)&x[0][8 * g], _mm512_cvtepi64_epi32(c0[g]));
        _mm256_storeu_si256((__m256i *)&x[1][8 * g], _mm512_cvtepi64_epi32(c1[g]));
        _mm256_storeu_si256((__m256i *)&x[2][8 * g], _mm512_cvtepi64_epi32(c2[g]));
        _mm256_storeu_si256((__m256i *)&x[3][8 * g], _mm512_cvtepi64_epi32(c3[g]));
    }
}
#elif defined(__AVX2__)
#include <immintrin.h>
/* 32x32 -> 64-bit products of 8 lanes: even lanes by one vpmuludq, odd lanes by another. */
#define MUL_HI_LO(c, m, lo, hi)                                                        \
    do {                                                                               \
        __m256i pe_ = _mm256_mul_epu32(c, m);                                          \
        __m256i po_ = _mm256_mul_epu32(_mm256_srli_epi64(c, 32), m);                   \
        lo = _mm256_blend_epi32(pe_, _mm256_slli_epi64(po_, 32), 0xAA);                \
        hi = _mm256_blend_epi32(_mm256_srli_epi64(pe_, 32), po_, 0xAA);                \
    } while (0)

static inline __m256i counter_words(uint64_t block, int high) {
    uint32_t v[8];
    for (int l = 0; l < 8; l++) {
        uint64_t b = block + (uint64_t)l;
        v[l] = high ? (uint32_t)(b >> 32) : (uint32_t)b;
    }
    return _mm256_loadu_si256((const __m256i *)v);
}

/* Philox4x32-10 of the TILE counters block .. block+15, as two groups of 8 lanes (AVX2). */
static inline void philox_tile(uint64_t block, uint32_t k0, uint32_t k1, uint32_t x[4][TILE]) {
    const __m256i zero = _mm256_setzero_si256();
    __m256i a0 = counter_words(block, 0), a1 = counter_words(block, 1), a2 = zero, a3 = zero;
    __m256i b0 = counter_words(block + 8, 0), b1 = counter_words(block + 8, 1), b2 = zero, b3 = zero;
    const __m256i m0 = _mm256_set1_epi32((int)PHILOX_M0), m1 = _mm256_set1_epi32((int)PHILOX_M1);
    for (uint32_t r = 0; r < 10; r++) {
        __m256i ka = _mm256_set1_epi32((int)(k0 + r * PHILOX_W0));
        __m256i kb = _mm256_set1_epi32((int)(k1 + r * PHILOX_W1));
        __m256i alo0, ahi0, alo1, ahi1, blo0, bhi0, blo1, bhi1;
        MUL_HI_LO(a0, m0, alo0, ahi0);
        MUL_HI_LO(b0, m0, blo0, bhi0);
        MUL_HI_LO(a2, m1, alo1, ahi1);
        MUL_HI_LO(b2, m1, blo1, bhi1);
        a0 = _mm256_xor_si256(_mm256_xor_si256(ahi1, a1), ka);
        a2 = _mm256_xor_si256(_mm256_xor_si256(ahi0, a3), kb);
        b0 = _mm256_xor_si256(_mm256_xor_si256(bhi1, b1), ka);
        b2 = _mm256_xor_si256(_mm256_xor_si256(bhi0, b3), kb);
        a1 = alo1, a3 = alo0, b1 = blo1, b3 = blo0;
    }
    _mm256_storeu_si256((__m256i *)&x[0][0], a0), _mm256_storeu_si256((__m256i *)&x[0][8], b0);
    _mm256_storeu_si256((__m256i *)&x[1][0], a1), _mm256_storeu_si256((__m256i *)&x[1][8], b1);
    _mm256_storeu_si256((__m256i *)&x[2][0], a2), _mm256_storeu_si256((__m256i *)&x[2][8], b2);
    _mm256_storeu_si256((__m256i *)&x[3][0], a3), _mm256_storeu_si256((__m256i *)&x[3][8], b3);
}
#else
/* Portable Philox4x32-10: the same integers. */
static inline void philox_tile(uint64_t block, uint32_t k0, uint32_t k1, uint32_t x[4][TILE]) {
    for (int l = 0; l < TILE; l++) {
        uint64_t b = block + (uint64_t)l;
        uint32_t c0 = (uint32_t)b, c1 = (uint32_t)(b >> 32), c2 = 0, c3 = 0;
        for (uint32_t r = 0; r < 10; r++) {
            uint64_t p0 = (uint64_t)PHILOX_M0 * c0, p1 = (uint64_t)PHILOX_M1 * c2;
            uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ (k0 + r * PHILOX_W0);
            uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ (k1 + r * PHILOX_W1);
            c1 = (uint32_t)p1, c3 = (uint32_t)p0, c0 = n0, c2 = n2;
        }
        x[0][l] = c0, x[1][l] = c1, x[2][l] = c2, x[3][l] = c3;
    }
}
#endif

/* The 64 values of the tile starting at `block`, in element order. */
static inline void gauss_tile(uint64_t block, uint32_t k0, uint32_t k1, float out[4 * TILE]) {
    uint32_t x[4][TILE];
    float z[4][TILE];
    philox_tile(block, k0, k1, x);
    for (int l = 0; l < TILE; l++) {
        box_muller(x[0][l], x[1][l], &z[0][l], &z[1][l]);
        box_muller(x[2][l], x[3][l], &z[2][l], &z[3][l]);
    }
    for (int l = 0; l < TILE; l++)
        for (int j = 0; j < 4; j++) out[4 * l + j] = z[j][l];
}

/* The tiles covering z[start, start + n): out[k] = z[start + k], or out[k] += coeff * z[start + k] with
   `accumulate` (a constant at both call sites, so the branch is compiled away). */
static inline void gauss_range(float *restrict out, uint64_t start, uint64_t n, uint64_t seed, float coeff,
                               int accumulate) {
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    uint64_t end = start + n;
    for (uint64_t t = start / (4 * TILE) * (4 * TILE); t < end; t += 4 * TILE) {
        float z[4 * TILE];
        gauss_tile(t / 4, k0, k1, z);
        uint64_t lo = t < start ? start : t, hi = t + 4 * TILE < end ? t + 4 * TILE : end;
        if (accumulate)
            for (uint64_t i = lo; i < hi; i++) out[i - start] = out[i - start] + coeff * z[i - t];
        else
            for (uint64_t i = lo; i < hi; i++) out[i - start] = z[i - t];
    }
}

/* out[k] = z[start + k] for k < n. */
void zo_philox_gauss_fill(float *restrict out, uint64_t start, uint64_t n, uint64_t seed) {
    gauss_range(out, start, n, seed, 0.0f, 0);
}

/* x[k] = x[k] + coeff * z[start + k] for k < n (the product rounded to float, then the sum). */
void zo_philox_gauss_axpy(float *restrict x, uint64_t start, uint64_t n, uint64_t seed, float coeff) {
    gauss_range(x, start, n, seed, coeff, 1);
}

/* x[k] = (x[k] + coeff1 * z1[start + k]) + coeff2 * z2[start + k] for k < n, z1 and z2 the tensors of seed1
   and seed2: two axpy passes in one sweep over x, with every rounding of the two separate calls (each
   product rounded to float, each sum rounded to float, in that order), so the result is the same bits.
   A ZO step's deferred update and the next step's perturbation (zoharness.zo). */
void zo_philox_gauss_axpy2(float *restrict x, uint64_t start, uint64_t n, uint64_t seed1, float coeff1,
                           uint64_t seed2, float coeff2) {
    uint32_t a0 = (uint32_t)seed1, a1 = (uint32_t)(seed1 >> 32);
    uint32_t b0 = (uint32_t)seed2, b1 = (uint32_t)(seed2 >> 32);
    uint64_t end = start + n;
    for (uint64_t t = start / (4 * TILE) * (4 * TILE); t < end; t += 4 * TILE) {
        float z1[4 * TILE], z2[4 * TILE];
        gauss_tile(t / 4, a0, a1, z1);
        gauss_tile(t / 4, b0, b1, z2);
        uint64_t lo = t < start ? start : t, hi = t + 4 * TILE < end ? t + 4 * TILE : end;
        for (uint64_t i = lo; i < hi; i++) {
            float once = x[i - start] + coeff1 * z1[i - t];
            x[i - start] = once + coeff2 * z2[i - t];
        }
    }
}

/* One thread's share of a sweep over many ranges, so a pass over a model's weights costs one call per thread
   instead of one per range. Range k is x = ptrs[k][0 .. ns[k]), the z indices starts[k] .. starts[k] + ns[k]
   of the tensor with seed seeds1[k]: zo_philox_gauss_axpy with coeff1, or, when seeds2 is not NULL,
   zo_philox_gauss_axpy2 with (seeds1[k], coeff1, seeds2[k], coeff2). Every thread given the same `next`
   (starting at 0) takes the next range from it, so the threads balance themselves; which thread does a
   range changes no value. */
void zo_philox_gauss_sweep(uint64_t count, float *const *ptrs, const uint64_t *starts, const uint64_t *ns,
                           const uint64_t *seeds1, float coeff1, const uint64_t *seeds2, float coeff2,
                           uint64_t *next) {
    for (;;) {
        uint64_t k = __atomic_fetch_add(next, 1, __ATOMIC_RELAXED);
        if (k >= count) return;
        if (seeds2)
            zo_philox_gauss_axpy2(ptrs[k], starts[k], ns[k], seeds1[k], coeff1, seeds2[k], coeff2);
        else
            zo_philox_gauss_axpy(ptrs[k], starts[k], ns[k], seeds1[k], coeff1);
    }
}
