/*
 * auth.h - the authenticator: API keys bound to a project and scopes, checked
 * on every listener (HTTP and gRPC) from the request headers, before any body
 * byte is read; plus per-key rate limits and daily quotas.
 *
 *   auth:
 *     keys:
 *       - name: alpha-sdk            # shown in logs, never the key itself
 *         key: ${env:ALPHA_KEY}      # or sha256: <64 hex digits of SHA-256(key)>
 *         project: alpha             # "*" = every project (needs scope admin)
 *         scopes: [ingest]           # ingest, read, admin (admin implies the others)
 *         limits: {spans_per_second: 1000, burst: 5000, spans_per_day: 10000000}
 *     keys_file: /etc/prela/keys.yaml  # same list under `keys:`; re-read on SIGHUP
 *
 * Where it sits: config.c hands the `auth:` section to pc_auth_config_parse at
 * load time; main.c creates the authenticator (reading keys_file) and gives it
 * to the pipeline, whose host hands it to receivers; http.c and grpc.c call
 * pc_auth_check with each route's scope when a request's headers are complete;
 * receivers ask pc_auth_project which project the data belongs to and
 * pc_auth_admit whether a key's rate limit lets |n| spans in.
 *
 * Keys are held only as SHA-256 digests and compared in constant time. With no
 * `auth:` section the authenticator is disabled: every request passes with no
 * principal (the standalone default, bound to loopback). A reload that fails
 * keeps the previous keys; a reload that leaves no key refuses everything.
 *
 * Threads: every function may be called from any thread; reload swaps the key
 * set under a write lock, and a principal is a copy, valid after a reload.
 */
#ifndef PC_AUTH_H
#define PC_AUTH_H

#include "config.h"

#include <stddef.h>
#include <stdint.h>

/* Scopes, as a bit mask. A route asks for one; PC_SCOPE_NONE routes are open. */
enum {
    PC_SCOPE_NONE = 0,
    PC_SCOPE_INGEST = 1,
    PC_SCOPE_READ = 2,
    PC_SCOPE_ADMIN = 4,
};

#define PC_AUTH_NAME_MAX 64
#define PC_AUTH_PROJECT_MAX 128

typedef struct pc_auth pc_auth;
typedef struct pc_auth_limiter pc_auth_limiter;

/* Who sent a request: a copy of the key's identity, owned by the request. */
typedef struct pc_principal {
    int valid;                             /* 0: no authentication (auth disabled) */
    char name[PC_AUTH_NAME_MAX + 1];       /* the key's name */
    char project[PC_AUTH_PROJECT_MAX + 1]; /* "*" for an admin of every project */
    unsigned scopes;
    pc_auth_limiter *limiter; /* NULL = unlimited; lives as long as the authenticator */
} pc_principal;

typedef enum pc_auth_status {
    PC_AUTH_OK = 0,    /* allowed (or auth disabled) */
    PC_AUTH_MISSING,   /* no key sent: 401 / UNAUTHENTICATED */
    PC_AUTH_INVALID,   /* unknown key: 401 / UNAUTHENTICATED */
    PC_AUTH_FORBIDDEN, /* key lacks the scope: 403 / PERMISSION_DENIED */
    PC_AUTH_LIMITED,   /* rate limit or quota: 429 / RESOURCE_EXHAUSTED + retry */
} pc_auth_status;

/* One key as configured; digest is SHA-256 of the key text. */
typedef struct pc_auth_key {
    char name[PC_AUTH_NAME_MAX + 1];
    char project[PC_AUTH_PROJECT_MAX + 1];
    uint8_t digest[32];
    unsigned scopes;
    double spans_per_second; /* 0 = unlimited */
    double burst;            /* bucket size; default max(spans_per_second, 1) */
    int64_t spans_per_day;   /* 0 = unlimited; the day is the UTC calendar day */
} pc_auth_key;

/* pc_auth_config (the parsed `auth:` section) is in config.h. */

/*
 * Parses the flattened `auth:` section (entries such as "keys[0].name",
 * "keys_file") into |out|. |where| prefixes messages ("auth"). With
 * |file_only|, only `keys` is allowed (the keys_file form). Returns 0, or -1
 * with a message naming the key in |err|; |out| is then freed.
 */
int pc_auth_config_parse(const pc_config_entry *e, size_t n, const char *where, int file_only,
                         pc_auth_config *out, char *err, size_t errlen);
void pc_auth_config_free(pc_auth_config *c);

/*
 * Creates the authenticator from |cfg| (borrowed only during the call): the
 * inline keys plus those of keys_file, which is read now. Returns NULL with a
 * message in |err| when keys_file cannot be read or is invalid.
 */
pc_auth *pc_auth_create(const pc_auth_config *cfg, char *err, size_t errlen);
/* Accepts NULL. */
void pc_auth_destroy(pc_auth *a);
/* Re-reads keys_file (SIGHUP). Returns 0, or -1 after logging why (old keys stay). */
int pc_auth_reload(pc_auth *a);
/* True when keys are configured, i.e. requests must carry one. NULL = false. */
int pc_auth_enabled(const pc_auth *a);

/*
 * Checks a request's credential for |scope|: |x_api_key| (the X-API-Key header
 * or x-api-key metadata) or |authorization| ("Bearer <key>"), either may be
 * NULL. On PC_AUTH_OK |out| holds the principal (out->valid = 0 when auth is
 * disabled or the scope is PC_SCOPE_NONE). Otherwise |msg| gets a message safe
 * to send to the client, and for PC_AUTH_LIMITED |*retry_after_s| the seconds
 * to wait. Never blocks.
 */
pc_auth_status pc_auth_check(pc_auth *a, const char *x_api_key, const char *authorization,
                             unsigned scope, pc_principal *out, char *msg, size_t msglen,
                             int *retry_after_s);

/*
 * The project data from |p| belongs to: a project key's own project, whatever
 * the client sent; for an admin key (project "*") or without auth, |requested|
 * (a header, metadata or parameter; NULL or "" = none), else NULL.
 */
const char *pc_auth_project(const pc_principal *p, const char *requested);
/* True when |p| may read or write every project (admin key, or auth disabled). */
int pc_auth_all_projects(const pc_principal *p);

/*
 * Takes |n| spans from |p|'s rate limit and daily quota. Returns PC_AUTH_OK, or
 * PC_AUTH_LIMITED with |msg| and |*retry_after_s| (nothing is taken then). A
 * request larger than the burst passes when the bucket is full, leaving it in
 * debt. Unlimited keys and disabled auth always pass.
 */
pc_auth_status pc_auth_admit(const pc_principal *p, size_t n, char *msg, size_t msglen,
                             int *retry_after_s);

/*
 * Logs a warning when a listener on |endpoint| (host:port) is reachable beyond
 * loopback while no keys are configured. |component| names the listener.
 */
void pc_auth_warn_if_exposed(const pc_auth *a, const char *component, const char *endpoint);

/* SHA-256 of |len| bytes into |out| (for the sha256: form and the tests). */
void pc_auth_sha256(const void *data, size_t len, uint8_t out[32]);

#endif
