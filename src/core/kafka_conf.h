/*
 * kafka_conf.h - the Kafka connection settings the `kafka` exporter and the
 * `kafka` receiver share, and the librdkafka configuration built from them.
 *
 * Position: config loader → a component's option table (which embeds
 * PC_KAFKA_CONN_OPTIONS) → validate → create → pc_kafka_conn_apply fills the
 * component's rd_kafka_conf_t. One copy of the names, semantics, checks and
 * librdkafka property mapping, so a producer and a consumer configured with
 * the same keys always connect the same way:
 *
 *   brokers, client_id, security.protocol, sasl.mechanism, sasl.username,
 *   sasl.password, tls.ca_file, tls.cert_file, tls.key_file,
 *   tls.insecure_skip_verify
 *
 * Ownership: the strings belong to the component's config (pc_config frees
 * them); librdkafka copies what it is given.
 */
#ifndef PC_KAFKA_CONF_H
#define PC_KAFKA_CONF_H

#include "config.h"

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct pc_kafka_conn_cfg {
    char *brokers;
    char *client_id;
    char *security_protocol;
    char *sasl_mechanism, *sasl_username, *sasl_password;
    char *tls_ca_file, *tls_cert_file, *tls_key_file;
    bool tls_insecure_skip_verify;
} pc_kafka_conn_cfg;

/*
 * The option rows of a pc_kafka_conn_cfg member |m| of the config struct |T|,
 * under the key prefix |P| (a string literal: "" for a component's main Kafka
 * connection, or ending in '.', e.g. "dead_letter.", for a Kafka destination
 * besides its main one), to be placed inside a component's option table.
 * |BROKERS_DOC| says whether brokers is required; it has no default either way
 * (an empty optional one means "no Kafka").
 */
#define PC_KAFKA_CONN_OPTIONS_AT(T, m, P, BROKERS_DOC)                                             \
    {P "brokers", PC_OPT_STRING, NULL, offsetof(T, m.brokers), 0, 0, BROKERS_DOC},                 \
        {P "client_id", PC_OPT_STRING, "prela-collector", offsetof(T, m.client_id), 0, 0,          \
         "Kafka client.id"},                                                                       \
        {P "security.protocol", PC_OPT_STRING, "PLAINTEXT", offsetof(T, m.security_protocol), 0,   \
         0, "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"},                                         \
        {P "sasl.mechanism", PC_OPT_STRING, "SCRAM-SHA-256", offsetof(T, m.sasl_mechanism), 0, 0,  \
         "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (SASL_* protocols)"},                              \
        {P "sasl.username", PC_OPT_STRING, NULL, offsetof(T, m.sasl_username), 0, 0,               \
         "SASL user name"},                                                                        \
        {P "sasl.password", PC_OPT_STRING, NULL, offsetof(T, m.sasl_password), 0, 0,               \
         "SASL password"},                                                                         \
        {P "tls.ca_file", PC_OPT_STRING, NULL, offsetof(T, m.tls_ca_file), 0, 0,                   \
         "CA certificates (PEM) to verify brokers; empty = the system's"},                         \
        {P "tls.cert_file", PC_OPT_STRING, NULL, offsetof(T, m.tls_cert_file), 0, 0,               \
         "client certificate (PEM) for mutual TLS"},                                               \
        {P "tls.key_file", PC_OPT_STRING, NULL, offsetof(T, m.tls_key_file), 0, 0,                 \
         "client private key (PEM)"},                                                              \
    {                                                                                              \
        P "tls.insecure_skip_verify", PC_OPT_BOOL, "false",                                        \
            offsetof(T, m.tls_insecure_skip_verify), 0, 0,                                         \
            "do not verify the brokers' certificates and host names (testing only)"                \
    }

/* The main connection's rows: no prefix, brokers required. */
#define PC_KAFKA_CONN_OPTIONS(T, m)                                                                \
    PC_KAFKA_CONN_OPTIONS_AT(T, m, "", "bootstrap servers, comma-separated host:port (required)")

/*
 * Checks the settings and how they relate (brokers required, SASL settings
 * only and always with SASL_* protocols, tls.* only with SSL / SASL_SSL, cert
 * and key together, files readable). Returns 0, or -1 with a message naming
 * the key in |err|.
 */
int pc_kafka_conn_validate(const pc_kafka_conn_cfg *c, char *err, size_t errlen);

/*
 * Sets bootstrap.servers, client.id, security.protocol, sasl.* and ssl.* on
 * |conf| from the validated |c|, and routes librdkafka's log lines to the
 * collector's log (debug level). Returns 0, or -1 after logging as |id| which
 * key librdkafka refused.
 */
int pc_kafka_conn_apply(rd_kafka_conf_t *conf, const pc_kafka_conn_cfg *c, const char *id);

/* Sets the librdkafka property |name| = |value|; on failure logs as |id|
 * naming our setting |key|. 0 / -1. */
int pc_kafka_conf_set(rd_kafka_conf_t *conf, const char *id, const char *key, const char *name,
                      const char *value);
/* Same with an integer value. */
int pc_kafka_conf_set_int(rd_kafka_conf_t *conf, const char *id, const char *key,
                          const char *name, int64_t value);

/* For a librdkafka error callback's |err| and |reason|: " (check <our
 * settings>)" when the error is one that configuration causes and fixes (TLS
 * verification, authentication), else "". A static string. */
const char *pc_kafka_error_hint(int err, const char *reason);

/* Index of |s| in the NULL-terminated |names|, any case, or -1. */
int pc_kafka_find_name(const char *const *names, const char *s);

#endif
