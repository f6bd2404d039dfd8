/*
 * test_tls.c - TLS for the listeners (src/core/tls.c), and the gRPC server
 * (src/core/grpc.c) with TLS on.
 *
 * Certificates are made by `openssl` into a temp dir at the start: a CA, a
 * server certificate for localhost / 127.0.0.1 signed by it, a client
 * certificate signed by it, and a client certificate signed by another CA.
 * Validation errors must name the key at fault. Connections run a real GnuTLS
 * client session against pc_tls_conn over a socketpair (both non-blocking,
 * driven in turn), and against a running pc_grpc_server over TCP.
 */
#include "check.h"
#include "grpc.h"
#include "log.h"
#include "tls.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

static char dir[64];
static char path_buf[16][160];
static int n_paths;

/* "<dir>/<name>"; the string lives until the end of the test. */
static const char *P(const char *name)
{
    char *p = path_buf[n_paths++ % 16];
    snprintf(p, sizeof(path_buf[0]), "%s/%s", dir, name);
    return p;
}

static int make_certs(void)
{
    char tmpl[] = "/tmp/pc-test-tls-XXXXXX";
    if (!mkdtemp(tmpl)) return -1;
    snprintf(dir, sizeof(dir), "%s", tmpl);
    char cmd[3000];
    snprintf(cmd, sizeof(cmd),
             "set -e; cd %s\n"
             "ec='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes'\n"
             "openssl req -x509 $ec -keyout ca.key -out ca.crt -days 2 -subj /CN=TestCA\n"
             "openssl req -x509 $ec -keyout other.key -out other.crt -days 2 -subj /CN=OtherCA\n"
             "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > srv.ext\n"
             "openssl req $ec -keyout server.key -out server.csr -subj /CN=localhost\n"
             "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial"
             " -out server.crt -days 2 -extfile srv.ext\n"
             "openssl req $ec -keyout client.key -out client.csr -subj /CN=client\n"
             "openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -out client.crt -days 2\n"
             "openssl req $ec -keyout rogue.key -out rogue.csr -subj /CN=rogue\n"
             "openssl x509 -req -in rogue.csr -CA other.crt -CAkey other.key -CAcreateserial"
             " -out rogue.crt -days 2\n"
             "echo 'not a pem file' > junk.pem\n",
             dir);
    char full[3200];
    snprintf(full, sizeof(full), "(%s) >%s/openssl.log 2>&1", cmd, dir);
    if (system(full) != 0) {
        fprintf(stderr, "openssl failed; see %s/openssl.log\n", dir);
        return -1;
    }
    return 0;
}

static void remove_certs(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

/* Validates and returns the message ("" when valid). */
static const char *validate(const char *cert, const char *key, const char *ca, const char *prefix)
{
    static char err[600];
    pc_tls_config c = {(char *)cert, (char *)key, (char *)ca};
    err[0] = '\0';
    int rc = pc_tls_validate(&c, prefix, err, sizeof(err));
    CHECK_EQ_INT(rc, err[0] ? -1 : 0);
    return err;
}

/* Whether |msg| starts with |key| followed by ':' and contains |text|. */
static int names(const char *msg, const char *key, const char *text)
{
    size_t n = strlen(key);
    int ok = strncmp(msg, key, n) == 0 && msg[n] == ':' && strstr(msg, text) != NULL;
    if (!ok) fprintf(stderr, "  message: %s\n  wanted:  %s: ...%s...\n", msg, key, text);
    return ok;
}

static void test_validate(void)
{
    CHECK_EQ_STR(validate(NULL, NULL, NULL, ""), "");
    CHECK_EQ_STR(validate(P("server.crt"), P("server.key"), NULL, ""), "");
    CHECK_EQ_STR(validate(P("server.crt"), P("server.key"), P("ca.crt"), ""), "");
    CHECK(names(validate(P("server.crt"), NULL, NULL, ""), "tls.key_file", "required"));
    CHECK(names(validate(NULL, P("server.key"), NULL, ""), "tls.cert_file", "required"));
    CHECK(names(validate(NULL, NULL, P("ca.crt"), ""), "tls.cert_file", "client_ca_file"));
    CHECK(names(validate(P("missing.crt"), P("server.key"), NULL, "protocols.grpc."),
                "protocols.grpc.tls.cert_file", "No such file"));
    CHECK(names(validate(P("server.crt"), P("missing.key"), NULL, "protocols.http."),
                "protocols.http.tls.key_file", "No such file"));
    CHECK(names(validate(P("junk.pem"), P("server.key"), NULL, ""), "tls.cert_file",
                "no PEM certificate"));
    CHECK(names(validate(P("server.key"), P("server.key"), NULL, ""), "tls.cert_file",
                "no PEM certificate"));
    CHECK(names(validate(P("server.crt"), P("junk.pem"), NULL, ""), "tls.key_file",
                "no usable PEM private key"));
    CHECK(names(validate(P("server.crt"), P("client.key"), NULL, ""), "tls.key_file",
                "does not match"));
    CHECK(names(validate(P("server.crt"), P("server.key"), P("junk.pem"), ""),
                "tls.client_ca_file", "no PEM certificate"));
    CHECK(names(validate(P("server.crt"), P("server.key"), P("missing-ca.crt"), ""),
                "tls.client_ca_file", "No such file"));

    pc_tls_config plain = {0}, tls = {(char *)"a", (char *)"b", NULL},
                  mtls = {(char *)"a", (char *)"b", (char *)"c"};
    CHECK_EQ_STR(pc_tls_mode(NULL), "plaintext");
    CHECK_EQ_STR(pc_tls_mode(&plain), "plaintext");
    CHECK_EQ_STR(pc_tls_mode(&tls), "TLS");
    CHECK_EQ_STR(pc_tls_mode(&mtls), "mTLS");
    CHECK(!pc_tls_server_create(&(pc_tls_config){(char *)P("server.crt"), (char *)P("client.key"),
                                                 NULL},
                                "test"));
}

/* ---- a GnuTLS client against pc_tls_conn ------------------------------------ */

typedef struct client {
    gnutls_session_t s;
    gnutls_certificate_credentials_t cred;
} client;

/* A client session on |fd| trusting ca.crt, verifying "localhost"; |alpn| and
 * the |cert| / |key| pair are optional. */
static client client_new(int fd, const char *alpn, const char *cert, const char *key)
{
    client c;
    gnutls_certificate_allocate_credentials(&c.cred);
    CHECK(gnutls_certificate_set_x509_trust_file(c.cred, P("ca.crt"), GNUTLS_X509_FMT_PEM) == 1);
    if (cert)
        CHECK(gnutls_certificate_set_x509_key_file(c.cred, cert, key, GNUTLS_X509_FMT_PEM) >= 0);
    gnutls_init(&c.s, GNUTLS_CLIENT | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL);
    gnutls_set_default_priority(c.s);
    gnutls_credentials_set(c.s, GNUTLS_CRD_CERTIFICATE, c.cred);
    gnutls_server_name_set(c.s, GNUTLS_NAME_DNS, "localhost", 9);
    gnutls_session_set_verify_cert(c.s, "localhost", 0);
    if (alpn) {
        gnutls_datum_t p = {(unsigned char *)alpn, (unsigned)strlen(alpn)};
        gnutls_alpn_set_protocols(c.s, &p, 1, 0);
    }
    gnutls_transport_set_int(c.s, fd);
    return c;
}

static void client_free(client *c)
{
    gnutls_deinit(c->s);
    gnutls_certificate_free_credentials(c->cred);
}

/* Runs both handshakes in turn over a socketpair. Returns the server's result
 * (0 or PC_TLS_ERROR); the client's is in |*cli_rc|. */
static int handshake_pair(pc_tls_conn *srv, client *cli, int *cli_rc)
{
    int s_rc = PC_TLS_AGAIN, c_rc = GNUTLS_E_AGAIN;
    for (int i = 0; i < 2000 && (s_rc == PC_TLS_AGAIN || c_rc == GNUTLS_E_AGAIN); i++) {
        if (c_rc == GNUTLS_E_AGAIN || c_rc == GNUTLS_E_INTERRUPTED) c_rc = gnutls_handshake(cli->s);
        if (s_rc == PC_TLS_AGAIN) s_rc = pc_tls_handshake(srv);
        if (s_rc == PC_TLS_ERROR) break;
        if (c_rc < 0 && c_rc != GNUTLS_E_AGAIN && gnutls_error_is_fatal(c_rc)) break;
    }
    *cli_rc = c_rc;
    return s_rc;
}

/* One connection: server of |srv_cfg|, client with |alpn| and optional cert.
 * Returns the server's handshake result; with |roundtrip| also moves 1 MiB
 * both ways through a small socket buffer (AGAIN and owed sends included). */
static int connect_pair(const pc_tls_config *srv_cfg, const char *alpn, const char *cert,
                        const char *key, int roundtrip)
{
    pc_tls_server *srv = pc_tls_server_create(srv_cfg, "test");
    CHECK(srv != NULL);
    if (!srv) return PC_TLS_ERROR;
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);
    int small = 4096;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    pc_tls_conn *sc = pc_tls_conn_create(srv, sv[0], "h2");
    client cc = client_new(sv[1], alpn, cert, key);
    int cli_rc;
    int rc = handshake_pair(sc, &cc, &cli_rc);
    if (rc == 0 && roundtrip) {
        CHECK_EQ_INT(cli_rc, 0);
        gnutls_datum_t sel = {NULL, 0};
        CHECK(gnutls_alpn_get_selected_protocol(cc.s, &sel) == 0 && sel.size == 2 &&
              memcmp(sel.data, "h2", 2) == 0);
        size_t total = 1 << 20, sent = 0, got = 0, echoed = 0, back = 0;
        unsigned char *out = malloc(total), *in = malloc(total), *ret = malloc(total);
        for (size_t i = 0; i < total; i++)
            out[i] = (unsigned char)(i * 7 + (i >> 12));
        int again = 0;
        /* server -> client, while the client echoes what it got back to the server */
        for (int spins = 0; back < total && spins < 1000000; spins++) {
            if (sent < total) {
                ssize_t w = pc_tls_send(sc, out + sent, total - sent);
                if (w == PC_TLS_AGAIN) again++;
                else if (w > 0) sent += (size_t)w;
                else break;
            }
            ssize_t r = gnutls_record_recv(cc.s, in + got, total - got);
            if (r > 0) got += (size_t)r;
            if (echoed < got) {
                ssize_t w = gnutls_record_send(cc.s, in + echoed, got - echoed);
                if (w > 0) echoed += (size_t)w;
            }
            do {
                r = pc_tls_recv(sc, ret + back, total - back);
                if (r > 0) back += (size_t)r;
            } while (r > 0 && pc_tls_pending(sc));
        }
        CHECK_EQ_INT(back, total);
        CHECK(memcmp(out, ret, total) == 0);
        CHECK(again > 0); /* the 4 KiB buffer must have pushed back */
        free(out), free(in), free(ret);
        gnutls_bye(cc.s, GNUTLS_SHUT_WR);
        ssize_t r;
        unsigned char b[16];
        for (int i = 0; i < 100 && (r = pc_tls_recv(sc, b, sizeof(b))) == PC_TLS_AGAIN; i++)
            continue;
        CHECK_EQ_INT(r, 0); /* close_notify reads as the end */
    }
    if (rc == PC_TLS_ERROR) fprintf(stderr, "  (server refused: %s)\n", pc_tls_error(sc));
    pc_tls_conn_destroy(sc);
    client_free(&cc);
    close(sv[0]), close(sv[1]);
    pc_tls_server_destroy(srv);
    return rc;
}

static void test_connections(void)
{
    pc_tls_config tls = {(char *)P("server.crt"), (char *)P("server.key"), NULL};
    pc_tls_config mtls = {(char *)P("server.crt"), (char *)P("server.key"), (char *)P("ca.crt")};
    CHECK_EQ_INT(connect_pair(&tls, "h2", NULL, NULL, 1), 0);
    CHECK_EQ_INT(connect_pair(&tls, NULL, NULL, NULL, 0), PC_TLS_ERROR);        /* no ALPN */
    CHECK_EQ_INT(connect_pair(&tls, "http/1.1", NULL, NULL, 0), PC_TLS_ERROR);  /* not h2 */
    CHECK_EQ_INT(connect_pair(&mtls, "h2", NULL, NULL, 0), PC_TLS_ERROR);       /* no cert */
    CHECK_EQ_INT(connect_pair(&mtls, "h2", P("rogue.crt"), P("rogue.key"), 0), PC_TLS_ERROR);
    CHECK_EQ_INT(connect_pair(&mtls, "h2", P("client.crt"), P("client.key"), 1), 0);
}

/* ---- the gRPC server with TLS ---------------------------------------------- */

static void h_nothing(void *ctx, pc_grpc_call *call, pc_grpc_reply *reply)
{
    (void)ctx, (void)call, (void)reply;
}

static const pc_grpc_method METHODS[] = {{"/t.S/M", h_nothing, PC_SCOPE_NONE}};

static int dial(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
        close(fd);
        return -1;
    }
    return fd;
}

/* A blocking client handshake with the server on |port|, then reads the first
 * record: the server's HTTP/2 SETTINGS frame. Returns 0 when that came. */
static int grpc_tls_settings(int port, const char *alpn, const char *cert, const char *key)
{
    int fd = dial(port);
    CHECK(fd >= 0);
    client c = client_new(fd, alpn, cert, key);
    gnutls_deinit(c.s); /* again, blocking */
    gnutls_init(&c.s, GNUTLS_CLIENT | GNUTLS_NO_SIGNAL);
    gnutls_set_default_priority(c.s);
    gnutls_credentials_set(c.s, GNUTLS_CRD_CERTIFICATE, c.cred);
    gnutls_session_set_verify_cert(c.s, "localhost", 0);
    if (alpn) {
        gnutls_datum_t p = {(unsigned char *)alpn, (unsigned)strlen(alpn)};
        gnutls_alpn_set_protocols(c.s, &p, 1, 0);
    }
    gnutls_transport_set_int(c.s, fd);
    int rc;
    do
        rc = gnutls_handshake(c.s);
    while (rc < 0 && !gnutls_error_is_fatal(rc));
    int ok = -1;
    if (rc == 0) {
        /* the client preface, so the server's SETTINGS follow */
        static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\4\0\0\0\0\0";
        gnutls_record_send(c.s, preface, sizeof(preface) - 1);
        unsigned char b[64];
        ssize_t r = gnutls_record_recv(c.s, b, sizeof(b));
        ok = r >= 9 && b[3] == 0x04 ? 0 : -1; /* frame type SETTINGS */
    }
    client_free(&c);
    close(fd);
    return ok;
}

/* A cleartext HTTP/2 preface on the TLS port: the connection is closed. */
static int plaintext_closed(int port)
{
    int fd = dial(port);
    static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\4\0\0\0\0\0";
    if (write(fd, preface, sizeof(preface) - 1) < 0) return -1;
    unsigned char b[4096];
    ssize_t r;
    size_t total = 0;
    while ((r = read(fd, b, sizeof(b))) > 0)
        total += (size_t)r;
    close(fd);
    /* EOF, perhaps after a TLS alert; never an HTTP/2 SETTINGS frame */
    return r == 0 && total < 64 ? 0 : -1;
}

static void test_grpc_tls(void)
{
    pc_tls_config tls = {(char *)P("server.crt"), (char *)P("server.key"), NULL};
    pc_tls_config mtls = {(char *)P("server.crt"), (char *)P("server.key"), (char *)P("ca.crt")};
    pc_grpc_config cfg = {.name = "grpc-tls", .endpoint = "127.0.0.1:0", .drain_timeout_ms = 1000,
                          .tls = &tls};
    pc_grpc_server *s = pc_grpc_start(&cfg, METHODS, 1, NULL);
    CHECK(s != NULL);
    if (!s) return;
    int port = pc_grpc_port(s);
    CHECK_EQ_INT(grpc_tls_settings(port, "h2", NULL, NULL), 0);
    CHECK_EQ_INT(grpc_tls_settings(port, "http/1.1", NULL, NULL), -1);
    CHECK_EQ_INT(plaintext_closed(port), 0);
    pc_grpc_stop(s);

    cfg.tls = &mtls;
    s = pc_grpc_start(&cfg, METHODS, 1, NULL);
    CHECK(s != NULL);
    if (!s) return;
    port = pc_grpc_port(s);
    CHECK_EQ_INT(grpc_tls_settings(port, "h2", NULL, NULL), -1);
    CHECK_EQ_INT(grpc_tls_settings(port, "h2", P("rogue.crt"), P("rogue.key")), -1);
    CHECK_EQ_INT(grpc_tls_settings(port, "h2", P("client.crt"), P("client.key")), 0);
    pc_grpc_stop(s);

    pc_tls_config bad = {(char *)P("missing.crt"), (char *)P("server.key"), NULL};
    cfg.tls = &bad;
    CHECK(pc_grpc_start(&cfg, METHODS, 1, NULL) == NULL);
}

int main(void)
{
    pc_log_set_level(PC_LOG_ERROR);
    if (make_certs()) return 1;
    test_validate();
    test_connections();
    test_grpc_tls();
    remove_certs();
    return CHECK_DONE();
}
