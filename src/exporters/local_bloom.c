/*
 * local_bloom.c - the SQL functions of the embedded store's attribute filter
 * (local_bloom.h; the filter itself: attr_bloom.h).
 *
 * Sits between local_txn.c (which fills a trace's filter as it writes its
 * spans) and local_store.c (whose trace list asks it before verifying spans).
 */
#include "local_bloom.h"

#include "attr_bloom.h"

/* ----------------------------------------------------------- SQL functions -- */

/* pc_bloom_or(a, b) */
static void fn_bloom_or(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    const unsigned char *a = sqlite3_value_blob(argv[0]), *b = sqlite3_value_blob(argv[1]);
    int n = sqlite3_value_bytes(argv[0]);
    if (!a || !b || n != PC_ATTR_BLOOM_BYTES || n != sqlite3_value_bytes(argv[1])) {
        sqlite3_result_null(ctx);
        return;
    }
    unsigned char out[PC_ATTR_BLOOM_BYTES];
    for (int i = 0; i < n; i++)
        out[i] = a[i] | b[i];
    sqlite3_result_blob(ctx, out, n, SQLITE_TRANSIENT);
}

/* pc_bloom_may(filter, key, value) */
static void fn_bloom_may(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    if (sqlite3_value_type(argv[0]) != SQLITE_BLOB) {
        sqlite3_result_int(ctx, 1);
        return;
    }
    const unsigned char *f = sqlite3_value_blob(argv[0]);
    size_t n = (size_t)sqlite3_value_bytes(argv[0]);
    const char *k = (const char *)sqlite3_value_text(argv[1]);
    size_t kn = k ? (size_t)sqlite3_value_bytes(argv[1]) : 0;
    const char *v = (const char *)sqlite3_value_text(argv[2]);
    size_t vn = v ? (size_t)sqlite3_value_bytes(argv[2]) : 0;
    sqlite3_result_int(ctx, pc_attr_bloom_may(f, n, k ? k : "", kn, v ? v : "", vn));
}

int pc_local_bloom_register(sqlite3 *db)
{
    int rc = sqlite3_create_function_v2(db, "pc_bloom_or", 2, SQLITE_UTF8 | SQLITE_DETERMINISTIC,
                                        NULL, fn_bloom_or, NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_create_function_v2(db, "pc_bloom_may", 3, SQLITE_UTF8 | SQLITE_DETERMINISTIC,
                                        NULL, fn_bloom_may, NULL, NULL, NULL);
    return rc;
}
