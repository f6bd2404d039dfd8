/*
 * auth.c - the authenticator (see auth.h): API keys as SHA-256 digests, scopes,
 * projects, keys_file reloads, and per-key token buckets.
 *
 * The key set is an immutable array swapped under a rwlock by reload, so a
 * check holds the read lock only while it scans. A check hashes the presented
 * key once and compares it with every digest without stopping at a match, so
 * the time taken does not depend on which key matched or how much of it.
 *
 * Rate limits are counted per key *name* in limiters that outlive reloads (a
 * SIGHUP neither resets a bucket nor forgets a day's count); a reload only
 * updates their rates. Limiters are freed with the authenticator.
 *
 * Why a token bucket in spans: clients send spans in requests of any size, so
 * the check at the headers refuses a key already in debt (before the body is
 * read), and pc_auth_admit takes the decoded span count, letting a request
 * bigger than the burst through only from a full bucket.
 */
#include "auth.h"
#include "log.h"
#include "mem.h"

#include <ctype.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define MIN_KEY_LEN 16
#define MAX_KEY_LEN 512

struct pc_auth_limiter {
    char name[PC_AUTH_NAME_MAX + 1];
    pthread_mutex_t mu;
    double rate, burst; /* rate 0 = no rate limit */
    int64_t per_day;    /* 0 = no quota */
    double tokens;
    int64_t last_ns;
    int64_t day;       /* UTC day number of day_count */
    int64_t day_count; /* spans taken that day */
};

struct pc_auth {
    int enabled;
    char *keys_file;
    pc_auth_key *inline_keys; /* from the config, kept for reloads */
    size_t n_inline;
    pthread_rwlock_t lock;
    pc_auth_key *keys; /* inline keys, then the file's; swapped by reload */
    size_t n_keys;
    pc_auth_limiter **limiters; /* parallel to keys; NULL = unlimited */
    pthread_mutex_t lim_mu;     /* guards all_limiters */
    pc_auth_limiter **all_limiters;
    size_t n_all;
};

/* ------------------------------------------------------------- parsing -- */

void pc_auth_sha256(const void *data, size_t len, uint8_t out[32])
{
    gnutls_hash_fast(GNUTLS_DIG_SHA256, data, len, out);
}

#define errf pc_config_errf

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static int valid_name(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (!n || n > max) return 0;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("._-:@", *p)) return 0;
    return 1;
}

static int parse_number(const char *v, double max, double *out)
{
    char *end;
    double d = v ? strtod(v, &end) : NAN;
    if (!v || end == v || *end || !isfinite(d) || d < 0 || d > max) return -1;
    *out = d;
    return 0;
}

/* Fields seen for one key while parsing, to check the set at the end. */
typedef struct key_draft {
    int has_name, has_secret, has_project, has_scopes, has_burst;
} key_draft;

/* Applies "field" = entry |e| (already stripped of "keys[i].") to key |k|. */
static int key_field(pc_auth_key *k, key_draft *d, const char *field, const pc_config_entry *e,
                     const char *where, char *err, size_t errlen)
{
    const char *v = e->value;
    if (!strcmp(field, "limits")) return e->is_map || !e->value ? 0 : errf(err, errlen, "%s.limits: expected a mapping", where);
    if (e->is_map) return errf(err, errlen, "%s.%s: expected a value, not a section", where, field);
    if (e->is_list && strcmp(field, "scopes"))
        return errf(err, errlen, "%s.%s: expected a single value, not a list", where, field);
    if (!strcmp(field, "name")) {
        if (!v || !valid_name(v, PC_AUTH_NAME_MAX))
            return errf(err, errlen, "%s.name: use 1..%d of A-Z a-z 0-9 . _ - : @", where,
                        PC_AUTH_NAME_MAX);
        snprintf(k->name, sizeof(k->name), "%s", v);
        d->has_name = 1;
    } else if (!strcmp(field, "key")) {
        if (d->has_secret) return errf(err, errlen, "%s: give key or sha256, not both", where);
        size_t n = v ? strlen(v) : 0;
        if (n < MIN_KEY_LEN || n > MAX_KEY_LEN)
            return errf(err, errlen,
                        "%s.key: must be %d..%d characters (e.g. openssl rand -hex 24); an "
                        "empty value usually means its environment variable is empty",
                        where, MIN_KEY_LEN, MAX_KEY_LEN);
        pc_auth_sha256(v, n, k->digest);
        d->has_secret = 1;
    } else if (!strcmp(field, "sha256")) {
        if (d->has_secret) return errf(err, errlen, "%s: give key or sha256, not both", where);
        if (!v || strlen(v) != 64)
            return errf(err, errlen, "%s.sha256: expected 64 hex digits (sha256sum of the key)",
                        where);
        for (int i = 0; i < 32; i++) {
            int hi = hexval(v[2 * i]), lo = hexval(v[2 * i + 1]);
            if (hi < 0 || lo < 0)
                return errf(err, errlen, "%s.sha256: expected 64 hex digits (sha256sum of the key)",
                            where);
            k->digest[i] = (uint8_t)(hi << 4 | lo);
        }
        d->has_secret = 1;
    } else if (!strcmp(field, "project")) {
        if (!v || (strcmp(v, "*") && !valid_name(v, PC_AUTH_PROJECT_MAX)))
            return errf(err, errlen, "%s.project: use \"*\" or 1..%d of A-Z a-z 0-9 . _ - : @",
                        where, PC_AUTH_PROJECT_MAX);
        snprintf(k->project, sizeof(k->project), "%s", v);
        d->has_project = 1;
    } else if (!strcmp(field, "scopes")) {
        size_t n = e->is_list ? e->n_items : (v ? 1 : 0);
        for (size_t i = 0; i < n; i++) {
            const char *s = e->is_list ? e->items[i] : v;
            if (!strcmp(s, "ingest")) k->scopes |= PC_SCOPE_INGEST;
            else if (!strcmp(s, "read")) k->scopes |= PC_SCOPE_READ;
            else if (!strcmp(s, "admin")) k->scopes |= PC_SCOPE_ADMIN;
            else
                return errf(err, errlen, "%s.scopes: \"%s\" is not one of ingest, read, admin",
                            where, s);
        }
        d->has_scopes = 1;
    } else if (!strcmp(field, "limits.spans_per_second")) {
        if (parse_number(v, 1e12, &k->spans_per_second))
            return errf(err, errlen, "%s.limits.spans_per_second: expected a number >= 0", where);
    } else if (!strcmp(field, "limits.burst")) {
        if (parse_number(v, 1e12, &k->burst) || k->burst < 1)
            return errf(err, errlen, "%s.limits.burst: expected a number >= 1", where);
        d->has_burst = 1;
    } else if (!strcmp(field, "limits.spans_per_day")) {
        double x;
        if (parse_number(v, 1e15, &x))
            return errf(err, errlen, "%s.limits.spans_per_day: expected a number >= 0", where);
        k->spans_per_day = (int64_t)x;
    } else {
        return errf(err, errlen,
                    "%s.%s: unknown key (known keys: name, key, sha256, project, scopes, "
                    "limits.spans_per_second, limits.burst, limits.spans_per_day)",
                    where, field);
    }
    return 0;
}

/* Checks a finished key: what every key must have, and how fields combine. */
static int key_finish(pc_auth_key *k, const key_draft *d, const char *where, char *err,
                      size_t errlen)
{
    if (!d->has_name) return errf(err, errlen, "%s.name: required", where);
    if (!d->has_secret) return errf(err, errlen, "%s: key or sha256 is required", where);
    if (!d->has_project) return errf(err, errlen, "%s.project: required (a project id, or \"*\")", where);
    if (!d->has_scopes || !k->scopes)
        return errf(err, errlen, "%s.scopes: required (ingest, read, admin)", where);
    if (!strcmp(k->project, "*") && !(k->scopes & PC_SCOPE_ADMIN))
        return errf(err, errlen, "%s.project: \"*\" (every project) needs scope admin", where);
    if (k->scopes & PC_SCOPE_ADMIN) k->scopes |= PC_SCOPE_INGEST | PC_SCOPE_READ;
    if (!d->has_burst) k->burst = k->spans_per_second > 1 ? k->spans_per_second : 1;
    return 0;
}

int pc_auth_config_parse(const pc_config_entry *e, size_t n, const char *where, int file_only,
                         pc_auth_config *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    out->present = 1;
    key_draft *drafts = NULL;
    int rc = -1;
    for (size_t i = 0; i < n; i++) {
        const char *key = e[i].key;
        if (!strcmp(key, "keys")) {
            if (e[i].is_list && e[i].n_items) {
                errf(err, errlen, "%s.keys: expected a list of mappings (name, key, project, scopes)",
                     where);
                goto out;
            }
            continue;
        }
        if (!file_only && !strcmp(key, "keys_file")) {
            if (!e[i].value || !*e[i].value) {
                errf(err, errlen, "%s.keys_file: expected a file name", where);
                goto out;
            }
            free(out->keys_file);
            out->keys_file = pc_xstrdup(e[i].value);
            continue;
        }
        if (strncmp(key, "keys[", 5)) {
            errf(err, errlen, "%s.%s: unknown key (known keys: keys%s)", where, key,
                 file_only ? "" : ", keys_file");
            goto out;
        }
        char *end;
        unsigned long idx = strtoul(key + 5, &end, 10);
        if (*end != ']' || idx > 100000) {
            errf(err, errlen, "%s.%s: bad key index", where, key);
            goto out;
        }
        if (idx >= out->n_keys) {
            out->keys = pc_xrealloc(out->keys, (idx + 1) * sizeof(*out->keys));
            drafts = pc_xrealloc(drafts, (idx + 1) * sizeof(*drafts));
            memset(out->keys + out->n_keys, 0, (idx + 1 - out->n_keys) * sizeof(*out->keys));
            memset(drafts + out->n_keys, 0, (idx + 1 - out->n_keys) * sizeof(*drafts));
            out->n_keys = idx + 1;
        }
        char w[128];
        snprintf(w, sizeof(w), "%s.keys[%lu]", where, idx);
        if (end[1] == '\0') continue; /* the item's own mapping entry */
        if (end[1] != '.') {
            errf(err, errlen, "%s.%s: bad key", where, key);
            goto out;
        }
        if (key_field(&out->keys[idx], &drafts[idx], end + 2, &e[i], w, err, errlen)) goto out;
    }
    for (size_t i = 0; i < out->n_keys; i++) {
        char w[128];
        snprintf(w, sizeof(w), "%s.keys[%zu]", where, i);
        if (key_finish(&out->keys[i], &drafts[i], w, err, errlen)) goto out;
        for (size_t j = 0; j < i; j++) {
            if (!strcmp(out->keys[j].name, out->keys[i].name)) {
                errf(err, errlen, "%s.name: \"%s\" is used by keys[%zu] too", w, out->keys[i].name, j);
                goto out;
            }
            if (!memcmp(out->keys[j].digest, out->keys[i].digest, 32)) {
                errf(err, errlen, "%s: the same secret as keys[%zu] (%s)", w, j, out->keys[j].name);
                goto out;
            }
        }
    }
    if (!file_only && !out->n_keys && !out->keys_file) {
        errf(err, errlen, "%s: give keys or keys_file (or remove the section to run without keys)",
             where);
        goto out;
    }
    rc = 0;
out:
    free(drafts);
    if (rc) pc_auth_config_free(out);
    return rc;
}

void pc_auth_config_free(pc_auth_config *c)
{
    free(c->keys);
    free(c->keys_file);
    memset(c, 0, sizeof(*c));
}

/* ------------------------------------------------------------ key sets -- */

typedef struct file_ud {
    pc_auth_config cfg;
    const char *path;
    char *err;
    size_t errlen;
} file_ud;

static int file_entries(const pc_config_entry *e, size_t n, void *ud)
{
    file_ud *f = ud;
    return pc_auth_config_parse(e, n, f->path, 1, &f->cfg, f->err, f->errlen);
}

/* Returns the limiter of key |k| (created on first use), or NULL if unlimited. */
static pc_auth_limiter *limiter_for(pc_auth *a, const pc_auth_key *k)
{
    if (!k->spans_per_second && !k->spans_per_day) return NULL;
    pthread_mutex_lock(&a->lim_mu);
    pc_auth_limiter *l = NULL;
    for (size_t i = 0; i < a->n_all && !l; i++)
        if (!strcmp(a->all_limiters[i]->name, k->name)) l = a->all_limiters[i];
    if (!l) {
        l = pc_xcalloc(1, sizeof(*l));
        snprintf(l->name, sizeof(l->name), "%s", k->name);
        pthread_mutex_init(&l->mu, NULL);
        l->tokens = k->burst;
        a->all_limiters = pc_xrealloc(a->all_limiters, (a->n_all + 1) * sizeof(*a->all_limiters));
        a->all_limiters[a->n_all++] = l;
    }
    pthread_mutex_unlock(&a->lim_mu);
    pthread_mutex_lock(&l->mu);
    l->rate = k->spans_per_second;
    l->burst = k->burst;
    l->per_day = k->spans_per_day;
    if (l->tokens > l->burst) l->tokens = l->burst;
    pthread_mutex_unlock(&l->mu);
    return l;
}

/* Builds the key set: inline keys, then |file| keys; names must be unique. */
static int install(pc_auth *a, const pc_auth_config *file, char *err, size_t errlen)
{
    size_t n = a->n_inline + (file ? file->n_keys : 0);
    pc_auth_key *keys = pc_xcalloc(n ? n : 1, sizeof(*keys));
    if (a->n_inline) memcpy(keys, a->inline_keys, a->n_inline * sizeof(*keys));
    if (file && file->n_keys) memcpy(keys + a->n_inline, file->keys, file->n_keys * sizeof(*keys));
    for (size_t i = a->n_inline; i < n; i++)
        for (size_t j = 0; j < i; j++)
            if (!strcmp(keys[i].name, keys[j].name) || !memcmp(keys[i].digest, keys[j].digest, 32)) {
                errf(err, errlen, "%s: key \"%s\" has the name or secret of key \"%s\"",
                     a->keys_file, keys[i].name, keys[j].name);
                free(keys);
                return -1;
            }
    pc_auth_limiter **lims = pc_xcalloc(n ? n : 1, sizeof(*lims));
    for (size_t i = 0; i < n; i++) lims[i] = limiter_for(a, &keys[i]);
    pthread_rwlock_wrlock(&a->lock);
    pc_auth_key *old = a->keys;
    pc_auth_limiter **old_lims = a->limiters;
    a->keys = keys;
    a->limiters = lims;
    a->n_keys = n;
    pthread_rwlock_unlock(&a->lock);
    free(old);
    free(old_lims);
    return 0;
}

/* Reads keys_file and installs the key set. 0, or -1 with a message. */
static int load(pc_auth *a, char *err, size_t errlen)
{
    if (!a->keys_file) return install(a, NULL, err, errlen);
    file_ud f = {.path = a->keys_file, .err = err, .errlen = errlen};
    if (pc_config_read_entries(a->keys_file, file_entries, &f, err, errlen)) return -1;
    int rc = install(a, &f.cfg, err, errlen);
    pc_auth_config_free(&f.cfg);
    return rc;
}

pc_auth *pc_auth_create(const pc_auth_config *cfg, char *err, size_t errlen)
{
    pc_auth *a = pc_xcalloc(1, sizeof(*a));
    pthread_rwlock_init(&a->lock, NULL);
    pthread_mutex_init(&a->lim_mu, NULL);
    a->enabled = cfg && cfg->present;
    if (!a->enabled) return a;
    a->keys_file = cfg->keys_file ? pc_xstrdup(cfg->keys_file) : NULL;
    a->n_inline = cfg->n_keys;
    a->inline_keys = pc_xcalloc(cfg->n_keys ? cfg->n_keys : 1, sizeof(pc_auth_key));
    if (cfg->n_keys) memcpy(a->inline_keys, cfg->keys, cfg->n_keys * sizeof(pc_auth_key));
    char why[512];
    if (load(a, why, sizeof(why))) {
        errf(err, errlen, "auth.keys_file: %s", why);
        pc_auth_destroy(a);
        return NULL;
    }
    pc_log(PC_LOG_INFO, "auth", "%zu API key(s) configured%s%s", a->n_keys,
           a->keys_file ? "; keys_file " : "", a->keys_file ? a->keys_file : "");
    return a;
}

void pc_auth_destroy(pc_auth *a)
{
    if (!a) return;
    free(a->keys);
    free(a->limiters);
    for (size_t i = 0; i < a->n_all; i++) {
        pthread_mutex_destroy(&a->all_limiters[i]->mu);
        free(a->all_limiters[i]);
    }
    free(a->all_limiters);
    free(a->inline_keys);
    free(a->keys_file);
    pthread_rwlock_destroy(&a->lock);
    pthread_mutex_destroy(&a->lim_mu);
    free(a);
}

int pc_auth_reload(pc_auth *a)
{
    if (!a || !a->enabled) return 0;
    if (!a->keys_file) {
        pc_log(PC_LOG_INFO, "auth", "reload: no keys_file; keys unchanged");
        return 0;
    }
    char why[512];
    if (load(a, why, sizeof(why))) {
        pc_log(PC_LOG_ERROR, "auth", "reload failed, the previous keys stay in force: %s", why);
        return -1;
    }
    pthread_rwlock_rdlock(&a->lock);
    size_t n = a->n_keys;
    pthread_rwlock_unlock(&a->lock);
    pc_log(PC_LOG_INFO, "auth", "reloaded %s: %zu API key(s)", a->keys_file, n);
    return 0;
}

int pc_auth_enabled(const pc_auth *a)
{
    return a && a->enabled;
}

/* -------------------------------------------------------------- checks -- */

pc_auth_status pc_auth_check(pc_auth *a, const char *x_api_key, const char *authorization,
                             unsigned scope, pc_principal *out, char *msg, size_t msglen,
                             int *retry_after_s)
{
    memset(out, 0, sizeof(*out));
    if (!a || !a->enabled || scope == PC_SCOPE_NONE) return PC_AUTH_OK;
    const char *key = x_api_key && *x_api_key ? x_api_key : NULL;
    if (!key && authorization && strncasecmp(authorization, "Bearer ", 7) == 0) {
        key = authorization + 7;
        while (*key == ' ') key++;
    }
    if (!key || !*key) {
        snprintf(msg, msglen,
                 "missing API key: send Authorization: Bearer <key> or X-API-Key: <key>");
        return PC_AUTH_MISSING;
    }
    uint8_t d[32];
    size_t klen = strnlen(key, MAX_KEY_LEN + 1);
    pc_auth_sha256(key, klen, d);
    pthread_rwlock_rdlock(&a->lock);
    size_t found = a->n_keys;
    for (size_t i = 0; i < a->n_keys; i++) {
        unsigned diff = 0;
        for (int j = 0; j < 32; j++) diff |= a->keys[i].digest[j] ^ d[j];
        if (diff == 0) found = i;
    }
    pc_auth_status st = PC_AUTH_INVALID;
    if (found < a->n_keys && klen <= MAX_KEY_LEN) {
        const pc_auth_key *k = &a->keys[found];
        out->valid = 1;
        memcpy(out->name, k->name, sizeof(out->name));
        memcpy(out->project, k->project, sizeof(out->project));
        out->scopes = k->scopes;
        out->limiter = a->limiters[found];
        st = (k->scopes & scope) == scope ? PC_AUTH_OK : PC_AUTH_FORBIDDEN;
    }
    pthread_rwlock_unlock(&a->lock);
    if (st == PC_AUTH_INVALID) {
        snprintf(msg, msglen, "invalid API key");
        return st;
    }
    if (st == PC_AUTH_FORBIDDEN) {
        snprintf(msg, msglen, "API key '%s' lacks the %s scope", out->name,
                 scope == PC_SCOPE_READ ? "read" : scope == PC_SCOPE_INGEST ? "ingest" : "admin");
        return st;
    }
    /* A key already over its limit is refused before its body is read. */
    if (scope == PC_SCOPE_INGEST && out->limiter) return pc_auth_admit(out, 0, msg, msglen, retry_after_s);
    return PC_AUTH_OK;
}

const char *pc_auth_project(const pc_principal *p, const char *requested)
{
    if (p && p->valid && strcmp(p->project, "*")) return p->project;
    return requested && *requested ? requested : NULL;
}

int pc_auth_all_projects(const pc_principal *p)
{
    return !p || !p->valid || !strcmp(p->project, "*");
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

pc_auth_status pc_auth_admit(const pc_principal *p, size_t n, char *msg, size_t msglen,
                             int *retry_after_s)
{
    if (!p || !p->valid || !p->limiter) return PC_AUTH_OK;
    pc_auth_limiter *l = p->limiter;
    time_t wall = time(NULL);
    int64_t day = (int64_t)wall / 86400;
    pc_auth_status st = PC_AUTH_OK;
    pthread_mutex_lock(&l->mu);
    int64_t t = now_ns();
    if (l->rate > 0) {
        if (l->last_ns) l->tokens += (double)(t - l->last_ns) / 1e9 * l->rate;
        if (l->tokens > l->burst) l->tokens = l->burst;
    }
    l->last_ns = t;
    if (l->day != day) l->day = day, l->day_count = 0;

    int64_t want = n ? (int64_t)n : 1; /* at the headers: is there room for one more? */
    double need = (double)want < l->burst ? (double)want : l->burst;
    if (l->per_day && l->day_count + want > l->per_day) {
        st = PC_AUTH_LIMITED;
        *retry_after_s = (int)(86400 - wall % 86400);
        snprintf(msg, msglen, "API key '%s' used its quota of %lld spans for today (UTC)", l->name,
                 (long long)l->per_day);
    } else if (l->rate > 0 && l->tokens < need) {
        st = PC_AUTH_LIMITED;
        double wait = (need - l->tokens) / l->rate;
        *retry_after_s = wait < 1 ? 1 : (int)ceil(wait);
        snprintf(msg, msglen, "API key '%s' is over its limit of %.0f spans per second", l->name,
                 l->rate);
    } else {
        if (l->rate > 0) l->tokens -= (double)n;
        l->day_count += (int64_t)n;
    }
    pthread_mutex_unlock(&l->mu);
    return st;
}

void pc_auth_warn_if_exposed(const pc_auth *a, const char *component, const char *endpoint)
{
    if (pc_auth_enabled(a)) return;
    const char *colon = strrchr(endpoint, ':');
    size_t hl = colon ? (size_t)(colon - endpoint) : strlen(endpoint);
    char host[256];
    snprintf(host, sizeof(host), "%.*s", (int)(hl < 255 ? hl : 255), endpoint);
    if (!strcmp(host, "localhost") || !strncmp(host, "127.", 4) || !strcmp(host, "[::1]") ||
        !strcmp(host, "::1"))
        return;
    pc_log(PC_LOG_WARN, component,
           "listening on %s without authentication: anyone who reaches it can send and read "
           "data; configure auth keys (README, Security) or bind to 127.0.0.1",
           endpoint);
}
