/*
 * otlp_build.h - builders of OTLP messages with the generated protobuf-c
 * structs, for the format tests (test_otlp.c, test_otlp_signal.c,
 * test_otlp_proto_decode.c): the common types (AnyValue of every kind,
 * KeyValue, ids) and packing.
 *
 * Every allocation comes from the including test's arena OB (set it before
 * building; the test frees it). Header-only, one copy per test executable;
 * all functions are static inline so a test that uses some of them compiles
 * without unused-function warnings.
 */
#ifndef PC_TEST_OTLP_BUILD_H
#define PC_TEST_OTLP_BUILD_H

#include "arena.h"

#include "opentelemetry/proto/common/v1/common.pb-c.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef Opentelemetry__Proto__Common__V1__InstrumentationScope Scope;
typedef Opentelemetry__Proto__Common__V1__KeyValue KeyValue;
typedef Opentelemetry__Proto__Common__V1__AnyValue AnyValue;
typedef Opentelemetry__Proto__Common__V1__ArrayValue ArrayValue;
typedef Opentelemetry__Proto__Common__V1__KeyValueList KeyValueList;

static pc_arena *OB; /* where the builders allocate; owned by the test */

/* |n| zeroed bytes (at least one) in OB. */
static inline void *ob_alloc(size_t n)
{
    return pc_arena_calloc(OB, n ? n : 1);
}

/* A message of type |d| in OB, initialized to its defaults. */
static inline void *ob_msg(const ProtobufCMessageDescriptor *d)
{
    void *m = ob_alloc(d->sizeof_message);
    protobuf_c_message_init(d, m);
    return m;
}

/* An array of |n| pointers from the arguments. */
static inline void *ob_ptrs(size_t n, ...)
{
    void **a = ob_alloc(n * sizeof(void *));
    va_list ap;
    va_start(ap, n);
    for (size_t i = 0; i < n; i++)
        a[i] = va_arg(ap, void *);
    va_end(ap);
    return a;
}

static inline AnyValue *v_new(int c)
{
    AnyValue *v = ob_msg(&opentelemetry__proto__common__v1__any_value__descriptor);
    v->value_case = c;
    return v;
}

static inline AnyValue *v_str(const char *s)
{
    AnyValue *v = v_new(OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE);
    v->string_value = (char *)s;
    return v;
}

static inline AnyValue *v_bool(int b)
{
    AnyValue *v = v_new(OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE);
    v->bool_value = b;
    return v;
}

static inline AnyValue *v_int(int64_t i)
{
    AnyValue *v = v_new(OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE);
    v->int_value = i;
    return v;
}

static inline AnyValue *v_double(double d)
{
    AnyValue *v = v_new(OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE);
    v->double_value = d;
    return v;
}

static inline AnyValue *v_bytes(const void *p, size_t n)
{
    AnyValue *v = v_new(OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BYTES_VALUE);
    v->bytes_value = (ProtobufCBinaryData){n, (uint8_t *)p};
    return v;
}

/* An arrayValue of the |n| AnyValues in |items| (e.g. from ob_ptrs). */
static inline AnyValue *v_array(size_t n, AnyValue **items)
{
    AnyValue *v = v_new(OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE);
    v->array_value = ob_msg(&opentelemetry__proto__common__v1__array_value__descriptor);
    v->array_value->n_values = n;
    v->array_value->values = items;
    return v;
}

/* A kvlistValue of the |n| KeyValues in |items|. */
static inline AnyValue *v_kvlist(size_t n, KeyValue **items)
{
    AnyValue *v = v_new(OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_KVLIST_VALUE);
    v->kvlist_value = ob_msg(&opentelemetry__proto__common__v1__key_value_list__descriptor);
    v->kvlist_value->n_values = n;
    v->kvlist_value->values = items;
    return v;
}

static inline KeyValue *kv(const char *key, AnyValue *value)
{
    KeyValue *k = ob_msg(&opentelemetry__proto__common__v1__key_value__descriptor);
    k->key = (char *)key;
    k->value = value;
    return k;
}

/* Raw id bytes from hex text, in OB. */
static inline ProtobufCBinaryData id(const char *hex)
{
    size_t n = strlen(hex) / 2;
    uint8_t *p = ob_alloc(n);
    for (size_t i = 0; i < n; i++) {
        unsigned x;
        sscanf(hex + 2 * i, "%2x", &x);
        p[i] = (uint8_t)x;
    }
    return (ProtobufCBinaryData){n, n ? p : NULL};
}

/* Packs any message into OB; |*len| gets its size. */
static inline uint8_t *pack(const void *m, size_t *len)
{
    *len = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = ob_alloc(*len + 1);
    protobuf_c_message_pack(m, buf);
    return buf;
}

#endif
