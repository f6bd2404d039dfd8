/*
 * metrics.c - the self-metrics registry and its Prometheus text rendering (see
 * metrics.h).
 *
 * Layout: a list of families (name, help, type, histogram bounds), each with a
 * list of series (the rendered label set, which is also the lookup key, and the
 * value). Lists only grow; nodes never move, so the pointers handed out stay
 * valid without any lock on the increment path. The mutex guards the lists and
 * the collector table; rendering holds it while it walks them.
 *
 * Rendering first sorts every sample into groups by metric name (registered
 * families in registration order, then collectors' names in order of first
 * appearance), because the text format wants all samples of one family under
 * one HELP/TYPE header.
 */
#include "metrics.h"
#include "log.h"
#include "mem.h"

#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pc_histogram {
    size_t n;                                  /* bounds */
    double bounds[PC_METRICS_MAX_BUCKETS];     /* ascending upper bounds */
    uint64_t buckets[PC_METRICS_MAX_BUCKETS + 1]; /* atomic; per bucket, not cumulative */
    uint64_t sum_bits;                         /* atomic; a double's bits */
};

typedef struct series {
    struct series *next;
    char *labels; /* rendered: a="x",b="y"; "" for none */
    pc_counter c;
    pc_gauge g;
    struct pc_histogram h;
} series;

typedef struct family {
    struct family *next;
    char *name;
    char *help;
    pc_metric_type type;
    size_t nb;
    double bounds[PC_METRICS_MAX_BUCKETS];
    series *head, **tail;
} family;

typedef struct collector {
    pc_metrics_collect_fn fn;
    void *ctx;
} collector;

struct pc_metrics {
    pthread_mutex_t mu;
    family *head, **tail;
    collector *coll;
    size_t n_coll, cap_coll;
};

/* Where registrations go when there is no registry or they are invalid. */
static series scratch;

pc_metrics *pc_metrics_create(void)
{
    pc_metrics *m = pc_xcalloc(1, sizeof(*m));
    pthread_mutex_init(&m->mu, NULL);
    m->tail = &m->head;
    return m;
}

void pc_metrics_destroy(pc_metrics *m)
{
    if (!m) return;
    for (family *f = m->head, *fn; f; f = fn) {
        fn = f->next;
        for (series *s = f->head, *sn; s; s = sn) {
            sn = s->next;
            free(s->labels);
            free(s);
        }
        free(f->name);
        free(f->help);
        free(f);
    }
    free(m->coll);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

/* ------------------------------------------------------------- text helpers */

/* Appends |v| escaped as a label value (\\, \", \n) or, with |help|, as HELP
 * text (\\, \n). */
static void put_escaped(pc_buf *b, const char *v, bool help)
{
    for (; *v; v++) {
        if (*v == '\\') pc_buf_puts(b, "\\\\");
        else if (*v == '\n') pc_buf_puts(b, "\\n");
        else if (*v == '"' && !help) pc_buf_puts(b, "\\\"");
        else pc_buf_putc(b, *v);
    }
}

static bool valid_name(const char *s)
{
    if (!s || !*s || (*s >= '0' && *s <= '9')) return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == ':'))
            return false;
    return true;
}

/* Renders |labels| as a="x",b="y" into |b|. -1 when the list is malformed. */
static int render_labels(pc_buf *b, const char *const *labels)
{
    size_t n = 0;
    for (; labels && labels[0]; labels += 2, n++) {
        if (n == PC_METRICS_MAX_LABELS || !valid_name(labels[0]) || !labels[1]) return -1;
        if (n) pc_buf_putc(b, ',');
        pc_buf_printf(b, "%s=\"", labels[0]);
        put_escaped(b, labels[1], false);
        pc_buf_putc(b, '"');
    }
    return 0;
}

/* Appends |v| as a sample value: integers exactly, +Inf, -Inf, NaN. */
static void put_value(pc_buf *b, double v)
{
    if (isnan(v)) pc_buf_puts(b, "NaN");
    else if (isinf(v)) pc_buf_puts(b, v > 0 ? "+Inf" : "-Inf");
    else if (v == (double)(int64_t)v && fabs(v) < 9e15) pc_buf_printf(b, "%lld", (long long)v);
    else pc_buf_printf(b, "%.15g", v);
}

/* ------------------------------------------------------------- registration */

static family *find_family(pc_metrics *m, const char *name)
{
    for (family *f = m->head; f; f = f->next)
        if (!strcmp(f->name, name)) return f;
    return NULL;
}

/* Finds or creates the series; the scratch series on misuse. Takes m->mu. */
static series *lookup(pc_metrics *m, pc_metric_type type, const char *name, const char *help,
                      const char *const *labels, const double *bounds, size_t nb)
{
    if (!m) return &scratch;
    pc_buf key = PC_BUF_INIT;
    pc_buf_puts(&key, "");
    if (!valid_name(name) || render_labels(&key, labels) || nb > PC_METRICS_MAX_BUCKETS) {
        pc_log(PC_LOG_WARN, NULL, "metrics: bad registration of '%s' (name or labels)",
               name ? name : "(null)");
        pc_buf_free(&key);
        return &scratch;
    }
    pthread_mutex_lock(&m->mu);
    family *f = find_family(m, name);
    if (f && f->type != type) {
        pthread_mutex_unlock(&m->mu);
        pc_log(PC_LOG_WARN, NULL, "metrics: '%s' registered with two types", name);
        pc_buf_free(&key);
        return &scratch;
    }
    if (!f) {
        f = pc_xcalloc(1, sizeof(*f));
        f->name = pc_xstrdup(name);
        f->help = pc_xstrdup(help ? help : "");
        f->type = type;
        f->nb = nb;
        if (nb) memcpy(f->bounds, bounds, nb * sizeof(double));
        f->tail = &f->head;
        *m->tail = f;
        m->tail = &f->next;
    }
    series *s = f->head;
    while (s && strcmp(s->labels, key.data)) s = s->next;
    if (!s) {
        s = pc_xcalloc(1, sizeof(*s));
        size_t len;
        s->labels = pc_buf_steal(&key, &len);
        s->h.n = f->nb;
        memcpy(s->h.bounds, f->bounds, sizeof(s->h.bounds));
        *f->tail = s;
        f->tail = &s->next;
    }
    pthread_mutex_unlock(&m->mu);
    pc_buf_free(&key);
    return s;
}

pc_counter *pc_metrics_counter(pc_metrics *m, const char *name, const char *help,
                               const char *const *labels)
{
    return &lookup(m, PC_METRIC_COUNTER, name, help, labels, NULL, 0)->c;
}

pc_gauge *pc_metrics_gauge(pc_metrics *m, const char *name, const char *help,
                           const char *const *labels)
{
    return &lookup(m, PC_METRIC_GAUGE, name, help, labels, NULL, 0)->g;
}

pc_histogram *pc_metrics_histogram(pc_metrics *m, const char *name, const char *help,
                                   const char *const *labels, const double *bounds, size_t n)
{
    return &lookup(m, PC_METRIC_HISTOGRAM, name, help, labels, bounds, n)->h;
}

void pc_histogram_observe(pc_histogram *h, double v)
{
    size_t i = 0;
    while (i < h->n && v > h->bounds[i]) i++;
    __atomic_fetch_add(&h->buckets[i], 1, __ATOMIC_RELAXED);
    uint64_t old = __atomic_load_n(&h->sum_bits, __ATOMIC_RELAXED), nw;
    do {
        double d;
        memcpy(&d, &old, sizeof(d));
        d += v;
        memcpy(&nw, &d, sizeof(nw));
    } while (!__atomic_compare_exchange_n(&h->sum_bits, &old, nw, true, __ATOMIC_RELAXED,
                                          __ATOMIC_RELAXED));
}

void pc_metrics_add_collector(pc_metrics *m, pc_metrics_collect_fn fn, void *ctx)
{
    if (!m || !fn) return;
    pthread_mutex_lock(&m->mu);
    if (m->n_coll == m->cap_coll) {
        m->cap_coll = m->cap_coll ? 2 * m->cap_coll : 8;
        m->coll = pc_xrealloc(m->coll, m->cap_coll * sizeof(*m->coll));
    }
    m->coll[m->n_coll++] = (collector){fn, ctx};
    pthread_mutex_unlock(&m->mu);
}

void pc_metrics_remove_collector(pc_metrics *m, pc_metrics_collect_fn fn, void *ctx)
{
    if (!m) return;
    pthread_mutex_lock(&m->mu);
    for (size_t i = 0; i < m->n_coll; i++) {
        if (m->coll[i].fn != fn || m->coll[i].ctx != ctx) continue;
        memmove(&m->coll[i], &m->coll[i + 1], (m->n_coll - i - 1) * sizeof(*m->coll));
        m->n_coll--;
        break;
    }
    pthread_mutex_unlock(&m->mu);
}

/* ---------------------------------------------------------------- rendering */

typedef struct group {
    char *name;
    char *help;
    pc_metric_type type;
    pc_buf lines;
} group;

struct pc_metrics_out {
    group *g;
    size_t n, cap;
};

static group *get_group(pc_metrics_out *out, const char *name, const char *help,
                        pc_metric_type type)
{
    for (size_t i = 0; i < out->n; i++)
        if (!strcmp(out->g[i].name, name)) return out->g[i].type == type ? &out->g[i] : NULL;
    if (out->n == out->cap) {
        out->cap = out->cap ? 2 * out->cap : 32;
        out->g = pc_xrealloc(out->g, out->cap * sizeof(*out->g));
    }
    group *g = &out->g[out->n++];
    g->name = pc_xstrdup(name);
    g->help = pc_xstrdup(help ? help : "");
    g->type = type;
    g->lines = (pc_buf)PC_BUF_INIT;
    return g;
}

/* Appends one sample line: name[suffix]{labels[,extra]} value. */
static void put_line(pc_buf *b, const char *name, const char *suffix, const char *labels,
                     const char *extra, double v)
{
    pc_buf_puts(b, name);
    pc_buf_puts(b, suffix);
    bool any = labels[0] || extra;
    if (any) pc_buf_putc(b, '{');
    pc_buf_puts(b, labels);
    if (labels[0] && extra) pc_buf_putc(b, ',');
    if (extra) pc_buf_puts(b, extra);
    if (any) pc_buf_putc(b, '}');
    pc_buf_putc(b, ' ');
    put_value(b, v);
    pc_buf_putc(b, '\n');
}

static void render_series(group *g, const family *f, series *s)
{
    switch (f->type) {
    case PC_METRIC_COUNTER:
        put_line(&g->lines, f->name, "_total", s->labels, NULL, (double)pc_counter_get(&s->c));
        break;
    case PC_METRIC_GAUGE:
        put_line(&g->lines, f->name, "", s->labels, NULL,
                 (double)__atomic_load_n(&s->g.v, __ATOMIC_RELAXED));
        break;
    case PC_METRIC_HISTOGRAM: {
        uint64_t cum = 0;
        char le[64];
        pc_buf tmp = PC_BUF_INIT;
        for (size_t i = 0; i <= s->h.n; i++) {
            cum += __atomic_load_n(&s->h.buckets[i], __ATOMIC_RELAXED);
            pc_buf_reset(&tmp);
            put_value(&tmp, i < s->h.n ? s->h.bounds[i] : INFINITY);
            snprintf(le, sizeof(le), "le=\"%s\"", tmp.data);
            put_line(&g->lines, f->name, "_bucket", s->labels, le, (double)cum);
        }
        pc_buf_free(&tmp);
        uint64_t bits = __atomic_load_n(&s->h.sum_bits, __ATOMIC_RELAXED);
        double sum;
        memcpy(&sum, &bits, sizeof(sum));
        put_line(&g->lines, f->name, "_sum", s->labels, NULL, sum);
        put_line(&g->lines, f->name, "_count", s->labels, NULL, (double)cum);
        break;
    }
    }
}

void pc_metrics_out_add(pc_metrics_out *out, pc_metric_type type, const char *name,
                        const char *help, const char *const *labels, double value)
{
    if (type == PC_METRIC_HISTOGRAM || !valid_name(name)) return;
    pc_buf l = PC_BUF_INIT;
    pc_buf_puts(&l, "");
    group *g = render_labels(&l, labels) ? NULL : get_group(out, name, help, type);
    if (g) put_line(&g->lines, name, type == PC_METRIC_COUNTER ? "_total" : "", l.data, NULL, value);
    pc_buf_free(&l);
}

static const char *type_word(pc_metric_type t)
{
    return t == PC_METRIC_COUNTER ? "counter" : t == PC_METRIC_GAUGE ? "gauge" : "histogram";
}

void pc_metrics_render(pc_metrics *m, pc_buf *b)
{
    if (!m) return;
    pc_metrics_out out = {0};
    pthread_mutex_lock(&m->mu);
    for (family *f = m->head; f; f = f->next) {
        group *g = get_group(&out, f->name, f->help, f->type);
        for (series *s = f->head; g && s; s = s->next) render_series(g, f, s);
    }
    for (size_t i = 0; i < m->n_coll; i++) m->coll[i].fn(m->coll[i].ctx, &out);
    pthread_mutex_unlock(&m->mu);
    for (size_t i = 0; i < out.n; i++) {
        group *g = &out.g[i];
        const char *suffix = g->type == PC_METRIC_COUNTER ? "_total" : "";
        if (g->lines.len) {
            pc_buf_printf(b, "# HELP %s%s ", g->name, suffix);
            put_escaped(b, g->help, true);
            pc_buf_printf(b, "\n# TYPE %s%s %s\n", g->name, suffix, type_word(g->type));
            pc_buf_puts(b, g->lines.data);
        }
        free(g->name);
        free(g->help);
        pc_buf_free(&g->lines);
    }
    free(out.g);
}

/* ------------------------------------------------------- status-code counters */

void pc_metrics_codes_init(pc_metrics_codes *c, pc_metrics *m, const char *name, const char *help,
                           const char *listener, const char *code_label)
{
    memset(c, 0, sizeof(*c));
    c->m = m;
    c->name = name;
    c->help = help;
    c->code_label = code_label;
    snprintf(c->listener, sizeof(c->listener), "%s", listener ? listener : "");
}

void pc_metrics_codes_add(pc_metrics_codes *c, int code)
{
    if (code < 0 || code >= 600) code = 0;
    pc_counter *k = __atomic_load_n(&c->by[code], __ATOMIC_ACQUIRE);
    if (!k) { /* first time: the registry returns the same series to racing threads */
        char num[8];
        snprintf(num, sizeof(num), "%d", code);
        const char *const labels[] = {"listener", c->listener, c->code_label, num, NULL};
        k = pc_metrics_counter(c->m, c->name, c->help, labels);
        __atomic_store_n(&c->by[code], k, __ATOMIC_RELEASE);
    }
    pc_counter_add(k, 1);
}
