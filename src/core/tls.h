/*
 * tls.h - TLS for the listeners (GnuTLS): the settings every listening
 * receiver shares, their validation at startup, and the server side of a TLS
 * connection for transports that do their own non-blocking I/O (grpc.c).
 * http.c hands the PEM text this module read to libmicrohttpd, which runs
 * GnuTLS itself.
 *
 * Settings, as the OpenTelemetry Collector spells them (configtls), under a
 * listener's "tls." key:
 *   cert_file        the server certificate chain (PEM)
 *   key_file         its private key (PEM)
 *   client_ca_file   set: mutual TLS. Clients must present a certificate that
 *                    this CA (PEM bundle) signed; others are refused.
 * No cert_file = plaintext. cert_file without key_file (or the reverse), and
 * client_ca_file without both, fail validation.
 *
 * Data flow: validate() (config load) -> pc_tls_validate reads and checks the
 * files, so a bad file fails startup naming its key; start() ->
 * pc_tls_server_create loads the credentials once per listener; each accepted
 * connection -> pc_tls_conn_create (a GnuTLS session over the socket) ->
 * pc_tls_handshake until done -> pc_tls_recv / pc_tls_send in place of
 * recv / send.
 *
 * Ownership: a pc_tls_server borrows nothing from its config (it copies the
 * PEM text) and must outlive every pc_tls_conn made from it. A pc_tls_conn does
 * not own its socket.
 */
#ifndef PC_TLS_H
#define PC_TLS_H

#include <stddef.h>
#include <sys/types.h>

typedef struct pc_tls_config {
    char *cert_file;
    char *key_file;
    char *client_ca_file;
} pc_tls_config;

/*
 * The three option table rows of a listener's TLS settings: keys |prefix|
 * "tls.cert_file" etc., stored in the pc_tls_config member |field| of the
 * component config struct |T|. |prefix| is "" or ends with '.'.
 */
#define PC_TLS_OPTIONS(prefix, T, field)                                                        \
    {prefix "tls.cert_file", PC_OPT_STRING, NULL, offsetof(T, field.cert_file), 0, 0,           \
     "server certificate chain (PEM); set to serve TLS"},                                       \
    {prefix "tls.key_file", PC_OPT_STRING, NULL, offsetof(T, field.key_file), 0, 0,             \
     "private key of cert_file (PEM)"},                                                         \
    {prefix "tls.client_ca_file", PC_OPT_STRING, NULL, offsetof(T, field.client_ca_file), 0, 0, \
     "CA bundle (PEM); set to require client certificates signed by it (mutual TLS)"}

/* Whether |c| asks for TLS (NULL or no cert_file: plaintext). */
int pc_tls_enabled(const pc_tls_config *c);
/* Whether |c| asks for client certificates (mutual TLS). */
int pc_tls_mutual(const pc_tls_config *c);
/* "plaintext", "TLS" or "mTLS", for startup logs. */
const char *pc_tls_mode(const pc_tls_config *c);

/*
 * Checks |c|: both or neither of cert_file and key_file, client_ca_file only
 * with them; each file readable and valid PEM; the key matching the
 * certificate. Returns 0, or -1 with a message naming the key as
 * |prefix|tls.<name> in |err| (e.g. "protocols.grpc.tls.key_file: ...").
 */
int pc_tls_validate(const pc_tls_config *c, const char *prefix, char *err, size_t errlen);

/* ---- the server side -------------------------------------------------------- */

typedef struct pc_tls_server pc_tls_server;

/*
 * Loads |c|'s files into server credentials. Returns NULL after logging why
 * under |name|. |c| must be enabled.
 */
pc_tls_server *pc_tls_server_create(const pc_tls_config *c, const char *name);
/* Accepts NULL. */
void pc_tls_server_destroy(pc_tls_server *s);

/* The PEM text read from the files, NUL-terminated; ca is NULL without mTLS.
 * Borrowed from |s|. (For libmicrohttpd's in-memory options.) */
const char *pc_tls_server_cert_pem(const pc_tls_server *s);
const char *pc_tls_server_key_pem(const pc_tls_server *s);
const char *pc_tls_server_ca_pem(const pc_tls_server *s);

/*
 * Verifies the client certificate of the established GnuTLS session |session|
 * (a gnutls_session_t) against the trust list of its credentials. Returns 0
 * when a certificate was sent and verified, else -1 with the reason in |why|.
 */
int pc_tls_verify_peer(void *session, char *why, size_t whylen);

/* ---- one connection ---------------------------------------------------------- */

typedef struct pc_tls_conn pc_tls_conn;

enum {
    PC_TLS_AGAIN = -1, /* would block: wait for the socket (see pc_tls_want_write) */
    PC_TLS_ERROR = -2, /* fatal: pc_tls_error says why; close the connection */
};

/*
 * A server session on the connected non-blocking socket |fd|. |alpn|, when not
 * NULL, is the one ALPN protocol accepted ("h2"): clients that do not offer it
 * are refused during the handshake. With mTLS the client must present a
 * certificate signed by the CA. Never NULL (aborts on OOM).
 */
pc_tls_conn *pc_tls_conn_create(pc_tls_server *s, int fd, const char *alpn);
/* Frees the session (not the socket). Accepts NULL. */
void pc_tls_conn_destroy(pc_tls_conn *c);

/* Advances the handshake: 0 done (ALPN and client certificate checked),
 * PC_TLS_AGAIN, or PC_TLS_ERROR. */
int pc_tls_handshake(pc_tls_conn *c);
/* After PC_TLS_AGAIN: whether the blocked operation waits to write (else to read). */
int pc_tls_want_write(const pc_tls_conn *c);
/* Reads up to |n| bytes: > 0 bytes read, 0 the peer closed, PC_TLS_AGAIN or PC_TLS_ERROR. */
ssize_t pc_tls_recv(pc_tls_conn *c, void *buf, size_t n);
/* Decrypted bytes already buffered (epoll does not see them): read again while > 0. */
size_t pc_tls_pending(const pc_tls_conn *c);
/*
 * Writes from |buf| (at most |n|): > 0 bytes consumed, PC_TLS_AGAIN or
 * PC_TLS_ERROR. After PC_TLS_AGAIN the same bytes are still owed: the next
 * call must offer at least them again, from the same position of the stream
 * (the data may have moved in memory).
 */
ssize_t pc_tls_send(pc_tls_conn *c, const void *buf, size_t n);
/* Sends close_notify if the socket takes it now; never blocks. */
void pc_tls_bye(pc_tls_conn *c);
/* The reason of the last PC_TLS_ERROR. */
const char *pc_tls_error(const pc_tls_conn *c);

#endif
