/*
 * lg_tls.c - loadgen's TLS (--tls-ca FILE): GnuTLS client sessions under both
 * transports, so a run over TLS measures what the collector's TLS costs next
 * to the same run in plaintext.
 *
 * The driver loads the CA once (lg_tls_init); each connection makes a session
 * on its connected socket (lg_tls_open: the handshake, verified against the CA
 * and the --target host, and ALPN "h2" for gRPC), then uses lg_io_send /
 * lg_io_recv where it would use send / recv. Those keep send/recv's contract
 * (-1 with errno EAGAIN, EINTR or EIO; 0 at the end), so the transports keep
 * their loops. Without TLS they are send / recv.
 */
#include "lg_run.h"

#include "mem.h"

#include <errno.h>
#include <gnutls/gnutls.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

struct lg_tls {
    gnutls_session_t s;
    size_t owed; /* bytes of a send that hit EAGAIN: GnuTLS holds their record */
};

int lg_tls_init(lg_run *run, const char *ca_file)
{
    gnutls_certificate_credentials_t cred;
    if (gnutls_certificate_allocate_credentials(&cred) < 0) return -1;
    int n = gnutls_certificate_set_x509_trust_file(cred, ca_file, GNUTLS_X509_FMT_PEM);
    if (n <= 0) {
        fprintf(stderr, "loadgen: --tls-ca %s: %s\n", ca_file,
                n < 0 ? gnutls_strerror(n) : "no certificate in the file");
        gnutls_certificate_free_credentials(cred);
        return -1;
    }
    run->tls_cred = cred;
    return 0;
}

void lg_tls_cleanup(lg_run *run)
{
    if (run->tls_cred) gnutls_certificate_free_credentials(run->tls_cred);
    run->tls_cred = NULL;
}

/* Waits up to 10 s for |fd| to be readable (or writable with |out|). */
static int wait_fd(int fd, int out)
{
    struct pollfd p = {fd, out ? POLLOUT : POLLIN, 0};
    int r;
    while ((r = poll(&p, 1, 10000)) < 0 && errno == EINTR)
        continue;
    return r > 0 ? 0 : -1;
}

lg_tls *lg_tls_open(const lg_run *run, int fd, const char *alpn)
{
    lg_tls *t = pc_xcalloc(1, sizeof(*t));
    gnutls_init(&t->s, GNUTLS_CLIENT | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL);
    gnutls_set_default_priority(t->s);
    gnutls_credentials_set(t->s, GNUTLS_CRD_CERTIFICATE, run->tls_cred);
    int is_ip = strspn(run->host, "0123456789.") == strlen(run->host) || strchr(run->host, ':');
    if (!is_ip) gnutls_server_name_set(t->s, GNUTLS_NAME_DNS, run->host, strlen(run->host));
    gnutls_session_set_verify_cert(t->s, run->host, 0);
    if (alpn) {
        gnutls_datum_t p = {(unsigned char *)alpn, (unsigned)strlen(alpn)};
        gnutls_alpn_set_protocols(t->s, &p, 1, 0);
    }
    gnutls_transport_set_int(t->s, fd);
    int rc;
    while ((rc = gnutls_handshake(t->s)) < 0) {
        if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED) {
            if (wait_fd(fd, gnutls_record_get_direction(t->s)) == 0) continue;
        } else if (!gnutls_error_is_fatal(rc)) {
            continue;
        }
        static _Atomic int warned;
        if (!warned++) fprintf(stderr, "loadgen: TLS handshake: %s\n", gnutls_strerror(rc));
        lg_tls_close(t);
        return NULL;
    }
    gnutls_datum_t sel = {NULL, 0};
    if (alpn && (gnutls_alpn_get_selected_protocol(t->s, &sel) < 0 || sel.size != strlen(alpn) ||
                 memcmp(sel.data, alpn, sel.size))) {
        fprintf(stderr, "loadgen: the server did not negotiate ALPN %s\n", alpn);
        lg_tls_close(t);
        return NULL;
    }
    return t;
}

void lg_tls_close(lg_tls *t)
{
    if (!t) return;
    gnutls_bye(t->s, GNUTLS_SHUT_WR); /* non-blocking: best effort */
    gnutls_deinit(t->s);
    free(t);
}

/* Maps a GnuTLS error onto send/recv's -1 + errno. */
static ssize_t as_errno(ssize_t r)
{
    errno = r == GNUTLS_E_AGAIN ? EAGAIN : r == GNUTLS_E_INTERRUPTED ? EINTR : EIO;
    return -1;
}

ssize_t lg_io_send(int fd, lg_tls *t, const void *p, size_t n)
{
    if (!t) return send(fd, p, n, MSG_NOSIGNAL);
    ssize_t r = t->owed ? gnutls_record_send(t->s, NULL, 0) : gnutls_record_send(t->s, p, n);
    if (r >= 0) {
        t->owed = 0;
        return r;
    }
    if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) t->owed = t->owed ? t->owed : n;
    return as_errno(r);
}

ssize_t lg_io_recv(int fd, lg_tls *t, void *p, size_t n)
{
    if (!t) return recv(fd, p, n, 0);
    ssize_t r = gnutls_record_recv(t->s, p, n);
    if (r >= 0) return r;
    if (r == GNUTLS_E_PREMATURE_TERMINATION) return 0;
    return as_errno(r);
}

size_t lg_tls_pending(const lg_tls *t)
{
    return t ? gnutls_record_check_pending(t->s) : 0;
}

int lg_tls_cork(lg_tls *t, int on)
{
    if (!t) return 0;
    if (on) {
        gnutls_record_cork(t->s);
        return 0;
    }
    return gnutls_record_uncork(t->s, GNUTLS_RECORD_WAIT) < 0 ? -1 : 0;
}
