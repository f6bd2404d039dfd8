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
    int64_t timeout_ms, max_rows, max_wait_ms, query_timeout_ms;
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

#endif
