/*
 * prices.c - the model price table (see prices.h): parsing and validating the
 * text format, matching a model name, the cost arithmetic, reloads, and the
 * bounded set of unpriced models.
 *
 * A table is immutable once parsed: an array of entries, each with its regex
 * compiled (REG_EXTENDED | REG_ICASE | REG_NOSUB, wrapped as ^(...)$), its
 * literal prefix and its count of literal characters (the specificity of the
 * matching rule). Lookups go through a cache owned by the table, so a reload
 * (a new table) invalidates it by construction.
 *
 * Why a cache in front of the regexes: normalize runs on the ingest hot path
 * and a batch repeats a handful of model names; a cache hit is a hash, one
 * string compare and a walk over at most CACHE_MATCHES entries (and before
 * it, a per-thread memo of the last few names: no lock, no hash). A miss tests
 * only the entries whose literal prefix fits the name (most shipped patterns
 * start with one) and runs their regex on at most 256 bytes. Misses and
 * no-match results are cached alike, in a direct-mapped table of CACHE_SLOTS
 * slots behind CACHE_STRIPES mutexes, so memory stays fixed whatever names
 * clients send.
 *
 * Why patterns are restricted (no back-references, repetition counts <= 255,
 * at most MAX_EXPANSION regex nodes once repetitions are expanded): glibc's
 * regexec is not linear with back-references, and regcomp copies a repeated
 * subexpression per repetition ('+' included), so nested repetitions grow
 * exponentially; an operator's pattern could otherwise cost unbounded time per
 * span, or memory at reload (the fuzzer found "g++++...": 1 GB in regcomp).
 */
#include "prices.h"

#include "timefmt.h"
#include "log.h"
#include "mem.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define MAX_PRICE 1e6             /* USD per million tokens, per field */
#define MAX_FILE_BYTES (4u << 20) /* an operator file larger than this is refused */
#define MAX_REPEAT 255            /* largest count in a {m,n} repetition */
#define MAX_EXPANSION 2048        /* regex nodes a pattern may expand to (see analyze_pattern) */
#define CACHE_SLOTS 1024
#define CACHE_STRIPES 32
#define CACHE_MATCHES 16 /* matching entries remembered per name, best first */

/* ---- cost ------------------------------------------------------------------ */

static double count_of(int64_t n)
{
    return n > 0 ? (double)n : 0.0;
}

bool pc_price_cost(const pc_price *p, const pc_usage *u, pc_cost *c)
{
    if (u->input < 0 && u->output < 0) return false;
    double in = count_of(u->input), out = count_of(u->output);
    double cr = count_of(u->cache_read), cw = count_of(u->cache_write);
    double rs = count_of(u->reasoning);
    double uncached = in - cr - cw;
    if (uncached < 0) uncached = 0;
    double plain_out = out - rs;
    if (plain_out < 0) plain_out = 0;
    double ci = (uncached * p->input + cr * p->cache_read + cw * p->cache_write) / 1e6;
    double co = (plain_out * p->output + rs * p->reasoning) / 1e6;
    double t = ci + co;
    if (!isfinite(ci) || !isfinite(co) || !isfinite(t)) return false;
    c->input = ci;
    c->output = co;
    c->total = t;
    return true;
}

/* ---- the table --------------------------------------------------------------- */

typedef struct entry {
    char *provider; /* NULL = any */
    char *pattern;  /* as written */
    regex_t re;
    int64_t since_ns;
    pc_price price;
    int literals;                           /* specificity */
    char prefix[PC_PRICES_MAX_PATTERN + 1]; /* lower case; every match starts with it */
    size_t prefix_len;
    int origin; /* 0 shipped, 1 operator file */
    int line;
} entry;

typedef struct cache_slot {
    char *key; /* provider '\0' model, malloc'd; NULL = empty */
    size_t key_len;
    uint32_t n;
    uint32_t idx[CACHE_MATCHES];
} cache_slot;

struct pc_price_table {
    int refs;     /* atomic */
    uint64_t gen; /* unique per table: what the per-thread memo is keyed by */
    entry *e;
    size_t n;
    pthread_mutex_t stripes[CACHE_STRIPES];
    cache_slot slots[CACHE_SLOTS];
};

static void errf(char *err, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void errf(char *err, size_t n, const char *fmt, ...)
{
    if (!err || !n) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, n, fmt, ap);
    va_end(ap);
}

/* Parses YYYY-MM-DD (1970..2261, a real day) into Unix ns, with timefmt.h's
 * calendar (pc_time_parse of that day's midnight UTC). */
static int parse_date(const char *s, size_t n, int64_t *out)
{
    if (n != 10 || s[4] != '-' || s[7] != '-') return -1;
    for (size_t i = 0; i < 10; i++)
        if (i != 4 && i != 7 && !isdigit((unsigned char)s[i])) return -1;
    int y = atoi(s);
    if (y < 1970 || y > 2261) return -1;
    char iso[21];
    memcpy(iso, s, 10);
    memcpy(iso + 10, "T00:00:00Z", 11);
    return pc_time_parse(iso, 20, out) < 0 ? -1 : 0;
}

/* Parses a price: a plain decimal in [0, MAX_PRICE]; '-' gives |dash|. */
static int parse_price(const char *s, size_t n, double dash, double *out)
{
    if (n == 1 && s[0] == '-') {
        *out = dash;
        return 0;
    }
    char tmp[64];
    if (n == 0 || n >= sizeof(tmp)) return -1;
    for (size_t i = 0; i < n; i++) /* digits, one point, an exponent: no nan/inf/hex */
        if (!isdigit((unsigned char)s[i]) && !strchr(".eE+-", s[i])) return -1;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    char *end;
    errno = 0;
    double v = strtod(tmp, &end);
    if (*end || errno || !isfinite(v) || v < 0 || v > MAX_PRICE) return -1;
    *out = v;
    return 0;
}

/*
 * Checks |p| (|n| bytes, NUL-terminated) against the restrictions above and
 * computes its literal count and literal prefix. Returns NULL when acceptable,
 * else the reason.
 *
 * The size estimate follows how glibc compiles repetitions: it copies the
 * repeated subexpression, once more for '+' (a+ is aa*) and up to n times for
 * {m,n}, so nested repetitions multiply ("((a+)+)+..." doubles per level).
 * Sizes are summed per group (alternatives included) in doubles, which
 * saturate instead of wrapping.
 */
static const char *analyze_pattern(const char *p, size_t n, entry *e)
{
    size_t pl = 0;
    int lit = 0, depth = 0, top_alt = 0, collecting = 1, prev_lit = 0;
    /* the last thing read was an atom (a character, a bracket, a group):
     * only an atom may be repeated; glibc's regcomp takes "a+?" or "g++" as
     * nested repetitions whose closure it computes exponentially (the fuzzer:
     * "g+++++\"+++????+++++++" took seconds) */
    int prev_atom = 0;
    double sum[PC_PRICES_MAX_PATTERN + 2] = {0}, last[PC_PRICES_MAX_PATTERN + 2] = {0};
    for (size_t i = 0; i < n;) {
        char c = p[i];
        double factor = 0; /* > 0: a repetition of the last atom */
        if (c == '\\') {
            if (i + 1 >= n) return "a trailing backslash";
            if (p[i + 1] >= '1' && p[i + 1] <= '9')
                return "back-references (\\1..\\9) are not allowed";
            lit++;
            if (collecting) e->prefix[pl++] = (char)tolower((unsigned char)p[i + 1]);
            prev_lit = 1;
            prev_atom = 1;
            sum[depth] += 1, last[depth] = 1;
            i += 2;
            continue;
        }
        if (c == '[') { /* a bracket expression: one character, not literal */
            size_t j = i + 1;
            if (j < n && p[j] == '^') j++;
            if (j < n && p[j] == ']') j++;
            while (j < n && p[j] != ']') {
                if (p[j] == '[' && j + 1 < n && strchr(":.=", p[j + 1])) { /* [:alpha:] */
                    char close = p[j + 1];
                    j += 2;
                    while (j + 1 < n && !(p[j] == close && p[j + 1] == ']'))
                        j++;
                    j += 2;
                } else {
                    j++;
                }
            }
            if (j >= n) return "an unterminated bracket expression";
            collecting = 0;
            prev_lit = 0;
            prev_atom = 1;
            sum[depth] += 1, last[depth] = 1;
            i = j + 1;
            continue;
        }
        if ((c == '{' || c == '*' || c == '+' || c == '?') && i > 0 && !prev_atom)
            return "a repetition of a repetition (write a group)";
        if (c == '{') {
            char *end;
            long lo = strtol(p + i + 1, &end, 10), hi = lo;
            if (end == p + i + 1) return "a '{' that is not a repetition count";
            if (*end == ',') {
                const char *q = end + 1;
                hi = *q == '}' ? lo + 1 : strtol(q, &end, 10);
            }
            const char *close = memchr(p + i, '}', n - i);
            if (!close) return "an unterminated repetition count";
            if (lo < 0 || hi < 0 || lo > MAX_REPEAT || hi > MAX_REPEAT)
                return "a repetition count over 255";
            factor = hi > 1 ? (double)hi : 1;
            if (collecting && prev_lit && pl) pl--; /* {0,n}: the previous literal may be absent */
            i = (size_t)(close - p) + 1;
        } else if (c == '*' || c == '+' || c == '?') {
            factor = c == '+' ? 2 : 1;
            if (c != '+' && collecting && prev_lit && pl) pl--;
            i++;
        } else if (c == '(') {
            if (depth >= PC_PRICES_MAX_PATTERN) return "groups nested too deep";
            depth++;
            sum[depth] = last[depth] = 0;
            i++;
        } else if (c == ')') {
            if (depth > 0) {
                double g = sum[depth--];
                sum[depth] += g, last[depth] = g;
            }
            i++;
        } else if (c == '|') {
            if (depth == 0) top_alt = 1;
            last[depth] = 0;
            i++;
        } else if (c == '.' || c == '^' || c == '$' || c == '}') {
            sum[depth] += 1, last[depth] = 1;
            i++;
        } else {
            lit++;
            if (collecting) e->prefix[pl++] = (char)tolower((unsigned char)c);
            prev_lit = 1;
            prev_atom = 1;
            sum[depth] += 1, last[depth] = 1;
            i++;
            continue;
        }
        if (factor > 0) { /* the last atom (a character or a group) repeated */
            sum[depth] += last[depth] * (factor - 1);
            last[depth] *= factor;
            if (sum[depth] > MAX_EXPANSION)
                return "repetitions nested so deep that the compiled pattern would be too large";
        }
        collecting = 0;
        prev_lit = 0;
        prev_atom = c == ')' || c == '.' || c == '}'; /* a group, any character, a literal } */
    }
    if (sum[0] > MAX_EXPANSION)
        return "repetitions nested so deep that the compiled pattern would be too large";
    e->literals = lit;
    e->prefix_len = top_alt ? 0 : pl;
    e->prefix[e->prefix_len] = '\0';
    return NULL;
}

static void entry_free(entry *e)
{
    free(e->provider);
    if (e->pattern) regfree(&e->re);
    free(e->pattern);
}

/* Splits |line| into whitespace-separated fields: up to |max| (start, length);
 * the last field (source) runs to the end of the line. Returns the count. */
static int split(const char *line, size_t len, int max, const char **f, size_t *fl)
{
    int k = 0;
    size_t i = 0;
    while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\t' || line[len - 1] == '\r'))
        len--;
    while (k < max) {
        while (i < len && (line[i] == ' ' || line[i] == '\t'))
            i++;
        if (i >= len) break;
        size_t start = i;
        if (k == max - 1)
            i = len;
        else
            while (i < len && line[i] != ' ' && line[i] != '\t')
                i++;
        f[k] = line + start;
        fl[k++] = i - start;
    }
    return k;
}

/* Parses one file's text into |*v| (appending). |source_required|: the shipped
 * table must say where each price comes from. */
static int parse_text(const char *text, size_t len, const char *name, int origin,
                      int source_required, entry **v, size_t *n, size_t *cap, char *err,
                      size_t errlen)
{
    static const char *const names[] = {"provider",   "pattern",     "since",     "input", "output",
                                        "cache_read", "cache_write", "reasoning", "source"};
    int lineno = 0;
    size_t file_entries = 0;
    for (size_t pos = 0; pos < len;) {
        const char *line = text + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t ll = nl ? (size_t)(nl - line) : len - pos;
        pos += ll + (nl ? 1 : 0);
        lineno++;
        if (memchr(line, '\0', ll)) {
            errf(err, errlen, "%s line %d: a NUL byte", name, lineno);
            return -1;
        }
        const char *f[9];
        size_t fl[9];
        int k = split(line, ll, 9, f, fl);
        if (k == 0 || f[0][0] == '#') continue;
#define COL(i) ((int)(f[i] - line) + 1)
        if (k < 8) {
            errf(err, errlen,
                 "%s line %d column %d: %s: missing (a line needs provider, pattern, "
                 "since, input, output, cache_read, cache_write, reasoning)",
                 name, lineno, k ? COL(k - 1) + (int)fl[k - 1] : 1, names[k]);
            return -1;
        }
        if (source_required && k < 9) {
            errf(err, errlen, "%s line %d: source: missing (where the price comes from)", name,
                 lineno);
            return -1;
        }
        if (++file_entries > PC_PRICES_MAX_ENTRIES) {
            errf(err, errlen, "%s line %d: more than %d entries", name, lineno,
                 PC_PRICES_MAX_ENTRIES);
            return -1;
        }
        entry e;
        memset(&e, 0, sizeof(e));
        e.origin = origin;
        e.line = lineno;
        if (fl[0] > PC_PRICES_MAX_MODEL) {
            errf(err, errlen, "%s line %d column %d: provider: longer than %d bytes", name, lineno,
                 COL(0), PC_PRICES_MAX_MODEL);
            return -1;
        }
        if (!(fl[0] == 1 && f[0][0] == '*')) e.provider = pc_xstrndup(f[0], fl[0]);
        if (fl[1] > PC_PRICES_MAX_PATTERN) {
            errf(err, errlen, "%s line %d column %d: pattern: longer than %d bytes", name, lineno,
                 COL(1), PC_PRICES_MAX_PATTERN);
            entry_free(&e);
            return -1;
        }
        char pat[PC_PRICES_MAX_PATTERN + 1], wrapped[PC_PRICES_MAX_PATTERN + 8];
        memcpy(pat, f[1], fl[1]);
        pat[fl[1]] = '\0';
        const char *why = analyze_pattern(pat, fl[1], &e);
        if (why) {
            errf(err, errlen, "%s line %d column %d: pattern: %s", name, lineno, COL(1), why);
            entry_free(&e);
            return -1;
        }
        /* alone first: an unbalanced ')' would pair with the wrapper's '(' */
        regex_t probe;
        int rc = regcomp(&probe, pat, REG_EXTENDED | REG_ICASE | REG_NOSUB);
        const regex_t *failed = &probe;
        if (rc == 0) {
            regfree(&probe);
            snprintf(wrapped, sizeof(wrapped), "^(%s)$", pat);
            rc = regcomp(&e.re, wrapped, REG_EXTENDED | REG_ICASE | REG_NOSUB);
            failed = &e.re;
        }
        if (rc != 0) {
            char msg[128];
            regerror(rc, failed, msg, sizeof(msg));
            errf(err, errlen, "%s line %d column %d: pattern: not a valid extended regex (%s)",
                 name, lineno, COL(1), msg);
            entry_free(&e);
            return -1;
        }
        e.pattern = pc_xstrdup(pat);
        if (parse_date(f[2], fl[2], &e.since_ns)) {
            errf(err, errlen, "%s line %d column %d: since: '%.*s' is not a date YYYY-MM-DD", name,
                 lineno, COL(2), (int)(fl[2] < 40 ? fl[2] : 40), f[2]);
            entry_free(&e);
            return -1;
        }
        double *dst[] = {&e.price.input, &e.price.output, &e.price.cache_read, &e.price.cache_write,
                         &e.price.reasoning};
        for (int i = 0; i < 5; i++) {
            /* '-' is only meaningful for the cache and reasoning prices */
            double dash = i == 2 || i == 3 ? e.price.input : i == 4 ? e.price.output : -1;
            if (parse_price(f[3 + i], fl[3 + i], dash, dst[i]) || *dst[i] < 0) {
                errf(err, errlen,
                     "%s line %d column %d: %s: '%.*s' is not a price (USD per million tokens, "
                     "0 to 1000000%s)",
                     name, lineno, COL(3 + i), names[3 + i], (int)(fl[3 + i] < 40 ? fl[3 + i] : 40),
                     f[3 + i], i >= 2 ? ", or '-'" : "");
                entry_free(&e);
                return -1;
            }
        }
#undef COL
        /* an operator entry with the same provider, pattern and date replaces */
        size_t at = *n;
        for (size_t i = 0; i < *n; i++) {
            entry *o = &(*v)[i];
            if (o->since_ns == e.since_ns && !strcmp(o->pattern, e.pattern) &&
                ((!o->provider && !e.provider) ||
                 (o->provider && e.provider && !strcasecmp(o->provider, e.provider)))) {
                entry_free(o);
                at = i;
                break;
            }
        }
        if (at == *n) {
            if (*n == *cap) {
                *cap = *cap ? *cap * 2 : 256;
                *v = pc_xrealloc(*v, *cap * sizeof(entry));
            }
            (*n)++;
        }
        (*v)[at] = e;
    }
    return 0;
}

pc_price_table *pc_price_table_parse(const char *extra, size_t extra_len, const char *extra_name,
                                     char *err, size_t errlen)
{
    entry *v = NULL;
    size_t n = 0, cap = 0;
    if (parse_text(pc_prices_builtin_text, strlen(pc_prices_builtin_text), "prices.tsv (shipped)",
                   0, 1, &v, &n, &cap, err, errlen) ||
        (extra && parse_text(extra, extra_len, extra_name ? extra_name : "prices", 1, 0, &v, &n,
                             &cap, err, errlen))) {
        for (size_t i = 0; i < n; i++)
            entry_free(&v[i]);
        free(v);
        return NULL;
    }
    static uint64_t generations;
    pc_price_table *t = pc_xcalloc(1, sizeof(*t));
    t->refs = 1;
    t->gen = __atomic_add_fetch(&generations, 1, __ATOMIC_RELAXED);
    t->e = v;
    t->n = n;
    for (int i = 0; i < CACHE_STRIPES; i++)
        pthread_mutex_init(&t->stripes[i], NULL);
    return t;
}

size_t pc_price_table_size(const pc_price_table *t)
{
    return t->n;
}

pc_price_table *pc_price_table_ref(pc_price_table *t)
{
    __atomic_add_fetch(&t->refs, 1, __ATOMIC_RELAXED);
    return t;
}

void pc_price_table_unref(pc_price_table *t)
{
    if (!t || __atomic_sub_fetch(&t->refs, 1, __ATOMIC_ACQ_REL) != 0) return;
    for (size_t i = 0; i < t->n; i++)
        entry_free(&t->e[i]);
    free(t->e);
    for (int i = 0; i < CACHE_STRIPES; i++)
        pthread_mutex_destroy(&t->stripes[i]);
    for (int i = 0; i < CACHE_SLOTS; i++)
        free(t->slots[i].key);
    free(t);
}

/* ---- matching ------------------------------------------------------------------ */

/* True when entry |a| wins over entry |b| (the rule in prices.h, dates aside). */
static bool better(const entry *a, const entry *b)
{
    if (!!a->provider != !!b->provider) return a->provider != NULL;
    if (a->literals != b->literals) return a->literals > b->literals;
    if (a->since_ns != b->since_ns) return a->since_ns > b->since_ns;
    if (a->origin != b->origin) return a->origin > b->origin;
    return a->line > b->line;
}

/* Collects into |idx| (best first, at most CACHE_MATCHES) the entries of |t|
 * that match |provider| and the NUL-terminated |model|. Returns the count. */
static uint32_t match_all(const pc_price_table *t, pc_str provider, const char *model, size_t ml,
                          uint32_t *idx)
{
    uint32_t k = 0;
    for (size_t i = 0; i < t->n; i++) {
        const entry *e = &t->e[i];
        if (e->provider && (provider.n != strlen(e->provider) ||
                            strncasecmp(provider.p, e->provider, provider.n) != 0))
            continue;
        if (e->prefix_len && (ml < e->prefix_len || strncasecmp(model, e->prefix, e->prefix_len)))
            continue;
        if (regexec(&e->re, model, 0, NULL, 0) != 0) continue;
        /* insert in order; the worst falls off when full */
        uint32_t j = k < CACHE_MATCHES ? k++ : CACHE_MATCHES;
        while (j > 0 && better(e, &t->e[idx[j - 1]])) {
            if (j < CACHE_MATCHES) idx[j] = idx[j - 1];
            j--;
        }
        if (j < CACHE_MATCHES) idx[j] = (uint32_t)i;
    }
    return k;
}

static uint64_t hash_bytes(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 1099511628211ULL;
    return h;
}

/*
 * The per-thread memo: the last few names this thread looked up, in front of
 * the shared cache, so that a batch repeating a handful of models takes no
 * lock and computes no hash. Keyed by the table's generation (a new table, or
 * a table at a freed one's address, never reuses an entry).
 */
#define MEMO_SLOTS 8
#define MEMO_KEY 96

typedef struct memo {
    uint64_t gen; /* 0 = empty */
    uint32_t key_len, n;
    uint32_t idx[CACHE_MATCHES];
    char key[MEMO_KEY]; /* provider '\0' model */
} memo;

static __thread memo memos[MEMO_SLOTS];

static size_t memo_slot(pc_str provider, pc_str model)
{
    size_t h = provider.n * 7 + model.n * 31;
    if (model.n)
        h += (unsigned char)model.p[model.n - 1] * 131u + (unsigned char)model.p[model.n / 2];
    return h % MEMO_SLOTS;
}

/* Picks the first of |idx| in effect at |at_ns|. */
static bool pick(const pc_price_table *t, const uint32_t *idx, uint32_t k, int64_t at_ns,
                 pc_price *out)
{
    if (at_ns <= 0) at_ns = INT64_MAX;
    for (uint32_t i = 0; i < k; i++)
        if (t->e[idx[i]].since_ns <= at_ns) {
            *out = t->e[idx[i]].price;
            return true;
        }
    return false;
}

bool pc_price_table_lookup(pc_price_table *t, pc_str provider, pc_str model, int64_t at_ns,
                           pc_price *out)
{
    if (!model.n || model.n > PC_PRICES_MAX_MODEL || provider.n > PC_PRICES_MAX_MODEL) return false;
    size_t kl = provider.n + 1 + model.n;
    memo *mm = &memos[memo_slot(provider, model)];
    if (mm->gen == t->gen && mm->key_len == kl &&
        memcmp(mm->key, provider.p ? provider.p : "", provider.n) == 0 &&
        mm->key[provider.n] == '\0' && memcmp(mm->key + provider.n + 1, model.p, model.n) == 0)
        return pick(t, mm->idx, mm->n, at_ns, out);
    char key[2 * PC_PRICES_MAX_MODEL + 2];
    if (provider.n) memcpy(key, provider.p, provider.n);
    key[provider.n] = '\0';
    memcpy(key + provider.n + 1, model.p, model.n);
    key[kl] = '\0';
    uint64_t h = hash_bytes(key, kl);
    size_t slot = (size_t)(h % CACHE_SLOTS);
    pthread_mutex_t *mu = &t->stripes[slot % CACHE_STRIPES];
    uint32_t idx[CACHE_MATCHES], k = 0;
    bool hit = false;
    pthread_mutex_lock(mu);
    cache_slot *cs = &t->slots[slot];
    if (cs->key && cs->key_len == kl && memcmp(cs->key, key, kl) == 0) {
        k = cs->n;
        memcpy(idx, cs->idx, k * sizeof(idx[0]));
        hit = true;
    }
    pthread_mutex_unlock(mu);
    if (!hit) {
        const char *m = key + provider.n + 1;
        k = match_all(t, provider, m, model.n, idx);
        const char *slash = strrchr(m, '/');
        if (!k && slash && slash[1])
            k = match_all(t, provider, slash + 1, model.n - (size_t)(slash + 1 - m), idx);
        char *copy = pc_xmalloc(kl);
        memcpy(copy, key, kl);
        pthread_mutex_lock(mu);
        free(cs->key);
        cs->key = copy;
        cs->key_len = kl;
        cs->n = k;
        memcpy(cs->idx, idx, k * sizeof(idx[0]));
        pthread_mutex_unlock(mu);
    }
    if (kl <= MEMO_KEY) {
        mm->gen = t->gen;
        mm->key_len = (uint32_t)kl;
        mm->n = k;
        memcpy(mm->idx, idx, k * sizeof(idx[0]));
        memcpy(mm->key, key, kl);
    }
    return pick(t, idx, k, at_ns, out);
}

/* ---- reloadable sources -------------------------------------------------------- */

struct pc_prices {
    char *path;
    pthread_mutex_t mu;
    pc_price_table *cur;
    pc_prices *next; /* registry */
};

static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static pc_prices *registry;

/* Reads |path| (a regular file of at most MAX_FILE_BYTES) into a malloc'd buffer. */
static char *read_file(const char *path, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        errf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(f), &st) || !S_ISREG(st.st_mode) || st.st_size > (off_t)MAX_FILE_BYTES) {
        errf(err, errlen, "%s: not a regular file of at most %u bytes", path, MAX_FILE_BYTES);
        fclose(f);
        return NULL;
    }
    char *buf = pc_xmalloc((size_t)st.st_size + 1);
    size_t n = fread(buf, 1, (size_t)st.st_size, f);
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        errf(err, errlen, "%s: read error", path);
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

static pc_price_table *builtin;
static pthread_once_t builtin_once = PTHREAD_ONCE_INIT;

static void builtin_init(void)
{
    char err[512];
    builtin = pc_price_table_parse(NULL, 0, NULL, err, sizeof(err));
    if (!builtin) { /* the shipped file is checked by its unit test */
        pc_log(PC_LOG_ERROR, "prices", "the shipped price table: %s", err);
        abort();
    }
}

pc_price_table *pc_price_table_builtin(void)
{
    pthread_once(&builtin_once, builtin_init);
    return pc_price_table_ref(builtin);
}

static pc_price_table *load(const char *path, char *err, size_t errlen)
{
    if (!path) return pc_price_table_builtin();
    size_t len = 0;
    char *text = read_file(path, &len, err, errlen);
    if (!text) return NULL;
    pc_price_table *t = pc_price_table_parse(text, len, path, err, errlen);
    free(text);
    return t;
}

pc_prices *pc_prices_create(const char *path, char *err, size_t errlen)
{
    if (path && !*path) path = NULL;
    pc_price_table *t = load(path, err, errlen);
    if (!t) return NULL;
    pc_prices *p = pc_xcalloc(1, sizeof(*p));
    p->path = path ? pc_xstrdup(path) : NULL;
    pthread_mutex_init(&p->mu, NULL);
    p->cur = t;
    pthread_mutex_lock(&registry_mu);
    p->next = registry;
    registry = p;
    pthread_mutex_unlock(&registry_mu);
    return p;
}

void pc_prices_destroy(pc_prices *p)
{
    if (!p) return;
    pthread_mutex_lock(&registry_mu);
    for (pc_prices **q = &registry; *q; q = &(*q)->next)
        if (*q == p) {
            *q = p->next;
            break;
        }
    pthread_mutex_unlock(&registry_mu);
    pc_price_table_unref(p->cur);
    pthread_mutex_destroy(&p->mu);
    free(p->path);
    free(p);
}

pc_price_table *pc_prices_acquire(pc_prices *p)
{
    pthread_mutex_lock(&p->mu);
    pc_price_table *t = pc_price_table_ref(p->cur);
    pthread_mutex_unlock(&p->mu);
    return t;
}

int pc_prices_reload(pc_prices *p)
{
    if (!p->path) return 0;
    char err[512];
    pc_price_table *t = load(p->path, err, sizeof(err));
    if (!t) {
        pc_log(PC_LOG_ERROR, "prices", "reload failed, the previous prices stay in force: %s", err);
        return -1;
    }
    pthread_mutex_lock(&p->mu);
    pc_price_table *old = p->cur;
    p->cur = t;
    pthread_mutex_unlock(&p->mu);
    pc_price_table_unref(old);
    pc_log(PC_LOG_INFO, "prices", "reloaded %s: %zu price entries", p->path, t->n);
    return 0;
}

int pc_prices_reload_all(void)
{
    int failed = 0;
    pthread_mutex_lock(&registry_mu); /* held: a processor is not destroyed mid-reload */
    for (pc_prices *p = registry; p; p = p->next)
        failed += pc_prices_reload(p) != 0;
    pthread_mutex_unlock(&registry_mu);
    return failed;
}

/* ---- unpriced models ----------------------------------------------------------- */

#define UNPRICED_SLOTS 2048 /* > 2 x PC_PRICES_UNPRICED_MAX: probes stay short */

typedef struct unpriced {
    char *key; /* provider '\0' model '\0' */
    size_t key_len;
    int64_t spans;
} unpriced;

static pthread_mutex_t unpriced_mu = PTHREAD_MUTEX_INITIALIZER;
static unpriced unpriced_set[UNPRICED_SLOTS];
static size_t unpriced_n;
static int64_t unpriced_over;

void pc_prices_unpriced_add(pc_str provider, pc_str model)
{
    if (provider.n > PC_PRICES_MAX_MODEL) provider.n = PC_PRICES_MAX_MODEL;
    if (model.n > PC_PRICES_MAX_MODEL) model.n = PC_PRICES_MAX_MODEL;
    char key[2 * PC_PRICES_MAX_MODEL + 2];
    size_t kl = provider.n + model.n + 2;
    if (provider.n) memcpy(key, provider.p, provider.n);
    key[provider.n] = '\0';
    if (model.n) memcpy(key + provider.n + 1, model.p, model.n);
    key[kl - 1] = '\0';
    size_t i = (size_t)(hash_bytes(key, kl) % UNPRICED_SLOTS);
    pthread_mutex_lock(&unpriced_mu);
    for (;; i = (i + 1) % UNPRICED_SLOTS) {
        unpriced *u = &unpriced_set[i];
        if (!u->key) {
            if (unpriced_n >= PC_PRICES_UNPRICED_MAX) {
                unpriced_over++;
            } else {
                u->key = pc_xmalloc(kl);
                memcpy(u->key, key, kl);
                u->key_len = kl;
                u->spans = 1;
                unpriced_n++;
            }
            break;
        }
        if (u->key_len == kl && memcmp(u->key, key, kl) == 0) {
            u->spans++;
            break;
        }
    }
    pthread_mutex_unlock(&unpriced_mu);
}

void pc_prices_unpriced_each(void (*fn)(const char *provider, const char *model, int64_t spans,
                                        void *ud),
                             void *ud)
{
    pthread_mutex_lock(&unpriced_mu);
    for (size_t i = 0; i < UNPRICED_SLOTS; i++)
        if (unpriced_set[i].key)
            fn(unpriced_set[i].key, unpriced_set[i].key + strlen(unpriced_set[i].key) + 1,
               unpriced_set[i].spans, ud);
    pthread_mutex_unlock(&unpriced_mu);
}

int64_t pc_prices_unpriced_overflow(void)
{
    pthread_mutex_lock(&unpriced_mu);
    int64_t n = unpriced_over;
    pthread_mutex_unlock(&unpriced_mu);
    return n;
}

void pc_prices_unpriced_reset(void)
{
    pthread_mutex_lock(&unpriced_mu);
    for (size_t i = 0; i < UNPRICED_SLOTS; i++) {
        free(unpriced_set[i].key);
        unpriced_set[i].key = NULL;
    }
    unpriced_n = 0;
    unpriced_over = 0;
    pthread_mutex_unlock(&unpriced_mu);
}
