/*
 * local_zip.c - zstd dictionary compression of the embedded store's JSON
 * columns: the writer's training and packing, and the pc_unzip() SQL function
 * every reading connection uses (local_zip.h has the stored form).
 *
 * Where it sits: local_txn.c (writer thread) packs; local_store.c and
 * local_writer.c read through pc_unzip in their SQL.
 */
#include "local_zip.h"

#include "log.h"
#include "mem.h"
#include "sync.h"
#include "timefmt.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <zdict.h>
#include <zstd.h>

#define SAMPLES_MAX 65536 /* values kept for training, at most */
#define SAMPLES_MIN 64    /* fewer (a few huge values) train nothing useful: gather again */
#define SAMPLE_CUT 16384  /* bytes of a value kept as its sample, at most */
#define CCTX_POOL 8       /* idle contexts kept for pc_local_zip_borrow */

/* ----------------------------------------------------------- pc_unzip() -- */

/* One connection's decompression state: its context and the dictionaries
 * it has read so far (a store has one, rarely a few). */
typedef struct unzip_conn {
    ZSTD_DCtx *dctx;
    struct {
        uint32_t id;
        ZSTD_DDict *dd;
    } * dicts;
    size_t n_dicts;
} unzip_conn;

static void unzip_conn_free(void *p)
{
    unzip_conn *u = p;
    if (!u) return;
    for (size_t i = 0; i < u->n_dicts; i++)
        ZSTD_freeDDict(u->dicts[i].dd);
    free(u->dicts);
    ZSTD_freeDCtx(u->dctx);
    free(u);
}

/* The dictionary |id| of this connection's database, read from span_dicts on
 * first use; NULL when it has no such row. */
static ZSTD_DDict *ddict_get(unzip_conn *u, sqlite3 *db, uint32_t id)
{
    for (size_t i = 0; i < u->n_dicts; i++)
        if (u->dicts[i].id == id) return u->dicts[i].dd;
    sqlite3_stmt *st = NULL;
    ZSTD_DDict *dd = NULL;
    if (sqlite3_prepare_v2(db, "SELECT dict FROM span_dicts WHERE id = ?1", -1, &st, NULL) ==
        SQLITE_OK) {
        sqlite3_bind_int64(st, 1, id);
        if (sqlite3_step(st) == SQLITE_ROW) {
            const void *d = sqlite3_column_blob(st, 0);
            int n = sqlite3_column_bytes(st, 0);
            if (d && n > 0) dd = ZSTD_createDDict(d, (size_t)n);
        }
    }
    sqlite3_finalize(st);
    if (!dd) return NULL;
    u->dicts = pc_xrealloc(u->dicts, (u->n_dicts + 1) * sizeof(*u->dicts));
    u->dicts[u->n_dicts].id = id;
    u->dicts[u->n_dicts].dd = dd;
    u->n_dicts++;
    return dd;
}

static void unzip_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    if (sqlite3_value_type(argv[0]) != SQLITE_BLOB) {
        sqlite3_result_value(ctx, argv[0]);
        return;
    }
    unzip_conn *u = sqlite3_user_data(ctx);
    const void *src = sqlite3_value_blob(argv[0]);
    size_t n = (size_t)sqlite3_value_bytes(argv[0]);
    unsigned long long size = src ? ZSTD_getFrameContentSize(src, n) : ZSTD_CONTENTSIZE_ERROR;
    sqlite3 *db = sqlite3_context_db_handle(ctx);
    int limit = sqlite3_limit(db, SQLITE_LIMIT_LENGTH, -1);
    if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN ||
        size > (unsigned long long)limit) {
        sqlite3_result_error(ctx, "pc_unzip: not a stored compressed value", -1);
        return;
    }
    uint32_t id = ZSTD_getDictID_fromFrame(src, n);
    ZSTD_DDict *dd = id ? ddict_get(u, db, id) : NULL;
    if (id && !dd) {
        sqlite3_result_error(ctx, "pc_unzip: the value's dictionary is not in span_dicts", -1);
        return;
    }
    char *out = sqlite3_malloc64(size + 1);
    if (!out) {
        sqlite3_result_error_nomem(ctx);
        return;
    }
    size_t got = dd ? ZSTD_decompress_usingDDict(u->dctx, out, size, src, n, dd)
                    : ZSTD_decompressDCtx(u->dctx, out, size, src, n);
    if (ZSTD_isError(got) || got != size) {
        sqlite3_free(out);
        sqlite3_result_error(ctx, "pc_unzip: corrupt compressed value", -1);
        return;
    }
    out[size] = '\0';
    sqlite3_result_text64(ctx, out, size, sqlite3_free, SQLITE_UTF8);
}

int pc_local_zip_register(sqlite3 *db)
{
    unzip_conn *u = pc_xcalloc(1, sizeof(*u));
    u->dctx = ZSTD_createDCtx();
    if (!u->dctx) {
        free(u);
        return SQLITE_NOMEM;
    }
    /* On failure SQLite calls the destructor itself. */
    return sqlite3_create_function_v2(db, "pc_unzip", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC, u,
                                      unzip_fn, NULL, NULL, unzip_conn_free);
}

/* --------------------------------------------------------------- writer -- */

struct pc_local_zip {
    const char *id;
    sqlite3 *db;
    size_t sample_bytes; /* 0: never train */
    ZSTD_CCtx *cctx;   /* the writer's */
    ZSTD_CDict *cdict; /* NULL until trained or loaded; set once (atomic store), then read
                        * by any thread */
    pthread_mutex_t pool_mu; /* |pool|: idle contexts for pc_local_zip_borrow */
    ZSTD_CCtx *pool[CCTX_POOL];
    size_t n_pool;
    uint32_t dict_id;
    /* The samples, back to back, while there is no dictionary. While the
     * trainer thread runs it owns them (and |trained|, |trained_n|). */
    pc_buf samples;
    size_t *sizes;
    size_t n_samples;
    bool training; /* writer thread: the trainer runs or has not been joined */
    pthread_t trainer;
    void *trained;    /* the trainer's dictionary (PC_LOCAL_ZIP_DICT_MAX bytes) */
    size_t trained_n; /* ZDICT's result: its size or an error code */
    pthread_mutex_t mu; /* |busy| */
    pthread_cond_t done_cv;
    bool busy; /* the trainer was started and has not finished */
};

/* Uses the dictionary |d| of |n| bytes (its zstd id |id|) from now on. 0 / -1. */
static int use_dict(pc_local_zip *z, const void *d, size_t n, uint32_t id)
{
    ZSTD_CDict *cd = ZSTD_createCDict(d, n, PC_LOCAL_ZIP_LEVEL);
    if (!cd) return -1;
    ZSTD_freeCDict(z->cdict); /* none: a dictionary is set once (at create or trained) */
    __atomic_store_n(&z->cdict, cd, __ATOMIC_RELEASE);
    z->dict_id = id;
    pc_buf_free(&z->samples);
    free(z->sizes);
    z->sizes = NULL;
    z->n_samples = 0;
    return 0;
}

pc_local_zip *pc_local_zip_create(const char *id, sqlite3 *db, size_t sample_bytes)
{
    pc_local_zip *z = pc_xcalloc(1, sizeof(*z));
    z->id = id;
    z->db = db;
    z->sample_bytes = sample_bytes;
    pthread_mutex_init(&z->mu, NULL);
    pthread_cond_init(&z->done_cv, NULL);
    pthread_mutex_init(&z->pool_mu, NULL);
    /* ZSTD_compress_usingCDict writes the frame local_zip.h describes: content
     * size and dictionary id in the header, no checksum. */
    z->cctx = ZSTD_createCCtx();
    if (!z->cctx) {
        pc_log(PC_LOG_ERROR, id, "cannot set up zstd compression");
        pc_local_zip_destroy(z);
        return NULL;
    }
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(
        db, "SELECT id, dict FROM span_dicts ORDER BY created_ns DESC, id DESC LIMIT 1", -1, &st,
        NULL);
    if (rc == SQLITE_OK) rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        uint32_t did = (uint32_t)sqlite3_column_int64(st, 0);
        const void *d = sqlite3_column_blob(st, 1);
        int n = sqlite3_column_bytes(st, 1);
        if (!d || n <= 0 || ZDICT_getDictID(d, (size_t)n) != did ||
            use_dict(z, d, (size_t)n, did) < 0) {
            pc_log(PC_LOG_ERROR, id, "the store's compression dictionary %u is unusable", did);
            rc = SQLITE_CORRUPT;
        } else {
            rc = SQLITE_DONE;
        }
    }
    if (rc != SQLITE_DONE && rc != SQLITE_CORRUPT)
        pc_log(PC_LOG_ERROR, id, "cannot read span_dicts: %s", sqlite3_errmsg(db));
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        pc_local_zip_destroy(z);
        return NULL;
    }
    return z;
}

void pc_local_zip_destroy(pc_local_zip *z)
{
    if (!z) return;
    if (z->training) pthread_join(z->trainer, NULL);
    free(z->trained);
    pthread_mutex_destroy(&z->mu);
    pthread_cond_destroy(&z->done_cv);
    for (size_t i = 0; i < z->n_pool; i++)
        ZSTD_freeCCtx(z->pool[i]);
    pthread_mutex_destroy(&z->pool_mu);
    ZSTD_freeCDict(z->cdict);
    ZSTD_freeCCtx(z->cctx);
    pc_buf_free(&z->samples);
    free(z->sizes);
    free(z);
}

uint32_t pc_local_zip_dict_id(const pc_local_zip *z)
{
    return z ? z->dict_id : 0;
}

/* Keeps |p| as a training sample while the gathered bytes are short of the goal. */
static void add_sample(pc_local_zip *z, const char *p, size_t n)
{
    if (z->sample_bytes == 0 || z->training || z->samples.len >= z->sample_bytes ||
        z->n_samples >= SAMPLES_MAX)
        return;
    if (!z->sizes) z->sizes = pc_xmalloc(SAMPLES_MAX * sizeof(*z->sizes));
    if (n > SAMPLE_CUT) n = SAMPLE_CUT;
    pc_buf_append(&z->samples, p, n);
    z->sizes[z->n_samples++] = n;
}

/* The trainer thread: trains the dictionary from the samples. */
static void *trainer_main(void *arg)
{
    pc_local_zip *z = arg;
    pc_thread_name("local-zdict");
    z->trained_n = ZDICT_trainFromBuffer(z->trained, PC_LOCAL_ZIP_DICT_MAX, z->samples.data,
                                         z->sizes, (unsigned)z->n_samples);
    pthread_mutex_lock(&z->mu);
    z->busy = false;
    pthread_cond_broadcast(&z->done_cv);
    pthread_mutex_unlock(&z->mu);
    return NULL;
}

/* Stores the trainer's dictionary in span_dicts and compresses with it from
 * now on. 1 when it did, 0 after logging why not. */
static int store_trained(pc_local_zip *z)
{
    size_t n = z->trained_n;
    void *d = z->trained;
    if (ZDICT_isError(n) || ZDICT_getDictID(d, n) == 0) {
        pc_log(PC_LOG_WARN, z->id,
               "cannot train a compression dictionary from %zu values (%s); values stay"
               " uncompressed until the next try",
               z->n_samples, ZDICT_isError(n) ? ZDICT_getErrorName(n) : "no dictionary id");
        return 0;
    }
    uint32_t did = ZDICT_getDictID(d, n);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(z->db,
                                "INSERT INTO span_dicts (id, created_ns, samples, dict)"
                                " VALUES (?1, ?4, ?2, ?3)",
                                -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, did);
        sqlite3_bind_int64(st, 2, (int64_t)z->n_samples);
        sqlite3_bind_blob(st, 3, d, (int)n, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, pc_time_now_ns());
        rc = sqlite3_step(st);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        pc_log(PC_LOG_WARN, z->id, "cannot store the compression dictionary: %s",
               sqlite3_errmsg(z->db));
        return 0;
    }
    size_t from = z->n_samples, bytes = z->samples.len;
    if (use_dict(z, d, n, did) < 0) return 0;
    pc_log(PC_LOG_INFO, z->id,
           "compression dictionary %u (%zu bytes) trained from %zu values (%zu"
           " bytes); JSON columns are stored compressed from now on",
           did, n, from, bytes);
    return 1;
}

/* Ends a training: stores its dictionary, or starts gathering samples over
 * (as many again before the next try). 1 when stored. */
static int finish_training(pc_local_zip *z)
{
    int stored = store_trained(z);
    free(z->trained);
    z->trained = NULL;
    if (!stored) {
        pc_buf_reset(&z->samples);
        z->n_samples = 0;
    }
    return stored;
}

int pc_local_zip_train(pc_local_zip *z)
{
    if (!z || z->cdict || z->sample_bytes == 0) return 0;
    if (z->training) {
        pthread_mutex_lock(&z->mu);
        bool busy = z->busy;
        pthread_mutex_unlock(&z->mu);
        if (busy) return 0;
        pthread_join(z->trainer, NULL);
        z->training = false;
        return finish_training(z);
    }
    if (z->samples.len < z->sample_bytes && z->n_samples < SAMPLES_MAX) return 0;
    if (z->n_samples < SAMPLES_MIN) {
        pc_buf_reset(&z->samples);
        z->n_samples = 0;
        return 0;
    }
    z->trained = pc_xmalloc(PC_LOCAL_ZIP_DICT_MAX);
    pthread_mutex_lock(&z->mu);
    z->busy = true;
    pthread_mutex_unlock(&z->mu);
    if (pthread_create(&z->trainer, NULL, trainer_main, z) != 0) {
        trainer_main(z); /* no thread: train here */
        return finish_training(z);
    }
    z->training = true;
    return 0;
}

void pc_local_zip_wait(pc_local_zip *z)
{
    if (!z) return;
    pthread_mutex_lock(&z->mu);
    while (z->busy)
        pthread_cond_wait(&z->done_cv, &z->mu);
    pthread_mutex_unlock(&z->mu);
}

/* Appends the frame of the |n| bytes |p| (at least PC_LOCAL_ZIP_MIN) packed
 * with |cc| and |cd| to |out|: true, or false (nothing appended) when it does
 * not gain. Both packing ways go through it. */
static bool pack_with(ZSTD_CCtx *cc, const ZSTD_CDict *cd, const char *p, size_t n, pc_buf *out)
{
    size_t cap = ZSTD_compressBound(n);
    pc_buf_reserve(out, cap);
    size_t got = ZSTD_compress_usingCDict(cc, out->data + out->len, cap, p, n, cd);
    if (ZSTD_isError(got) || got >= n) return false;
    out->len += got;
    return true;
}

bool pc_local_zip_pack(pc_local_zip *z, const char *p, size_t n, pc_buf *out)
{
    if (!z || n < PC_LOCAL_ZIP_MIN) return false;
    if (!z->cdict) {
        add_sample(z, p, n);
        return false;
    }
    pc_buf_reset(out);
    return pack_with(z->cctx, z->cdict, p, n, out);
}

struct pc_local_zip_ctx {
    ZSTD_CCtx *cctx;
    const ZSTD_CDict *cdict;
};

pc_local_zip_ctx *pc_local_zip_borrow(pc_local_zip *z)
{
    const ZSTD_CDict *cd = z ? __atomic_load_n(&z->cdict, __ATOMIC_ACQUIRE) : NULL;
    if (!cd) return NULL;
    pthread_mutex_lock(&z->pool_mu);
    ZSTD_CCtx *cc = z->n_pool ? z->pool[--z->n_pool] : NULL;
    pthread_mutex_unlock(&z->pool_mu);
    if (!cc) cc = ZSTD_createCCtx();
    if (!cc) return NULL;
    pc_local_zip_ctx *c = pc_xmalloc(sizeof(*c));
    *c = (pc_local_zip_ctx){cc, cd};
    return c;
}

void pc_local_zip_give_back(pc_local_zip *z, pc_local_zip_ctx *c)
{
    if (!c) return;
    ZSTD_CCtx *cc = c->cctx;
    free(c);
    pthread_mutex_lock(&z->pool_mu);
    if (z->n_pool < CCTX_POOL) {
        z->pool[z->n_pool++] = cc;
        cc = NULL;
    }
    pthread_mutex_unlock(&z->pool_mu);
    ZSTD_freeCCtx(cc);
}

int pc_local_zip_encode(pc_local_zip_ctx *c, const char *p, size_t n, pc_buf *out)
{
    if (!c) return -1;
    return n >= PC_LOCAL_ZIP_MIN && pack_with(c->cctx, c->cdict, p, n, out);
}
