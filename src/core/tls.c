/*
 * tls.c - TLS for the listeners on GnuTLS (see tls.h).
 *
 * Validation parses each file on its own first, so a message can name the
 * file that is wrong (a certificate in key_file, a key that belongs to another
 * certificate, an empty CA bundle); the server side then loads the same text
 * into one gnutls_certificate_credentials_t per listener, shared by all its
 * sessions (GnuTLS credentials are read-only once set up, so that is safe
 * across threads).
 *
 * Connections are non-blocking sessions with GNUTLS_NO_SIGNAL (MSG_NOSIGNAL on
 * every send). Client certificates, when required, are checked twice: GnuTLS
 * verifies them during the handshake (gnutls_session_set_verify_cert), and
 * pc_tls_handshake verifies the peer again before it reports success, so a
 * session that completes without a verified certificate is never used.
 *
 * Why GnuTLS: Debian's libmicrohttpd does HTTPS only through GnuTLS, so the
 * HTTP listeners have it anyway; the gRPC listener uses the same library.
 */
#include "tls.h"
#include "log.h"
#include "mem.h"

#include <errno.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PEM_FILE (1 << 20) /* a certificate chain or a CA bundle is far smaller */

struct pc_tls_server {
    gnutls_certificate_credentials_t cred;
    char *cert_pem, *key_pem, *ca_pem;
    int mutual;
};

struct pc_tls_conn {
    gnutls_session_t sess;
    int mutual;
    int require_alpn;
    size_t owed; /* bytes of a send that returned AGAIN */
    char err[200];
};

int pc_tls_enabled(const pc_tls_config *c)
{
    return c && c->cert_file && *c->cert_file;
}

int pc_tls_mutual(const pc_tls_config *c)
{
    return pc_tls_enabled(c) && c->client_ca_file && *c->client_ca_file;
}

const char *pc_tls_mode(const pc_tls_config *c)
{
    return pc_tls_mutual(c) ? "mTLS" : pc_tls_enabled(c) ? "TLS" : "plaintext";
}

/* ---- files ------------------------------------------------------------------ */

/* Reads |path| into a NUL-terminated heap string (the caller frees it).
 * Returns NULL with the reason in |why|. */
static char *read_pem(const char *path, char *why, size_t whylen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(why, whylen, "cannot read '%s': %s", path, strerror(errno));
        return NULL;
    }
    char *buf = pc_xmalloc(MAX_PEM_FILE + 1);
    size_t n = fread(buf, 1, MAX_PEM_FILE + 1, f);
    int bad = ferror(f);
    int err = errno;
    fclose(f);
    if (bad || n > MAX_PEM_FILE) {
        if (bad) snprintf(why, whylen, "cannot read '%s': %s", path, strerror(err));
        else snprintf(why, whylen, "'%s' is larger than %d bytes", path, MAX_PEM_FILE);
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

static gnutls_datum_t datum(const char *pem)
{
    gnutls_datum_t d = {(unsigned char *)pem, (unsigned)strlen(pem)};
    return d;
}

/* Checks that |pem| holds at least one X.509 certificate. 0 / -1 with |why|. */
static int check_certs(const char *pem, const char *path, char *why, size_t whylen)
{
    gnutls_datum_t d = datum(pem);
    gnutls_x509_crt_t *list = NULL;
    unsigned n = 0;
    int rc = gnutls_x509_crt_list_import2(&list, &n, &d, GNUTLS_X509_FMT_PEM, 0);
    for (unsigned i = 0; i < n; i++)
        gnutls_x509_crt_deinit(list[i]);
    gnutls_free(list);
    if (rc >= 0 && n > 0) return 0;
    snprintf(why, whylen, "'%s' holds no PEM certificate (%s)", path,
             rc < 0 ? gnutls_strerror(rc) : "none found");
    return -1;
}

/* Loads the pair into |cred|; names the file at fault. 0 / -1 with |why|. */
static int load_pair(gnutls_certificate_credentials_t cred, const char *cert_pem,
                     const char *key_pem, const pc_tls_config *c, const char *prefix, char *err,
                     size_t errlen)
{
    gnutls_datum_t cd = datum(cert_pem), kd = datum(key_pem);
    gnutls_x509_privkey_t key;
    gnutls_x509_privkey_init(&key);
    int rc = gnutls_x509_privkey_import2(key, &kd, GNUTLS_X509_FMT_PEM, NULL, 0);
    gnutls_x509_privkey_deinit(key);
    if (rc < 0) {
        snprintf(err, errlen, "%stls.key_file: '%s' holds no usable PEM private key (%s)", prefix,
                 c->key_file, gnutls_strerror(rc));
        return -1;
    }
    rc = gnutls_certificate_set_x509_key_mem2(cred, &cd, &kd, GNUTLS_X509_FMT_PEM, NULL, 0);
    if (rc == GNUTLS_E_CERTIFICATE_KEY_MISMATCH) {
        snprintf(err, errlen,
                 "%stls.key_file: the key in '%s' does not match the certificate in '%s'", prefix,
                 c->key_file, c->cert_file);
        return -1;
    }
    if (rc < 0) {
        snprintf(err, errlen, "%stls.cert_file: cannot use '%s' with '%s': %s", prefix,
                 c->cert_file, c->key_file, gnutls_strerror(rc));
        return -1;
    }
    return 0;
}

/* Reads the files of |c| and loads them into |cred|; the PEM text is returned
 * in |pem| (cert, key, ca; the caller frees them). 0 / -1 with |err|. */
static int load(const pc_tls_config *c, const char *prefix, gnutls_certificate_credentials_t cred,
                char *pem[3], char *err, size_t errlen)
{
    char why[300];
    pem[0] = pem[1] = pem[2] = NULL;
    if (!(pem[0] = read_pem(c->cert_file, why, sizeof(why))) ||
        check_certs(pem[0], c->cert_file, why, sizeof(why))) {
        snprintf(err, errlen, "%stls.cert_file: %s", prefix, why);
        return -1;
    }
    if (!(pem[1] = read_pem(c->key_file, why, sizeof(why)))) {
        snprintf(err, errlen, "%stls.key_file: %s", prefix, why);
        return -1;
    }
    if (load_pair(cred, pem[0], pem[1], c, prefix, err, errlen)) return -1;
    if (!pc_tls_mutual(c)) return 0;
    if (!(pem[2] = read_pem(c->client_ca_file, why, sizeof(why))) ||
        check_certs(pem[2], c->client_ca_file, why, sizeof(why))) {
        snprintf(err, errlen, "%stls.client_ca_file: %s", prefix, why);
        return -1;
    }
    gnutls_datum_t d = datum(pem[2]);
    int rc = gnutls_certificate_set_x509_trust_mem(cred, &d, GNUTLS_X509_FMT_PEM);
    if (rc <= 0) {
        snprintf(err, errlen, "%stls.client_ca_file: no CA certificate loaded from '%s' (%s)",
                 prefix, c->client_ca_file, rc < 0 ? gnutls_strerror(rc) : "none found");
        return -1;
    }
    return 0;
}

static int set(const char *s)
{
    return s && *s;
}

int pc_tls_validate(const pc_tls_config *c, const char *prefix, char *err, size_t errlen)
{
    if (!c || (!set(c->cert_file) && !set(c->key_file) && !set(c->client_ca_file))) return 0;
    if (!set(c->cert_file)) {
        snprintf(err, errlen, "%stls.cert_file: required with %s", prefix,
                 set(c->key_file) ? "key_file" : "client_ca_file");
        return -1;
    }
    if (!set(c->key_file)) {
        snprintf(err, errlen, "%stls.key_file: required with cert_file", prefix);
        return -1;
    }
    gnutls_certificate_credentials_t cred;
    if (gnutls_certificate_allocate_credentials(&cred) < 0) abort(); /* only on OOM */
    char *pem[3];
    int rc = load(c, prefix, cred, pem, err, errlen);
    gnutls_certificate_free_credentials(cred);
    for (int i = 0; i < 3; i++)
        free(pem[i]);
    return rc;
}

/* ---- the server side -------------------------------------------------------- */

pc_tls_server *pc_tls_server_create(const pc_tls_config *c, const char *name)
{
    pc_tls_server *s = pc_xcalloc(1, sizeof(*s));
    if (gnutls_certificate_allocate_credentials(&s->cred) < 0) abort(); /* only on OOM */
    char *pem[3], err[512];
    if (load(c, "", s->cred, pem, err, sizeof(err))) {
        pc_log(PC_LOG_ERROR, name, "%s", err);
        for (int i = 0; i < 3; i++)
            free(pem[i]);
        pc_tls_server_destroy(s);
        return NULL;
    }
    s->cert_pem = pem[0], s->key_pem = pem[1], s->ca_pem = pem[2];
    s->mutual = s->ca_pem != NULL;
    return s;
}

void pc_tls_server_destroy(pc_tls_server *s)
{
    if (!s) return;
    if (s->cred) gnutls_certificate_free_credentials(s->cred);
    free(s->cert_pem);
    if (s->key_pem) memset(s->key_pem, 0, strlen(s->key_pem));
    free(s->key_pem);
    free(s->ca_pem);
    free(s);
}

const char *pc_tls_server_cert_pem(const pc_tls_server *s)
{
    return s->cert_pem;
}

const char *pc_tls_server_key_pem(const pc_tls_server *s)
{
    return s->key_pem;
}

const char *pc_tls_server_ca_pem(const pc_tls_server *s)
{
    return s->ca_pem;
}

int pc_tls_verify_peer(void *session, char *why, size_t whylen)
{
    gnutls_session_t sess = session;
    unsigned status = 0;
    int rc = gnutls_certificate_verify_peers2(sess, &status);
    if (rc == GNUTLS_E_NO_CERTIFICATE_FOUND) {
        snprintf(why, whylen, "no client certificate");
        return -1;
    }
    if (rc < 0) {
        snprintf(why, whylen, "client certificate not verified: %s", gnutls_strerror(rc));
        return -1;
    }
    if (status == 0) return 0;
    gnutls_datum_t out = {NULL, 0};
    if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &out, 0) == 0) {
        snprintf(why, whylen, "client certificate refused: %s", (const char *)out.data);
        gnutls_free(out.data);
    } else {
        snprintf(why, whylen, "client certificate refused (status 0x%x)", status);
    }
    return -1;
}

/* ---- one connection ---------------------------------------------------------- */

pc_tls_conn *pc_tls_conn_create(pc_tls_server *s, int fd, const char *alpn)
{
    pc_tls_conn *c = pc_xcalloc(1, sizeof(*c));
    c->mutual = s->mutual;
    if (gnutls_init(&c->sess, GNUTLS_SERVER | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL) < 0 ||
        gnutls_set_default_priority(c->sess) < 0 ||
        gnutls_credentials_set(c->sess, GNUTLS_CRD_CERTIFICATE, s->cred) < 0)
        abort(); /* only on OOM */
    if (s->mutual) {
        gnutls_certificate_server_set_request(c->sess, GNUTLS_CERT_REQUIRE);
        gnutls_session_set_verify_cert(c->sess, NULL, 0);
    }
    if (alpn) {
        gnutls_datum_t p = datum(alpn);
        gnutls_alpn_set_protocols(c->sess, &p, 1, GNUTLS_ALPN_MANDATORY);
        c->require_alpn = 1;
    }
    gnutls_transport_set_int(c->sess, fd);
    return c;
}

void pc_tls_conn_destroy(pc_tls_conn *c)
{
    if (!c) return;
    gnutls_deinit(c->sess);
    free(c);
}

static int fail(pc_tls_conn *c, const char *what, int rc)
{
    snprintf(c->err, sizeof(c->err), "%s: %s", what, gnutls_strerror(rc));
    return PC_TLS_ERROR;
}

int pc_tls_handshake(pc_tls_conn *c)
{
    int rc;
    do /* INTERRUPTED and warning alerts: go on */
        rc = gnutls_handshake(c->sess);
    while (rc < 0 && rc != GNUTLS_E_AGAIN && !gnutls_error_is_fatal(rc));
    if (rc == GNUTLS_E_AGAIN) return PC_TLS_AGAIN;
    if (rc == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR) {
        gnutls_datum_t out = {NULL, 0};
        unsigned st = gnutls_session_get_verify_cert_status(c->sess);
        gnutls_certificate_verification_status_print(st, GNUTLS_CRT_X509, &out, 0);
        snprintf(c->err, sizeof(c->err), "TLS handshake: client certificate refused: %s",
                 out.data ? (const char *)out.data : "?");
        gnutls_free(out.data);
        return PC_TLS_ERROR;
    }
    if (rc < 0) return fail(c, "TLS handshake", rc);
    if (c->require_alpn) {
        gnutls_datum_t sel = {NULL, 0};
        if (gnutls_alpn_get_selected_protocol(c->sess, &sel) < 0) {
            snprintf(c->err, sizeof(c->err), "TLS handshake: the client did not offer ALPN h2");
            return PC_TLS_ERROR;
        }
    }
    if (c->mutual && pc_tls_verify_peer(c->sess, c->err, sizeof(c->err))) return PC_TLS_ERROR;
    return 0;
}

int pc_tls_want_write(const pc_tls_conn *c)
{
    return gnutls_record_get_direction(c->sess) == 1;
}

ssize_t pc_tls_recv(pc_tls_conn *c, void *buf, size_t n)
{
    for (;;) {
        ssize_t r = gnutls_record_recv(c->sess, buf, n);
        if (r >= 0) return r;
        if (r == GNUTLS_E_AGAIN) return PC_TLS_AGAIN;
        if (r == GNUTLS_E_PREMATURE_TERMINATION) return 0; /* EOF without close_notify */
        if (r == GNUTLS_E_INTERRUPTED || !gnutls_error_is_fatal((int)r)) continue;
        return fail(c, "TLS receive", (int)r);
    }
}

size_t pc_tls_pending(const pc_tls_conn *c)
{
    return gnutls_record_check_pending(c->sess);
}

ssize_t pc_tls_send(pc_tls_conn *c, const void *buf, size_t n)
{
    for (;;) {
        /* GnuTLS keeps an encrypted record that could not be written; it is
         * finished by a call with no data, which answers the original count. */
        ssize_t r = c->owed ? gnutls_record_send(c->sess, NULL, 0)
                            : gnutls_record_send(c->sess, buf, n);
        if (r >= 0) {
            c->owed = 0;
            return r;
        }
        if (r == GNUTLS_E_INTERRUPTED) continue;
        if (r == GNUTLS_E_AGAIN) {
            if (!c->owed) c->owed = n;
            return PC_TLS_AGAIN;
        }
        return fail(c, "TLS send", (int)r);
    }
}

void pc_tls_bye(pc_tls_conn *c)
{
    if (c) gnutls_bye(c->sess, GNUTLS_SHUT_WR); /* non-blocking: best effort */
}

const char *pc_tls_error(const pc_tls_conn *c)
{
    return c->err;
}
