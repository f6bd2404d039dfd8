/*
 * clickhouse_conf.h - the settings of the `clickhouse` exporter: the struct
 * the config loader fills, the option table (`prela-collector --help` lists
 * it) and the checks of how settings relate.
 *
 * Position: config loader → pc_ch_options → pc_ch_validate → clickhouse.c's
 * create. The strings belong to the config (pc_config frees them).
 */
#ifndef PC_CLICKHOUSE_CONF_H
#define PC_CLICKHOUSE_CONF_H

#include "config.h"
#include "kafka_conf.h"
#include "spooler.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct pc_ch_cfg {
    char *host;
    int64_t port;
    char *secure;
    char *user, *password, *database, *dialect, *compression;
    int64_t timeout_ms, max_rows, max_wait_ms, query_timeout_ms, rollup_settle_ms;
    int64_t compression_level; /* 0: the codec's default (clickhouse_zip.h) */
    char *tls_ca_file;
    bool tls_insecure_skip_verify;
    int64_t max_partitions;
    char *dl_directory;
    int64_t dl_max_size, dl_max_files;
    char *dl_topic;
    pc_kafka_conn_cfg dl_kafka; /* dl_kafka.brokers set: the dead letter is a topic */
    pc_spooler_cfg spool;
} pc_ch_cfg;

extern const pc_option pc_ch_options[];

/* Checks the settings and how they relate; -1 with a message naming the key. */
int pc_ch_validate(const void *cfg, char *err, size_t errlen);
/* Whether the exporter talks https; see the `secure` option. */
bool pc_ch_use_tls(const pc_ch_cfg *c);
/* Case-insensitive equality of a setting |s| (may be NULL) with |v|. */
bool pc_ch_is(const char *s, const char *v);
/*
 * Whether the `host` setting |host| (may be NULL) names this machine's
 * loopback by its text: localhost (any case, a trailing dot allowed), an
 * IPv4 address in 127.0.0.0/8, or ::1 or ::ffff:127.x.y.z (bracketed or
 * not). Nothing is resolved: another name for this machine is not loopback.
 */
bool pc_ch_host_is_loopback(const char *host);
/*
 * The codec of `compression` |c| before asking the server: the named one; for
 * auto, none on a loopback host (pc_ch_host_is_loopback) and zstd elsewhere,
 * which clickhouse.c's start confirms with the server (gzip when refused).
 * Why none on loopback: the bytes never leave the host, so compressing only
 * costs CPU on both sides (measured in bench/README.md, "ClickHouse ingest CPU").
 * Call after pc_ch_validate.
 */
int pc_ch_auto_codec(const pc_ch_cfg *c);

#endif
