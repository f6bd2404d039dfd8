/*
 * kafka_conf.c - Kafka connection settings shared by the `kafka` exporter and
 * the `kafka` receiver (see kafka_conf.h): validation and the mapping onto
 * librdkafka properties.
 */
#include "kafka_conf.h"

#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static const char *const protocols[] = {"PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL", NULL};
static const char *const mechanisms[] = {"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", NULL};

int pc_kafka_find_name(const char *const *names, const char *s)
{
    for (int i = 0; names[i]; i++)
        if (s && !strcasecmp(names[i], s)) return i;
    return -1;
}

static bool empty(const char *s)
{
    return !s || !*s;
}

static int bad(char *err, size_t errlen, const char *key, const char *what)
{
    snprintf(err, errlen, "%s: %s", key, what);
    return -1;
}

static int check_file(const char *key, const char *path, char *err, size_t errlen)
{
    if (empty(path) || access(path, R_OK) == 0) return 0;
    snprintf(err, errlen, "%s: cannot read %s: %s", key, path, strerror(errno));
    return -1;
}

int pc_kafka_conn_validate(const pc_kafka_conn_cfg *c, char *err, size_t errlen)
{
    if (empty(c->brokers)) return bad(err, errlen, "brokers", "required (host:port,...)");
    int proto = pc_kafka_find_name(protocols, c->security_protocol);
    if (proto < 0)
        return bad(err, errlen, "security.protocol",
                   "must be PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL");
    bool sasl = proto >= 2, tls = proto == 1 || proto == 3;
    if (sasl && pc_kafka_find_name(mechanisms, c->sasl_mechanism) < 0)
        return bad(err, errlen, "sasl.mechanism", "must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512");
    if (sasl && empty(c->sasl_username))
        return bad(err, errlen, "sasl.username", "required with security.protocol SASL_*");
    if (sasl && empty(c->sasl_password))
        return bad(err, errlen, "sasl.password", "required with security.protocol SASL_*");
    if (!sasl && (!empty(c->sasl_username) || !empty(c->sasl_password)))
        return bad(err, errlen, "sasl.username",
                   "set, but security.protocol is not SASL_SSL or SASL_PLAINTEXT");
    const char *tls_key = !empty(c->tls_ca_file)        ? "tls.ca_file"
                          : !empty(c->tls_cert_file)    ? "tls.cert_file"
                          : !empty(c->tls_key_file)     ? "tls.key_file"
                          : c->tls_insecure_skip_verify ? "tls.insecure_skip_verify"
                                                        : NULL;
    if (!tls && tls_key)
        return bad(err, errlen, tls_key, "set, but security.protocol is not SSL or SASL_SSL");
    if (empty(c->tls_cert_file) != empty(c->tls_key_file))
        return bad(err, errlen, empty(c->tls_cert_file) ? "tls.cert_file" : "tls.key_file",
                   "tls.cert_file and tls.key_file go together");
    if (check_file("tls.ca_file", c->tls_ca_file, err, errlen) ||
        check_file("tls.cert_file", c->tls_cert_file, err, errlen) ||
        check_file("tls.key_file", c->tls_key_file, err, errlen))
        return -1;
    return 0;
}

int pc_kafka_conf_set(rd_kafka_conf_t *conf, const char *id, const char *key, const char *name,
                      const char *value)
{
    char err[256];
    if (rd_kafka_conf_set(conf, name, value, err, sizeof(err)) == RD_KAFKA_CONF_OK) return 0;
    pc_log(PC_LOG_ERROR, id, "%s: %s", key, err);
    return -1;
}

int pc_kafka_conf_set_int(rd_kafka_conf_t *conf, const char *id, const char *key,
                          const char *name, int64_t value)
{
    char tmp[32];
    snprintf(tmp, sizeof(tmp), "%lld", (long long)value);
    return pc_kafka_conf_set(conf, id, key, name, tmp);
}

/* librdkafka's own log lines, at debug level, named by the client instance
 * ("prela-collector#producer-1"); without it they go to stderr unformatted. */
static void log_line(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)level;
    pc_log(PC_LOG_DEBUG, "librdkafka", "%s %s: %s", rd_kafka_name(rk), fac, buf);
}

int pc_kafka_conn_apply(rd_kafka_conf_t *conf, const pc_kafka_conn_cfg *c, const char *id)
{
    rd_kafka_conf_set_log_cb(conf, log_line);
    int proto = pc_kafka_find_name(protocols, c->security_protocol); /* validated */
    if (proto < 0) proto = 0;
    if (pc_kafka_conf_set(conf, id, "brokers", "bootstrap.servers", c->brokers) ||
        pc_kafka_conf_set(conf, id, "client_id", "client.id", c->client_id) ||
        pc_kafka_conf_set(conf, id, "kafka", "log.connection.close", "false") ||
        pc_kafka_conf_set(conf, id, "security.protocol", "security.protocol", protocols[proto]))
        return -1;
    if (proto >= 2 && /* SASL_* */
        (pc_kafka_conf_set(conf, id, "sasl.mechanism", "sasl.mechanisms",
                           mechanisms[pc_kafka_find_name(mechanisms, c->sasl_mechanism)]) ||
         pc_kafka_conf_set(conf, id, "sasl.username", "sasl.username", c->sasl_username) ||
         pc_kafka_conf_set(conf, id, "sasl.password", "sasl.password", c->sasl_password)))
        return -1;
    if ((!empty(c->tls_ca_file) &&
         pc_kafka_conf_set(conf, id, "tls.ca_file", "ssl.ca.location", c->tls_ca_file)) ||
        (!empty(c->tls_cert_file) &&
         pc_kafka_conf_set(conf, id, "tls.cert_file", "ssl.certificate.location",
                           c->tls_cert_file)) ||
        (!empty(c->tls_key_file) &&
         pc_kafka_conf_set(conf, id, "tls.key_file", "ssl.key.location", c->tls_key_file)))
        return -1;
    if (c->tls_insecure_skip_verify &&
        (pc_kafka_conf_set(conf, id, "tls.insecure_skip_verify",
                           "enable.ssl.certificate.verification", "false") ||
         pc_kafka_conf_set(conf, id, "tls.insecure_skip_verify",
                           "ssl.endpoint.identification.algorithm", "none")))
        return -1;
    /* The broker's name (or IP address) must be in its certificate: librdkafka's
     * default only since 2.0, so said explicitly. */
    if ((proto == 1 || proto == 3) && !c->tls_insecure_skip_verify &&
        pc_kafka_conf_set(conf, id, "security.protocol", "ssl.endpoint.identification.algorithm",
                          "https"))
        return -1;
    return 0;
}

const char *pc_kafka_error_hint(int err, const char *reason)
{
    static const char tls[] = " (check tls.ca_file, and that the brokers' certificates name "
                              "the hosts in brokers)";
    /* A failed verification may come as _SSL or, depending on where the handshake
     * stopped, as _TRANSPORT with OpenSSL's words. */
    if (reason && (strstr(reason, "certificate verify failed") || strstr(reason, "SSL handshake")))
        return tls;
    switch (err) {
    case RD_KAFKA_RESP_ERR__SSL:
        return tls;
    case RD_KAFKA_RESP_ERR__AUTHENTICATION:
    case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
        return " (check sasl.username, sasl.password and sasl.mechanism)";
    default:
        return "";
    }
}
