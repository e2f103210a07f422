/* Decode attention over token-level KV pools, read where they lie (no gather, no padding).
 *
 * One query token per sequence. Sequence b attends over its slots slot_table[table_rows[b], start:length[b]]
 * (start > 0 only under a sliding window). Pools are head-major, [kv_heads, pool_slots, head_dim], float32,
 * contiguous. Work is split by (kv head, sequence), kv head outermost: sequences that share a cached prefix
 * have the same slots there, so the second reader finds that head's keys and values in cache. All query heads
 * of one kv head (grouped-query attention) are scored in the same pass over its keys.
 *
 * Two passes per (kv head, sequence): scores and their maximum, then the exp-weighted sum of values.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define MAX_GROUP 64 /* query heads per kv head kept on the stack */

/* exp(x) for x <= 0 (scores less their maximum), as a loop the compiler vectorizes: 2^n * p(r) with
 * x = n ln2 + r, |r| <= ln2 / 2, p a degree-6 Taylor polynomial (relative error under 2e-7). */
static void exp_in_place(float *x, int64_t count) {
#pragma omp simd
    for (int64_t i = 0; i < count; i++) {
        float value = x[i] < -87.0f ? -87.0f : x[i];
        float n = (float)(int32_t)(value * 1.44269504088896341f - 0.5f); /* round half down, value <= 0 */
        float r = value - n * 0.693145751953125f - n * 1.42860682030941723e-06f;
        float p = 1.0f + r * (1.0f + r * (0.5f + r * (1.66666672e-1f + r * (4.16666679e-2f +
                  r * (8.33333377e-3f + r * 1.38888892e-3f)))));
        int32_t bits = ((int32_t)n + 127) << 23;
        float scale;
        memcpy(&scale, &bits, sizeof scale);
        x[i] = p * scale;
    }
}

#if defined(__AVX512F__)
#include <immintrin.h>
#define MAX_CHUNKS 16 /* head_dim up to 256, in 16-float registers */

/* The same as attend_one below, for head_dim a multiple of 16, with the output accumulated in registers. */
static void attend_one_avx512(const float *q, int64_t q_head_stride, const float *keys, const float *values,
                              const int64_t *slots, int64_t count, int64_t group, int64_t dim, float scale,
                              float *scores, float *out, int64_t out_head_stride) {
    const int64_t chunks = dim / 16;
    for (int64_t g = 0; g < group; g++) {
        const float *qg = q + g * q_head_stride;
        __m512 qv[MAX_CHUNKS];
        for (int64_t c = 0; c < chunks; c++) qv[c] = _mm512_mul_ps(_mm512_loadu_ps(qg + 16 * c), _mm512_set1_ps(scale));
        float *row = scores + g * count;
        float peak = -INFINITY;
        for (int64_t t = 0; t < count; t++) {
            const float *k = keys + slots[t] * dim;
            __m512 sum = _mm512_mul_ps(qv[0], _mm512_loadu_ps(k));
            for (int64_t c = 1; c < chunks; c++) sum = _mm512_fmadd_ps(qv[c], _mm512_loadu_ps(k + 16 * c), sum);
            const float dot = _mm512_reduce_add_ps(sum);
            row[t] = dot;
            peak = dot > peak ? dot : peak;
        }
        float total = 0.0f;
        for (int64_t t = 0; t < count; t++) row[t] -= peak;
        exp_in_place(row, count);
        for (int64_t t = 0; t < count; t++) total += row[t];
        __m512 acc[MAX_CHUNKS];
        for (int64_t c = 0; c < chunks; c++) acc[c] = _mm512_setzero_ps();
        for (int64_t t = 0; t < count; t++) {
            const float *v = values + slots[t] * dim;
            const __m512 w = _mm512_set1_ps(row[t]);
            for (int64_t c = 0; c < chunks; c++) acc[c] = _mm512_fmadd_ps(w, _mm512_loadu_ps(v + 16 * c), acc[c]);
        }
        const __m512 inverse = _mm512_set1_ps(1.0f / total);
        float *o = out + g * out_head_stride;
        for (int64_t c = 0; c < chunks; c++) _mm512_storeu_ps(o + 16 * c, _mm512_mul_ps(acc[c], inverse));
    }
}
#endif

static void attend_one(const float *q, int64_t q_head_stride, const float *keys, const float *values,
                       const int64_t *slots, int64_t count, int64_t group, int64_t dim, float scale,
                       float *scores, float *out, int64_t out_head_stride) {
    float peak[MAX_GROUP];
    float total[MAX_GROUP];
    for (int64_t g = 0; g < group; g++) peak[g] = -INFINITY;
    for (int64_t t = 0; t < count; t++) {
        const float *k = keys + slots[t] * dim;
        for (int64_t g = 0; g < group; g++) {
            const float *qg = q + g * q_head_stride;
            float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
            for (int64_t d = 0; d < dim; d++) dot += qg[d] * k[d];
            dot *= scale;
            scores[g * count + t] = dot;
            if (dot > peak[g]) peak[g] = dot;
        }
    }
    for (int64_t g = 0; g < group; g++) {
        float sum = 0.0f;
        float *row = scores + g * count;
        for (int64_t t = 0; t < count; t++) row[t] -= peak[g];
        exp_in_place(row, count);
        for (int64_t t = 0; t < count; t++) sum += row[t];
        total[g] = sum;
        float *o = out + g * out_head_stride;
        memset(o, 0, (size_t)dim * sizeof(float));
    }
    for (int64_t t = 0; t < count; t++) {
        const float *v = values + slots[t] * dim;
        for (int64_t g = 0; g < group; g++) {
            float *o = out + g * out_head_stride;
            const float w = scores[g * count + t];
#pragma omp simd
            for (int64_t d = 0; d < dim; d++) o[d] += w * v[d];
        }
    }
    for (int64_t g = 0; g < group; g++) {
        float *o = out + g * out_head_stride;
        const float inverse = 1.0f / total[g];
#pragma omp simd
        for (int64_t d = 0; d < dim; d++) o[d] *= inverse;
    }
}

/* queries: element (head h, sequence b, d) at q[h * q_head_stride + b * q_seq_stride + d].
 * out: element (sequence b, head h, d) at out[b * out_seq_stride + h * out_head_stride + d].
 * scratch: threads * group * max_length floats. Returns 0, or -1 when the group is too large. */
int litserve_decode_attention_f32(const float *q, int64_t q_head_stride, int64_t q_seq_stride,
                                  const float *key_pool, const float *value_pool, int64_t pool_slots,
                                  const int64_t *slot_table, int64_t table_stride, const int64_t *table_rows,
                                  const int64_t *lengths, int64_t sequences, int64_t heads, int64_t kv_heads,
                                  int64_t dim, float scale, int64_t window, float *out, int64_t out_seq_stride,
                                  int64_t out_head_stride, float *scratch, int64_t max_length, int threads) {
    const int64_t group = heads / kv_heads;
    if (group > MAX_GROUP) return -1;
    const int64_t work = kv_heads * sequences;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (threads > 1)
    for (int64_t item = 0; item < work; item++) {
        const int64_t kv = item / sequences;
        const int64_t b = item % sequences;
        int64_t length = lengths[b];
        int64_t start = (window > 0 && length > window) ? length - window : 0;
        const int64_t *slots = slot_table + table_rows[b] * table_stride + start;
#ifdef _OPENMP
        float *scores = scratch + (int64_t)omp_get_thread_num() * group * max_length;
#else
        float *scores = scratch;
#endif
#if defined(__AVX512F__)
        if (dim % 16 == 0 && dim <= 16 * MAX_CHUNKS) {
            attend_one_avx512(q + kv * group * q_head_stride + b * q_seq_stride, q_head_stride,
                              key_pool + kv * pool_slots * dim, value_pool + kv * pool_slots * dim, slots,
                              length - start, group, dim, scale, scores,
                              out + b * out_seq_stride + kv * group * out_head_stride, out_head_stride);
            continue;
        }
#endif
        attend_one(q + kv * group * q_head_stride + b * q_seq_stride, q_head_stride,
                   key_pool + kv * pool_slots * dim, value_pool + kv * pool_slots * dim, slots, length - start,
                   group, dim, scale, scores, out + b * out_seq_stride + kv * group * out_head_stride,
                   out_head_stride);
    }
    return 0;
}
