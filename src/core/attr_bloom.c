/*
 * attr_bloom.c - the attribute filter of a trace (attr_bloom.h): the pairs of
 * a span's attributes into a Bloom filter, the test of one pair, its bits,
 * and the text form of a value that both compare.
 */
#include "attr_bloom.h"

#include "arena.h"
#include "hash.h"
#include "json.h"

#include <string.h>

_Static_assert(PC_ATTR_BLOOM_BYTES * 8 == 1 << 10, "a bit index is a 10-bit slice");
_Static_assert(PC_ATTR_BLOOM_K * 10 <= 64, "K slices of one 64-bit hash");

/* The filter's hash key: fixed, as the filters are stored. */
static const pc_hash_key BLOOM_KEY = {0x6f6f6c622d616c65ULL, 0x0000393076762d6dULL};

/* SipHash-2-4 of |text| under BLOOM_KEY with its first half XORed with the
 * SipHash-2-4 of |key| under BLOOM_KEY: one hash of the pair, no copy. */
static uint64_t pair_hash(const char *key, size_t key_len, const char *text, size_t text_len)
{
    pc_hash_key k = BLOOM_KEY;
    k.k0 ^= pc_siphash24(&BLOOM_KEY, key, key_len);
    return pc_siphash24(&k, text, text_len);
}

void pc_attr_bloom_bits(const char *key, size_t key_len, const char *text, size_t text_len,
                        int bits[PC_ATTR_BLOOM_K])
{
    uint64_t h = pair_hash(key, key_len, text, text_len);
    for (int i = 0; i < PC_ATTR_BLOOM_K; i++, h >>= 10)
        bits[i] = (int)(h & 1023);
}

void pc_attr_bloom_add(unsigned char bloom[PC_ATTR_BLOOM_BYTES], const char *key, size_t key_len,
                       const char *text, size_t text_len)
{
    int bits[PC_ATTR_BLOOM_K];
    pc_attr_bloom_bits(key, key_len, text, text_len, bits);
    for (int i = 0; i < PC_ATTR_BLOOM_K; i++)
        bloom[bits[i] >> 3] |= (unsigned char)(1u << (bits[i] & 7));
}

bool pc_attr_bloom_may(const unsigned char *bloom, size_t n, const char *key, size_t key_len,
                       const char *text, size_t text_len)
{
    if (!bloom || n != PC_ATTR_BLOOM_BYTES || text_len > PC_ATTR_BLOOM_MAX_TEXT) return true;
    int bits[PC_ATTR_BLOOM_K];
    pc_attr_bloom_bits(key, key_len, text, text_len, bits);
    for (int i = 0; i < PC_ATTR_BLOOM_K; i++)
        if (!(bloom[bits[i] >> 3] & (1u << (bits[i] & 7)))) return false;
    return true;
}

/*
 * The text form of |v| as pc_attr_match reads it back from the stored JSON,
 * at *|t| (*|tn| bytes): a string's own bytes (no copy: the hot case); an int
 * or bool as written into |buf|; other scalars (doubles, bytes) written and
 * parsed again with |*a| (made on first use) into |buf|, so the form is the
 * stored one by construction. 0: no pair (null, array, map); 1: the form is
 * set; -1: the writer changes the value (invalid UTF-8), so none is known.
 */
static int stored_text(const pc_value *v, pc_buf *buf, pc_arena **a, const char **t, size_t *tn)
{
    pc_buf_reset(buf);
    switch (v->type) {
    case PC_V_NULL:
    case PC_V_ARRAY:
    case PC_V_MAP: return 0;
    case PC_V_STR:
        if (!pc_utf8_valid(v->s.p, v->s.n)) return -1;
        *t = v->s.p ? v->s.p : "";
        *tn = v->s.n;
        return 1;
    case PC_V_BOOL:
    case PC_V_INT: pc_attr_text(buf, v); break;
    default: {
        pc_buf json = PC_BUF_INIT;
        pc_value_write_json(&json, v);
        if (!*a) *a = pc_arena_create(256);
        pc_value back;
        pc_json_error err;
        bool ok = pc_json_parse(*a, json.data, json.len, &back, &err) == 0 &&
                  pc_attr_text(buf, &back);
        pc_buf_free(&json);
        if (!ok) return -1;
    }
    }
    *t = buf->data ? buf->data : "";
    *tn = buf->len;
    return 1;
}

void pc_attr_bloom_add_attrs(unsigned char bloom[PC_ATTR_BLOOM_BYTES], const pc_attrs *a)
{
    pc_buf buf = PC_BUF_INIT;
    pc_arena *arena = NULL;
    for (size_t i = 0; i < a->n; i++) {
        const pc_kv *kv = &a->kv[i];
        const char *t = "";
        size_t tn = 0;
        int r = stored_text(&kv->value, &buf, &arena, &t, &tn);
        if (r == 0 || (r > 0 && tn > PC_ATTR_BLOOM_MAX_TEXT)) continue;
        if (r < 0 || !pc_utf8_valid(kv->key.p, kv->key.n)) {
            memset(bloom, 0xff, PC_ATTR_BLOOM_BYTES);
            break;
        }
        pc_attr_bloom_add(bloom, kv->key.p ? kv->key.p : "", kv->key.n, t, tn);
    }
    pc_buf_free(&buf);
    if (arena) pc_arena_destroy(arena);
}

bool pc_attr_text(pc_buf *out, const pc_value *v)
{
    switch (v->type) {
    case PC_V_STR: pc_buf_append(out, v->s.p, v->s.n); return true;
    case PC_V_BOOL: pc_buf_puts(out, v->b ? "true" : "false"); return true;
    case PC_V_INT: pc_json_write_int(out, v->i); return true;
    case PC_V_DOUBLE: pc_json_write_double(out, v->d); return true;
    default: return false; /* null, arrays and maps have no text form */
    }
}
