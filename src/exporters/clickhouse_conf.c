/*
 * clickhouse_conf.c - the `clickhouse` exporter's settings (see
 * clickhouse_conf.h).
 */
#include "clickhouse_conf.h"

#include "clickhouse_sql.h"
#include "clickhouse_zip.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define OPT(k, t, d, f, lo, hi, doc)                                                               \
    {                                                                                              \
        k, t, d, offsetof(pc_ch_cfg, f), lo, hi, doc                                                  \
    }
const pc_option pc_ch_options[] = {
    OPT("host", PC_OPT_STRING, "localhost", host, 0, 0, "ClickHouse host (HTTP interface)"),
    OPT("port", PC_OPT_INT, "8123", port, 1, 65535, "HTTP port: 8123, or 8443 with TLS"),
    OPT("secure", PC_OPT_STRING, "auto", secure, 0, 0,
        "auto (https when port is 8443 or a tls.* setting is set), true (https) or false "
        "(http)"),
    OPT("user", PC_OPT_STRING, "default", user, 0, 0, "user name"),
    OPT("password", PC_OPT_STRING, NULL, password, 0, 0, "password"),
    OPT("database", PC_OPT_STRING, "prela", database, 0, 0,
        "database of the traces and spans tables, created on start"),
    OPT("dialect", PC_OPT_STRING, "auto", dialect, 0, 0,
        "auto (by SELECT version(): < 20 legacy), modern or legacy"),
    OPT("timeout", PC_OPT_DURATION, "10s", timeout_ms, 1, 3600000,
        "how long consume may take (retries included) before answering retry"),
    OPT("query_timeout", PC_OPT_DURATION, "30s", query_timeout_ms, 1000, 3600000,
        "longest a query API read may run on the server (max_execution_time, whole seconds)"),
    OPT("rollup_settle", PC_OPT_DURATION, "2m", rollup_settle_ms, 0, 86400000,
        "stats read an hour from its rollup once built this long after the hour's last write "
        "(longer than an insert and than spans take to arrive after they end); 0 = no rollups"),
    OPT("batch.max_rows", PC_OPT_INT, "20000", max_rows, 1, 10000000,
        "an insert is sent once it holds this many span rows"),
    OPT("batch.max_wait", PC_OPT_DURATION, "50ms", max_wait_ms, 0, 60000,
        "... or once this long has passed since the previous insert began (an idle exporter "
        "inserts at once)"),
    OPT("compression", PC_OPT_STRING, "auto", compression, 0, 0,
        "INSERT body compression: auto (none when host is loopback: localhost, 127.0.0.0/8, "
        "::1; else zstd when the server accepts it, asked on start, else gzip), zstd, gzip "
        "or none"),
    OPT("compression_level", PC_OPT_INT, "0", compression_level, 0, 19,
        "level of that compression: 0 = the fast default (gzip 1, zstd 1), gzip 1..9, "
        "zstd 1..19"),
    OPT("tls.ca_file", PC_OPT_STRING, NULL, tls_ca_file, 0, 0,
        "CA certificates (PEM) to verify the server; empty = the system's"),
    OPT("tls.insecure_skip_verify", PC_OPT_BOOL, "false", tls_insecure_skip_verify, 0, 0,
        "do not verify the server's certificate and host name (testing only)"),
    OPT("batch.max_partitions", PC_OPT_INT, "40", max_partitions, 1, 99,
        "most monthly partitions one INSERT block touches (ClickHouse refuses over 100)"),
    OPT("dead_letter.directory", PC_OPT_STRING, "./prela-data", dl_directory, 0, 0,
        "where rows ClickHouse refuses are set aside: <directory>/deadletter-<id>.jsonl"),
    OPT("dead_letter.max_size", PC_OPT_SIZE, "64MiB", dl_max_size, 4096, INT64_MAX,
        "size at which the dead-letter file is rotated"),
    OPT("dead_letter.max_files", PC_OPT_INT, "4", dl_max_files, 1, 1000,
        "rotated dead-letter files kept (the oldest is deleted)"),
    OPT("dead_letter.topic", PC_OPT_STRING, "prela.deadletter", dl_topic, 0, 0,
        "with dead_letter.brokers: the topic rows ClickHouse refuses are produced to"),
    PC_KAFKA_CONN_OPTIONS_AT(pc_ch_cfg, dl_kafka, "dead_letter.",
                             "bootstrap servers, comma-separated host:port"),
    PC_SPOOLER_OPTIONS(pc_ch_cfg, spool),
    {NULL, 0, NULL, 0, 0, 0, NULL},
};
#undef OPT

static int bad(char *err, size_t errlen, const char *key, const char *what)
{
    snprintf(err, errlen, "%s: %s", key, what);
    return -1;
}

bool pc_ch_is(const char *s, const char *v)
{
    return s && strcasecmp(s, v) == 0;
}

static bool has_tls_settings(const pc_ch_cfg *c)
{
    return (c->tls_ca_file && *c->tls_ca_file) || c->tls_insecure_skip_verify;
}

bool pc_ch_use_tls(const pc_ch_cfg *c)
{
    return pc_ch_is(c->secure, "true") ||
           (pc_ch_is(c->secure, "auto") && (c->port == 8443 || has_tls_settings(c)));
}

int pc_ch_validate(const void *cfgp, char *err, size_t errlen)
{
    const pc_ch_cfg *c = cfgp;
    if (!c->host || !*c->host) return bad(err, errlen, "host", "must not be empty");
    if (!pc_ch_is(c->secure, "auto") && !pc_ch_is(c->secure, "true") && !pc_ch_is(c->secure, "false"))
        return bad(err, errlen, "secure", "must be auto, true or false");
    if (!pc_ch_valid_database(c->database))
        return bad(err, errlen, "database", "must be 1..64 characters of A-Z a-z 0-9 _");
    if (!pc_ch_is(c->dialect, "auto") && !pc_ch_is(c->dialect, "modern") && !pc_ch_is(c->dialect, "legacy"))
        return bad(err, errlen, "dialect", "must be auto, modern or legacy");
    int codec = pc_ch_is(c->compression, "auto") ? PC_CH_CODEC_ZSTD : pc_ch_codec_parse(c->compression);
    if (codec < 0) return bad(err, errlen, "compression", "must be auto, zstd, gzip or none");
    /* auto may become gzip or zstd: its level must suit both */
    if (!pc_ch_codec_level_ok((pc_ch_codec)codec, (int)c->compression_level) ||
        (pc_ch_is(c->compression, "auto") &&
         !pc_ch_codec_level_ok(PC_CH_CODEC_GZIP, (int)c->compression_level)))
        return bad(err, errlen, "compression_level",
                   codec == PC_CH_CODEC_NONE ? "must be 0 with compression none"
                   : codec == PC_CH_CODEC_GZIP || pc_ch_is(c->compression, "auto")
                       ? "must be 0..9 for gzip (and auto, which may be gzip)"
                       : "must be 0..19 for zstd");
    if (!c->dl_directory || !*c->dl_directory)
        return bad(err, errlen, "dead_letter.directory", "must not be empty");
    if (c->dl_kafka.brokers && *c->dl_kafka.brokers) {
        if (!c->dl_topic || !*c->dl_topic)
            return bad(err, errlen, "dead_letter.topic", "must not be empty");
        char kerr[256];
        if (pc_kafka_conn_validate(&c->dl_kafka, kerr, sizeof(kerr)) < 0) {
            snprintf(err, errlen, "dead_letter.%s", kerr); /* kerr starts with the key */
            return -1;
        }
    }
    if (c->max_wait_ms >= c->timeout_ms)
        return bad(err, errlen, "batch.max_wait", "must be shorter than timeout");
    if (c->rollup_settle_ms > 0 && c->rollup_settle_ms <= c->timeout_ms)
        return bad(err, errlen, "rollup_settle",
                   "must be longer than timeout (an insert's marks come before its spans), or 0");
    if (pc_spooler_validate(&c->spool, c->timeout_ms, true, err, errlen) < 0) return -1;
    if (pc_ch_is(c->secure, "false") && has_tls_settings(c))
        return bad(err, errlen,
                   c->tls_ca_file && *c->tls_ca_file ? "tls.ca_file" : "tls.insecure_skip_verify",
                   "set, but secure is false (plain http)");
    if (c->tls_ca_file && *c->tls_ca_file && access(c->tls_ca_file, R_OK) != 0) {
        snprintf(err, errlen, "tls.ca_file: cannot read %s: %s", c->tls_ca_file, strerror(errno));
        return -1;
    }
    return 0;
}

bool pc_ch_host_is_loopback(const char *host)
{
    if (!host) return false;
    char h[INET6_ADDRSTRLEN + 2];
    size_t n = strlen(host);
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']') host++, n -= 2;
    if (n && host[n - 1] == '.') n--; /* "localhost." */
    if (n == 0 || n >= sizeof(h)) return false;
    memcpy(h, host, n);
    h[n] = '\0';
    if (strcasecmp(h, "localhost") == 0) return true;
    struct in_addr a4;
    if (inet_pton(AF_INET, h, &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
    struct in6_addr a6;
    if (inet_pton(AF_INET6, h, &a6) != 1) return false;
    return IN6_IS_ADDR_LOOPBACK(&a6) || (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
}

int pc_ch_auto_codec(const pc_ch_cfg *c)
{
    if (!pc_ch_is(c->compression, "auto")) return pc_ch_codec_parse(c->compression);
    return pc_ch_host_is_loopback(c->host) ? PC_CH_CODEC_NONE : PC_CH_CODEC_ZSTD;
}
