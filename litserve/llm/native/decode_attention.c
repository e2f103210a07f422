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
#include <pthread.h>

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

/* The same as attend_one below, for head_dim = 16 * CHUNKS: the query and the output stay in registers. */
#define DEFINE_ATTEND_AVX512(CHUNKS)                                                                          \
    static void attend_avx512_##CHUNKS(const float *q, int64_t q_head_stride, const float *keys,            \
                                       const float *values, const int64_t *slots, int64_t count,            \
                                       int64_t group, float scale, float *scores, float *out,               \
                                       int64_t out_head_stride) {                                           \
        const int64_t dim = 16 * CHUNKS;                                                                    \
        for (int64_t g = 0; g < group; g++) {                                                               \
            const float *qg = q + g * q_head_stride;                                                        \
            __m512 qv[CHUNKS];                                                                              \
            for (int c = 0; c < CHUNKS; c++) qv[c] = _mm512_mul_ps(_mm512_loadu_ps(qg + 16 * c), _mm512_set1_ps(scale)); \
            float *row = scores + g * count;                                                                \
            float peak = -INFINITY;                                                                         \
            for (int64_t t = 0; t < count; t++) {                                                           \
                const float *k = keys + slots[t] * dim;                                                     \
                __m512 sum = _mm512_mul_ps(qv[0], _mm512_loadu_ps(k));                                      \
                for (int c = 1; c < CHUNKS; c++) sum = _mm512_fmadd_ps(qv[c], _mm512_loadu_ps(k + 16 * c), sum); \
                const float dot = _mm512_reduce_add_ps(sum);                                                \
                row[t] = dot;                                                                               \
                peak = dot > peak ? dot : peak;                                                             \
            }                                                                                               \
            for (int64_t t = 0; t < count; t++) row[t] -= peak;                                             \
            exp_in_place(row, count);                                                                       \
            float total = 0.0f;                                                                             \
            for (int64_t t = 0; t < count; t++) total += row[t];                                            \
            __m512 acc[CHUNKS];                                                                             \
            for (int c = 0; c < CHUNKS; c++) acc[c] = _mm512_setzero_ps();                                  \
            for (int64_t t = 0; t < count; t++) {                                                           \
                const float *v = values + slots[t] * dim;                                                   \
                const __m512 w = _mm512_set1_ps(row[t]);                                                    \
                for (int c = 0; c < CHUNKS; c++) acc[c] = _mm512_fmadd_ps(w, _mm512_loadu_ps(v + 16 * c), acc[c]); \
            }                                                                                               \
            const __m512 inverse = _mm512_set1_ps(1.0f / total);                                            \
            float *o = out + g * out_head_stride;                                                           \
            for (int c = 0; c < CHUNKS; c++) _mm512_storeu_ps(o + 16 * c, _mm512_mul_ps(acc[c], inverse));  \
        }                                                                                                   \
    }

DEFINE_ATTEND_AVX512(2)
DEFINE_ATTEND_AVX512(4)
DEFINE_ATTEND_AVX512(5)
DEFINE_ATTEND_AVX512(6)
DEFINE_ATTEND_AVX512(8)
DEFINE_ATTEND_AVX512(16)

typedef void (*attend_fn)(const float *, int64_t, const float *, const float *, const int64_t *, int64_t, int64_t,
                          float, float *, float *, int64_t);

/* The specialised function for head_dim, or NULL (then the generic one serves). */
static attend_fn avx512_for(int64_t dim) {
    switch (dim) {
        case 32: return attend_avx512_2;
        case 64: return attend_avx512_4;
        case 80: return attend_avx512_5;
        case 96: return attend_avx512_6;
        case 128: return attend_avx512_8;
        case 256: return attend_avx512_16;
        default: return NULL;
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
            for (int64_t d = 0; d < dim; d++) o[d] += w * v[d];
        }
    }
    for (int64_t g = 0; g < group; g++) {
        float *o = out + g * out_head_stride;
        const float inverse = 1.0f / total[g];
        for (int64_t d = 0; d < dim; d++) o[d] *= inverse;
    }
}

typedef struct {
    const float *q;
    int64_t q_head_stride, q_seq_stride;
    const float *key_pool, *value_pool;
    int64_t pool_slots;
    const int64_t *slot_table;
    int64_t table_stride;
    const int64_t *table_rows, *lengths;
    int64_t sequences, group, dim, window, kv_heads_count;
    float scale;
    float *out;
    int64_t out_seq_stride, out_head_stride;
    float *scratch;
    int64_t max_length;
} Job;

/* Work item ``item`` = (kv head, sequence), kv head outermost; ``scores`` is this thread's scratch. */
static void run_item(const Job *job, int64_t item, float *scores) {
    const int64_t kv = item / job->sequences;
    const int64_t b = item % job->sequences;
    const int64_t length = job->lengths[b];
    const int64_t start = (job->window > 0 && length > job->window) ? length - job->window : 0;
    const int64_t *slots = job->slot_table + job->table_rows[b] * job->table_stride + start;
    const int64_t group = job->group, dim = job->dim;
    const float *q = job->q + kv * group * job->q_head_stride + b * job->q_seq_stride;
    const float *keys = job->key_pool + kv * job->pool_slots * dim;
    const float *values = job->value_pool + kv * job->pool_slots * dim;
    float *out = job->out + b * job->out_seq_stride + kv * group * job->out_head_stride;
#if defined(__AVX512F__)
    const attend_fn fast = avx512_for(dim);
    if (fast != NULL) {
        fast(q, job->q_head_stride, keys, values, slots, length - start, group, job->scale, scores, out,
             job->out_head_stride);
        return;
    }
#endif
    attend_one(q, job->q_head_stride, keys, values, slots, length - start, group, dim, job->scale, scores, out,
               job->out_head_stride);
}

#define MAX_THREADS 64

typedef struct {
    const Job *job;
    int first, stride;
    float *scores;
} Slice;

static void *run_slice(void *argument) {
    const Slice *slice = (const Slice *)argument;
    const int64_t work = slice->job->kv_heads_count * slice->job->sequences;
    for (int64_t item = slice->first; item < work; item += slice->stride) run_item(slice->job, item, slice->scores);
    return NULL;
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
    const Job job = {q,      q_head_stride, q_seq_stride, key_pool, value_pool,     pool_slots,      slot_table,
                     table_stride, table_rows, lengths,  sequences, group, dim, window, kv_heads, scale, out,
                     out_seq_stride, out_head_stride, scratch, max_length};
    const int64_t work = kv_heads * sequences;
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    if (threads > work) threads = (int)work;
    if (threads <= 1) {
        for (int64_t item = 0; item < work; item++) run_item(&job, item, scratch);
        return 0;
    }
    /* Long contexts are memory-bound: each core brings its own share of bandwidth. Threads live for one call
     * (creating one costs ~10-20 us, against the milliseconds such a call takes); items are dealt round-robin. */
    Slice slices[MAX_THREADS];
    pthread_t helpers[MAX_THREADS];
    int started[MAX_THREADS] = {0};
    for (int t = 0; t < threads; t++) {
        slices[t] = (Slice){&job, t, threads, scratch + (int64_t)t * group * max_length};
        if (t > 0) started[t] = pthread_create(&helpers[t], NULL, run_slice, &slices[t]) == 0;
    }
    run_slice(&slices[0]);
    for (int t = 1; t < threads; t++) {
        if (started[t]) {
            pthread_join(helpers[t], NULL);
        } else {
            run_slice(&slices[t]); /* no thread could be made: do its share here */
        }
    }
    return 0;
}
