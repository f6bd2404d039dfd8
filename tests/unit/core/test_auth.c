/*
 * test_auth.c - the authenticator (src/core/auth.c): parsing the auth: section
 * through the config loader, key checks and their answers, the project rule,
 * keys_file reloads, and the token bucket and daily quota.
 */
#include "auth.h"
#include "check.h"
#include "config.h"

#include <stdlib.h>
#include <unistd.h>

static const char *pipeline = "receivers:\n  prela:\nexporters:\n  local:\n    directory: /tmp/x\n"
                              "service:\n  pipelines:\n    traces:\n      receivers: [prela]\n"
                              "      exporters: [local]\n";

/* Loads |auth| (the body of an auth: section) with a minimal pipeline. */
static pc_config *load(const char *auth, char *err, size_t errlen)
{
    char yaml[4096];
    snprintf(yaml, sizeof(yaml), "auth:\n%s%s", auth, pipeline);
    return pc_config_load(yaml, strlen(yaml), "t.yaml", err, errlen);
}

static pc_auth *make(const char *auth)
{
    char err[512] = "";
    pc_config *c = load(auth, err, sizeof(err));
    CHECK(c != NULL);
    if (!c) {
        fprintf(stderr, "%s\n", err);
        return NULL;
    }
    pc_auth *a = pc_auth_create(&c->auth, err, sizeof(err));
    CHECK(a != NULL);
    pc_config_free(c);
    return a;
}

static const char *KEYS =
    "  keys:\n"
    "    - {name: alpha, key: alpha-key-0123456789, project: alpha, scopes: [ingest]}\n"
    "    - {name: reader, key: reader-key-012345678, project: alpha, scopes: [read]}\n"
    "    - name: ops\n"
    "      sha256: 6e8ab1cb8c8e6a5a3e5e3cf1c3d2fa1f0b43c5f5f5d0b6c1a0c6d4c5c2a1b0c9\n"
    "      project: \"*\"\n"
    "      scopes: [admin]\n"
    "    - {name: slow, key: slow-key-01234567890, project: s, scopes: [ingest],\n"
    "       limits: {spans_per_second: 10, burst: 10, spans_per_day: 25}}\n";

static void test_check(void)
{
    pc_auth *a = make(KEYS);
    if (!a) return;
    CHECK(pc_auth_enabled(a));
    pc_principal p;
    char msg[200];
    int retry = 0;
    CHECK_EQ_INT(pc_auth_check(a, NULL, NULL, PC_SCOPE_INGEST, &p, msg, sizeof(msg), &retry),
                 PC_AUTH_MISSING);
    CHECK(strstr(msg, "missing API key") != NULL);
    CHECK_EQ_INT(pc_auth_check(a, "nope", NULL, PC_SCOPE_INGEST, &p, msg, sizeof(msg), &retry),
                 PC_AUTH_INVALID);
    CHECK_EQ_INT(pc_auth_check(a, NULL, "Basic alpha-key-0123456789", PC_SCOPE_INGEST, &p, msg,
                               sizeof(msg), &retry),
                 PC_AUTH_MISSING);
    CHECK_EQ_INT(pc_auth_check(a, NULL, "bearer alpha-key-0123456789", PC_SCOPE_INGEST, &p, msg,
                               sizeof(msg), &retry),
                 PC_AUTH_OK);
    CHECK(p.valid);
    CHECK_EQ_STR(p.name, "alpha");
    CHECK_EQ_STR(p.project, "alpha");
    /* A prefix or an extension of a key is not the key. */
    CHECK_EQ_INT(pc_auth_check(a, "alpha-key-012345678", NULL, PC_SCOPE_INGEST, &p, msg,
                               sizeof(msg), &retry),
                 PC_AUTH_INVALID);
    CHECK_EQ_INT(pc_auth_check(a, "alpha-key-01234567890", NULL, PC_SCOPE_INGEST, &p, msg,
                               sizeof(msg), &retry),
                 PC_AUTH_INVALID);
    CHECK_EQ_INT(pc_auth_check(a, "alpha-key-0123456789", NULL, PC_SCOPE_READ, &p, msg,
                               sizeof(msg), &retry),
                 PC_AUTH_FORBIDDEN);
    CHECK(strstr(msg, "'alpha' lacks the read scope") != NULL);
    /* Open routes pass without a key. */
    CHECK_EQ_INT(pc_auth_check(a, NULL, NULL, PC_SCOPE_NONE, &p, msg, sizeof(msg), &retry),
                 PC_AUTH_OK);
    CHECK(!p.valid);
    /* The project rule. */
    CHECK_EQ_INT(pc_auth_check(a, "reader-key-012345678", NULL, PC_SCOPE_READ, &p, msg,
                               sizeof(msg), &retry),
                 PC_AUTH_OK);
    CHECK_EQ_STR(pc_auth_project(&p, "beta"), "alpha");
    CHECK(!pc_auth_all_projects(&p));
    pc_principal none = {0};
    CHECK_EQ_STR(pc_auth_project(&none, "beta"), "beta");
    CHECK(pc_auth_project(&none, "") == NULL);
    CHECK(pc_auth_all_projects(&none));
    pc_auth_destroy(a);
}

static void test_sha256_form(void)
{
    uint8_t d[32];
    pc_auth_sha256("abc", 3, d);
    /* FIPS 180-2 test vector. */
    CHECK_EQ_INT(d[0], 0xba);
    CHECK_EQ_INT(d[31], 0xad);
    char hex[65];
    const char *key = "ops-secret-key-000000000";
    pc_auth_sha256(key, strlen(key), d);
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
    char auth[512];
    snprintf(auth, sizeof(auth),
             "  keys:\n    - {name: ops, sha256: %s, project: \"*\", scopes: [admin]}\n", hex);
    pc_auth *a = make(auth);
    if (!a) return;
    pc_principal p;
    char msg[200];
    int retry;
    CHECK_EQ_INT(pc_auth_check(a, key, NULL, PC_SCOPE_READ, &p, msg, sizeof(msg), &retry),
                 PC_AUTH_OK);
    CHECK(p.scopes & PC_SCOPE_INGEST); /* admin implies ingest and read */
    CHECK_EQ_STR(pc_auth_project(&p, "chosen"), "chosen");
    CHECK(pc_auth_project(&p, NULL) == NULL);
    CHECK(pc_auth_all_projects(&p));
    pc_auth_destroy(a);
}

static void test_limits(void)
{
    pc_auth *a = make(KEYS);
    if (!a) return;
    pc_principal p;
    char msg[200];
    int retry = 0;
    CHECK_EQ_INT(pc_auth_check(a, "slow-key-01234567890", NULL, PC_SCOPE_INGEST, &p, msg,
                               sizeof(msg), &retry),
                 PC_AUTH_OK);
    CHECK_EQ_INT(pc_auth_admit(&p, 10, msg, sizeof(msg), &retry), PC_AUTH_OK);
    CHECK_EQ_INT(pc_auth_admit(&p, 5, msg, sizeof(msg), &retry), PC_AUTH_LIMITED);
    CHECK(strstr(msg, "10 spans per second") != NULL);
    CHECK(retry >= 1);
    /* An empty bucket refuses at the headers. */
    CHECK_EQ_INT(pc_auth_check(a, "slow-key-01234567890", NULL, PC_SCOPE_INGEST, &p, msg,
                               sizeof(msg), &retry),
                 PC_AUTH_LIMITED);
    usleep(1100 * 1000);
    /* A request bigger than the burst passes from a full bucket, leaving debt. */
    CHECK_EQ_INT(pc_auth_admit(&p, 14, msg, sizeof(msg), &retry), PC_AUTH_OK);
    CHECK_EQ_INT(pc_auth_admit(&p, 1, msg, sizeof(msg), &retry), PC_AUTH_LIMITED);
    usleep(1100 * 1000);
    CHECK_EQ_INT(pc_auth_admit(&p, 1, msg, sizeof(msg), &retry), PC_AUTH_OK);
    /* Day quota: 25; 10 + 14 + 1 taken. */
    usleep(1100 * 1000);
    CHECK_EQ_INT(pc_auth_admit(&p, 1, msg, sizeof(msg), &retry), PC_AUTH_LIMITED);
    CHECK(strstr(msg, "quota of 25 spans") != NULL);
    CHECK(retry >= 1 && retry <= 86400);
    /* Unlimited keys and no auth pass. */
    pc_principal none = {0};
    CHECK_EQ_INT(pc_auth_admit(&none, 1000000, msg, sizeof(msg), &retry), PC_AUTH_OK);
    pc_auth_destroy(a);
}

static void test_reload(void)
{
    char path[] = "/tmp/pc_test_keys_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs("keys:\n  - {name: one, key: one-key-0123456789ab, project: p, scopes: [ingest]}\n", f);
    fclose(f);
    char auth[256];
    snprintf(auth, sizeof(auth), "  keys_file: %s\n", path);
    pc_auth *a = make(auth);
    if (!a) return;
    pc_principal p;
    char msg[200];
    int retry;
    CHECK_EQ_INT(pc_auth_check(a, "one-key-0123456789ab", NULL, PC_SCOPE_INGEST, &p, msg,
                               sizeof(msg), &retry),
                 PC_AUTH_OK);
    f = fopen(path, "w");
    fputs("keys:\n  - {name: two, key: two-key-0123456789ab, project: p, scopes: [ingest]}\n", f);
    fclose(f);
    CHECK_EQ_INT(pc_auth_reload(a), 0);
    CHECK_EQ_INT(pc_auth_check(a, "one-key-0123456789ab", NULL, PC_SCOPE_INGEST, &p, msg,
                               sizeof(msg), &retry),
                 PC_AUTH_INVALID);
    CHECK_EQ_INT(pc_auth_check(a, "two-key-0123456789ab", NULL, PC_SCOPE_INGEST, &p, msg,
                               sizeof(msg), &retry),
                 PC_AUTH_OK);
    /* A broken file keeps the previous keys. */
    f = fopen(path, "w");
    fputs("keys:\n  - {name: three, project: p}\n", f);
    fclose(f);
    CHECK_EQ_INT(pc_auth_reload(a), -1);
    CHECK_EQ_INT(pc_auth_check(a, "two-key-0123456789ab", NULL, PC_SCOPE_INGEST, &p, msg,
                               sizeof(msg), &retry),
                 PC_AUTH_OK);
    /* An empty list refuses everything (auth stays on). */
    f = fopen(path, "w");
    fputs("keys: []\n", f);
    fclose(f);
    CHECK_EQ_INT(pc_auth_reload(a), 0);
    CHECK(pc_auth_enabled(a));
    CHECK_EQ_INT(pc_auth_check(a, "two-key-0123456789ab", NULL, PC_SCOPE_INGEST, &p, msg,
                               sizeof(msg), &retry),
                 PC_AUTH_INVALID);
    pc_auth_destroy(a);
    unlink(path);
}

static void test_config_errors(void)
{
    static const struct {
        const char *auth, *msg;
    } cases[] = {
        {"  keys:\n    - {name: a, key: short, project: p, scopes: [ingest]}\n",
         "auth.keys[0].key: must be 16"},
        {"  keys:\n    - {name: a, key: 0123456789abcdef0, project: \"*\", scopes: [read]}\n",
         "needs scope admin"},
        {"  keys:\n    - {name: 'a b', key: 0123456789abcdef0, project: p, scopes: [read]}\n",
         "auth.keys[0].name: use"},
        {"  keys:\n    - {name: a, key: 0123456789abcdef0, sha256: 00, project: p, scopes: [read]}\n",
         "give key or sha256, not both"},
        {"  keys:\n    - {name: a, key: 0123456789abcdef0, project: p, scopes: [read], limits: {burst: 0}}\n",
         "limits.burst: expected a number >= 1"},
        {"  keys:\n    - {name: a, key: 0123456789abcdef0, project: p, scopes: [read], limits: {spans_per_second: .nan}}\n",
         "limits.spans_per_second"},
        {"  keys:\n    - {name: a, key: 0123456789abcdef0, project: p, scopes: [read]}\n"
         "    - {name: b, key: 0123456789abcdef0, project: p, scopes: [read]}\n",
         "the same secret as keys[0]"},
        {"  keys: [a, b]\n", "auth.keys: expected a list of mappings"},
        {"  colour: red\n", "auth.colour: unknown key"},
        {"  keys:\n    - {name: a, key: 0123456789abcdef0, project: p, scopes: [read]}\n    - plain\n",
         "expected a mapping like the first item"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char err[512] = "";
        pc_config *c = load(cases[i].auth, err, sizeof(err));
        CHECK(c == NULL);
        if (!strstr(err, cases[i].msg)) fprintf(stderr, "case %zu: %s\n", i, err);
        CHECK(strstr(err, cases[i].msg) != NULL);
        pc_config_free(c);
    }
    /* No auth: section = disabled; everything passes with no principal. */
    char err[256];
    pc_auth *a = pc_auth_create(NULL, err, sizeof(err));
    pc_principal p;
    char msg[100];
    int retry;
    CHECK(!pc_auth_enabled(a));
    CHECK_EQ_INT(pc_auth_check(a, NULL, NULL, PC_SCOPE_READ, &p, msg, sizeof(msg), &retry),
                 PC_AUTH_OK);
    CHECK(!p.valid);
    pc_auth_destroy(a);
}

int main(void)
{
    RUN(test_check);
    RUN(test_sha256_form);
    RUN(test_limits);
    RUN(test_reload);
    RUN(test_config_errors);
    return CHECK_DONE();
}
