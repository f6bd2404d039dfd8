/*
 * deadletter.c - the dead-letter file (see deadletter.h): JSON lines,
 * fsync'ed per put, rotated by size, counted.
 *
 * Why a file by default: it needs nothing running, survives a restart, and an
 * operator can read it with jq or replay it (each line carries the row as the
 * exporter sent it). Why fsync per put: rows arrive here only when the server
 * refused them alone, which is rare; the insert they came with is
 * acknowledged (and Kafka offsets committed) right after, so the line must be
 * on disk first.
 */
#include "deadletter.h"

#include "buf.h"
#include "json.h"
#include "log.h"
#include "mem.h"
#include "timefmt.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct pc_deadletter {
    char *dir;      /* the file's directory, created at the first put */
    char *path;     /* <directory>/<name>.jsonl, or the topic */
    rd_kafka_t *rk; /* the Kafka destination, or NULL for the file */
    rd_kafka_topic_t *rkt;
    int64_t timeout_ms;
    int64_t max_size;
    int max_files;
    pthread_mutex_t mu; /* fd, size */
    int fd;
    int64_t size;
    _Atomic uint64_t count;
};

/* mkdir -p |dir|; 0 or -1 with errno. */
static int mkdirs(const char *dir)
{
    char *p = pc_xstrdup(dir);
    int rc = 0;
    for (char *s = p + 1; *s && rc == 0; s++) {
        if (*s != '/') continue;
        *s = '\0';
        if (mkdir(p, 0755) < 0 && errno != EEXIST) rc = -1;
        *s = '/';
    }
    if (rc == 0 && mkdir(p, 0755) < 0 && errno != EEXIST) rc = -1;
    free(p);
    return rc;
}

static int open_current(pc_deadletter *D)
{
    D->fd = open(D->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (D->fd < 0) return -1;
    struct stat st;
    D->size = fstat(D->fd, &st) == 0 ? (int64_t)st.st_size : 0;
    return 0;
}

pc_deadletter *pc_deadletter_create(const char *directory, const char *name, int64_t max_size,
                                    int max_files, char *err, size_t errlen)
{
    if (!directory || !*directory) {
        snprintf(err, errlen, "directory: must not be empty");
        return NULL;
    }
    pc_deadletter *D = pc_xcalloc(1, sizeof(*D));
    D->dir = pc_xstrdup(directory);
    pc_buf p = PC_BUF_INIT;
    pc_buf_printf(&p, "%s/%s.jsonl", directory, name);
    D->path = pc_buf_steal(&p, NULL);
    D->max_size = max_size;
    D->max_files = max_files < 1 ? 1 : max_files;
    D->fd = -1;
    pthread_mutex_init(&D->mu, NULL);
    return D;
}

/* The delivery report of one put: its rd_kafka_resp_err_t, set by dr_cb. */
typedef struct delivery {
    bool done;
    rd_kafka_resp_err_t err;
} delivery;

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    (void)opaque;
    delivery *d = m->_private;
    if (!d) return;
    d->err = m->err;
    d->done = true;
}

pc_deadletter *pc_deadletter_create_kafka(const pc_kafka_conn_cfg *conn, const char *topic,
                                          int64_t timeout_ms, const char *id)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (pc_kafka_conn_apply(conf, conn, id) < 0 ||
        pc_kafka_conf_set(conf, id, "dead_letter", "acks", "all") < 0 ||
        pc_kafka_conf_set(conf, id, "dead_letter", "enable.idempotence", "true") < 0 ||
        pc_kafka_conf_set_int(conf, id, "dead_letter", "linger.ms", 0) < 0 ||
        pc_kafka_conf_set_int(conf, id, "dead_letter", "message.timeout.ms", timeout_ms) < 0) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    char err[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        pc_log(PC_LOG_ERROR, id, "dead_letter: cannot create the Kafka producer: %s", err);
        return NULL;
    }
    pc_deadletter *D = pc_xcalloc(1, sizeof(*D));
    D->fd = -1;
    pthread_mutex_init(&D->mu, NULL);
    D->rk = rk;
    D->rkt = rd_kafka_topic_new(rk, topic, NULL);
    D->path = pc_xstrdup(topic);
    D->timeout_ms = timeout_ms;
    return D;
}

/* Produces |line| keyed by |key| and waits for its delivery report. 0 / -1
 * with the reason in |why|. Call with D->mu held (one message in flight). */
static int produce(pc_deadletter *D, const pc_buf *line, const char *key, char *why, size_t wl)
{
    delivery d = {0};
    if (rd_kafka_produce(D->rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, line->data,
                         line->len - 1 /* no '\n' */, key, strlen(key), &d) < 0) {
        snprintf(why, wl, "%s", rd_kafka_err2str(rd_kafka_last_error()));
        return -1;
    }
    /* The report comes within message.timeout.ms; the margin covers its own delay. */
    int64_t deadline = pc_time_mono_ns() + (D->timeout_ms + 5000) * 1000000LL;
    while (!d.done && pc_time_mono_ns() < deadline)
        rd_kafka_poll(D->rk, 50);
    if (!d.done) {
        /* Still queued: purge it so the report (pointing at |d|) never fires later. */
        rd_kafka_purge(D->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        while (!d.done)
            rd_kafka_poll(D->rk, 50);
        snprintf(why, wl, "no acknowledgement in time");
        return -1;
    }
    if (d.err) {
        snprintf(why, wl, "%s", rd_kafka_err2str(d.err));
        return -1;
    }
    return 0;
}

void pc_deadletter_destroy(pc_deadletter *D)
{
    if (!D) return;
    if (D->rkt) rd_kafka_topic_destroy(D->rkt);
    if (D->rk) {
        rd_kafka_flush(D->rk, 1000);
        rd_kafka_destroy(D->rk);
    }
    if (D->fd >= 0) close(D->fd);
    pthread_mutex_destroy(&D->mu);
    free(D->dir);
    free(D->path);
    free(D);
}

/* Shifts <path>.k to <path>.k+1 (dropping the last), <path> to <path>.1, and
 * opens a new <path>. Call with D->mu held. */
static int rotate(pc_deadletter *D)
{
    close(D->fd);
    D->fd = -1;
    pc_buf from = PC_BUF_INIT, to = PC_BUF_INIT;
    for (int k = D->max_files; k >= 1; k--) {
        pc_buf_reset(&from);
        pc_buf_reset(&to);
        if (k == 1)
            pc_buf_puts(&from, D->path);
        else
            pc_buf_printf(&from, "%s.%d", D->path, k - 1);
        pc_buf_printf(&to, "%s.%d", D->path, k);
        if (rename(from.data, to.data) < 0 && errno != ENOENT) break;
    }
    pc_buf_free(&from);
    pc_buf_free(&to);
    return open_current(D);
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int pc_deadletter_put(pc_deadletter *D, const pc_deadletter_entry *e, const char *log_id)
{
    pc_buf line = PC_BUF_INIT;
    pc_buf_puts(&line, "{\"time\":");
    pc_json_write_time(&line, pc_time_now_ns());
    pc_buf_puts(&line, ",\"reason\":");
    pc_json_write_cstr(&line, e->reason ? e->reason : "");
    pc_buf_printf(&line, ",\"code\":%d,\"table\":", e->code);
    pc_json_write_cstr(&line, e->table ? e->table : "");
    pc_buf_puts(&line, ",\"project_id\":");
    pc_json_write_cstr(&line, e->project_id ? e->project_id : "");
    pc_buf_puts(&line, ",\"trace_id\":");
    pc_json_write_cstr(&line, e->trace_id ? e->trace_id : "");
    pc_buf_puts(&line, ",\"span_id\":");
    pc_json_write_cstr(&line, e->span_id ? e->span_id : "");
    pc_buf_puts(&line, ",\"row\":");
    if (e->row && e->row_len)
        pc_buf_append(&line, e->row, e->row_len); /* already a JSON object */
    else
        pc_buf_puts(&line, "null");
    pc_buf_puts(&line, "}\n");

    if (D->rk) {
        char why[256];
        pthread_mutex_lock(&D->mu);
        int rc = produce(D, &line, e->trace_id ? e->trace_id : "", why, sizeof(why));
        pthread_mutex_unlock(&D->mu);
        pc_buf_free(&line);
        if (rc < 0) {
            pc_log(PC_LOG_ERROR, log_id, "dead letter: cannot produce to %s: %s", D->path, why);
            return -1;
        }
        atomic_fetch_add(&D->count, 1);
        return 0;
    }
    pthread_mutex_lock(&D->mu);
    int rc = 0;
    if (D->fd < 0) rc = mkdirs(D->dir) < 0 ? -1 : open_current(D);
    if (rc == 0 && (D->size > 0 && D->size + (int64_t)line.len > D->max_size)) rc = rotate(D);
    if (rc == 0) rc = write_all(D->fd, line.data, line.len);
    if (rc == 0) rc = fdatasync(D->fd);
    if (rc == 0) D->size += (int64_t)line.len;
    int saved = errno;
    pthread_mutex_unlock(&D->mu);
    pc_buf_free(&line);
    if (rc < 0) {
        pc_log(PC_LOG_ERROR, log_id, "dead letter: cannot write %s (dead_letter.directory): %s",
               D->path, strerror(saved));
        return -1;
    }
    atomic_fetch_add(&D->count, 1);
    return 0;
}

uint64_t pc_deadletter_count(const pc_deadletter *D)
{
    return D ? atomic_load(&((pc_deadletter *)D)->count) : 0;
}

const char *pc_deadletter_path(const pc_deadletter *D)
{
    return D->path;
}
