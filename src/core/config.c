/*
 * config.c - loads the YAML configuration (see config.h for the format).
 *
 * Three steps: libyaml builds a document tree; walk() substitutes ${env:...} in
 * every scalar and flattens each component section into pc_config_entry rows;
 * apply_options() maps the rows onto the component's option table. Every
 * failure writes one message that names the offending key, e.g.
 *   exporters.local.retention: "ninety" is not a duration (use 250ms, 5s, 10m, 2h, 90d)
 */
#include "config.h"
#include "auth.h"
#include "component.h"
#include "http.h"
#include "log.h"
#include "mem.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

/* ---------------------------------------------------------------- helpers */

#define errf pc_config_errf

int pc_config_errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* A unit suffix and what one of it is worth. */
typedef struct unit {
    const char *name;
    double mul;
} unit;

/*
 * The shared reader of durations and sizes: a non-negative finite number, then
 * spaces when |spaces|, then exactly one of the |n| units. The product is
 * compared with |max| as a double before the cast, and NaN fails every
 * comparison, so "nan", "inf" and 1e400 are rejected rather than cast.
 */
static int parse_scaled(const char *s, const unit *units, size_t n, bool spaces, double max,
                        int64_t *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || !(v >= 0)) return -1;
    while (spaces && *end == ' ') end++;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(end, units[i].name) == 0) {
            double x = v * units[i].mul;
            if (!(x <= max)) return -1;
            *out = (int64_t)x;
            return 0;
        }
    }
    return -1;
}

int pc_parse_duration_ms(const char *s, int64_t *out)
{
    static const unit units[] = {{"ms", 1},      {"s", 1000},       {"m", 60000},
                                 {"h", 3600000}, {"d", 86400000},   {"", 1000}};
    return parse_scaled(s, units, sizeof(units) / sizeof(units[0]), false, 9.2e15, out);
}

int pc_parse_size(const char *s, int64_t *out)
{
    static const unit units[] = {{"", 1},          {"B", 1},          {"KiB", 1024.0},
                                 {"MiB", 1048576.0}, {"GiB", 1073741824.0}, {"KB", 1e3},
                                 {"MB", 1e6},      {"GB", 1e9},       {"K", 1024.0},
                                 {"M", 1048576.0}, {"G", 1073741824.0}};
    return parse_scaled(s, units, sizeof(units) / sizeof(units[0]), true, 9.2e18, out);
}

static int parse_bool(const char *s, bool *out)
{
    if (!strcasecmp(s, "true") || !strcasecmp(s, "yes") || !strcasecmp(s, "on") || !strcmp(s, "1"))
        *out = true;
    else if (!strcasecmp(s, "false") || !strcasecmp(s, "no") || !strcasecmp(s, "off") ||
             !strcmp(s, "0"))
        *out = false;
    else
        return -1;
    return 0;
}

/* ------------------------------------------------------------- options */

static void *field(void *cfg, const pc_option *o)
{
    return (char *)cfg + o->offset;
}

static void free_field(void *cfg, const pc_option *o)
{
    if (o->type == PC_OPT_STRING) {
        char **p = field(cfg, o);
        free(*p);
        *p = NULL;
    } else if (o->type == PC_OPT_STRLIST) {
        pc_strlist *l = field(cfg, o);
        for (size_t i = 0; i < l->n; i++) free(l->v[i]);
        free(l->v);
        l->v = NULL;
        l->n = 0;
    }
}

/* Sets option |o| from text |v| (NULL = the empty value). */
static int set_scalar(void *cfg, const pc_option *o, const char *v, const char *name, char *err,
                      size_t errlen)
{
    int64_t x = 0;
    switch (o->type) {
    case PC_OPT_STRING: {
        char **p = field(cfg, o);
        free(*p);
        *p = pc_xstrdup(v ? v : "");
        return 0;
    }
    case PC_OPT_BOOL: {
        bool b = false;
        if (v && parse_bool(v, &b))
            return errf(err, errlen, "%s: \"%s\" is not a boolean (use true or false)", name, v);
        *(bool *)field(cfg, o) = b;
        return 0;
    }
    case PC_OPT_SECTION: *(bool *)field(cfg, o) = true; return 0;
    case PC_OPT_STRLIST: {
        pc_strlist *l = field(cfg, o);
        free_field(cfg, o);
        if (v && *v) {
            l->v = pc_xmalloc(sizeof(char *));
            l->v[0] = pc_xstrdup(v);
            l->n = 1;
        }
        return 0;
    }
    case PC_OPT_INT: {
        char *end;
        errno = 0;
        long long ll = v ? strtoll(v, &end, 10) : 0;
        if (v && (*end || end == v || errno))
            return errf(err, errlen, "%s: \"%s\" is not an integer", name, v);
        x = ll;
        break;
    }
    case PC_OPT_DURATION:
        if (v && pc_parse_duration_ms(v, &x))
            return errf(err, errlen, "%s: \"%s\" is not a duration (use 250ms, 5s, 10m, 2h, 90d)",
                        name, v);
        break;
    case PC_OPT_SIZE:
        if (v && pc_parse_size(v, &x))
            return errf(err, errlen, "%s: \"%s\" is not a size (use 4096, 512KiB, 20MiB, 1GiB)",
                        name, v);
        break;
    }
    if ((o->min || o->max) && (x < o->min || x > o->max))
        return errf(err, errlen, "%s: %s is out of range (%lld..%lld)", name, v ? v : "0",
                    (long long)o->min, (long long)o->max);
    *(int64_t *)field(cfg, o) = x;
    return 0;
}

int pc_config_apply_options(const pc_option *opts, void *cfg, const pc_config_entry *e, size_t n,
                            const char *prefix, char *err, size_t errlen)
{
    char name[512];
    for (const pc_option *o = opts; o && o->key; o++) {
        snprintf(name, sizeof(name), "%s.%s", prefix, o->key);
        if (o->type == PC_OPT_SECTION) continue;
        if (set_scalar(cfg, o, o->def, name, err, errlen)) return -1;
    }
    for (size_t i = 0; i < n; i++) {
        const pc_option *o = opts;
        while (o && o->key && strcmp(o->key, e[i].key) != 0) o++;
        snprintf(name, sizeof(name), "%s.%s", prefix, e[i].key);
        if (!o || !o->key) {
            if (e[i].is_map) continue; /* a parent of real keys; they are checked themselves */
            pc_buf known = PC_BUF_INIT;
            for (const pc_option *k = opts; k && k->key; k++) {
                if (known.len) pc_buf_puts(&known, ", ");
                pc_buf_puts(&known, k->key);
            }
            errf(err, errlen, "%s: unknown key (known keys: %s)", name,
                 known.len ? known.data : "none");
            pc_buf_free(&known);
            return -1;
        }
        if (e[i].is_list && o->type != PC_OPT_STRLIST)
            return errf(err, errlen, "%s: expected a single value, not a list", name);
        if (e[i].is_map && o->type != PC_OPT_SECTION)
            return errf(err, errlen, "%s: expected a value, not a section", name);
        if (e[i].is_list) {
            pc_strlist *l = field(cfg, o);
            free_field(cfg, o);
            l->v = pc_xcalloc(e[i].n_items ? e[i].n_items : 1, sizeof(char *));
            for (size_t k = 0; k < e[i].n_items; k++) l->v[k] = pc_xstrdup(e[i].items[k]);
            l->n = e[i].n_items;
            continue;
        }
        if (set_scalar(cfg, o, e[i].value, name, err, errlen)) return -1;
    }
    return 0;
}

void pc_config_free_options(const pc_option *opts, void *cfg)
{
    if (!cfg) return;
    for (const pc_option *o = opts; o && o->key; o++) free_field(cfg, o);
}

/* ------------------------------------------------------------- YAML tree */

typedef struct loader {
    yaml_document_t doc;
    char *err;
    size_t errlen;
    /* flattened entries of the section being read; strings owned by |pool| */
    pc_config_entry *entries;
    size_t n_entries, cap_entries;
    char **pool;
    size_t n_pool, cap_pool;
    int map_items; /* lists may hold mappings, flattened as "key[i].sub" (auth keys) */
    size_t n_nodes; /* nodes flatten() visited in this section (see MAX_NODES) */
} loader;

static char *keep(loader *L, char *s)
{
    if (L->n_pool == L->cap_pool) {
        L->cap_pool = L->cap_pool ? L->cap_pool * 2 : 64;
        L->pool = pc_xrealloc(L->pool, L->cap_pool * sizeof(char *));
    }
    return L->pool[L->n_pool++] = s;
}

/* Substitutes ${env:NAME} / ${env:NAME:-default} / $$ in |in|. NULL on error. */
static char *substitute(loader *L, const char *in, const char *where)
{
    pc_buf out = PC_BUF_INIT;
    pc_buf_reserve(&out, strlen(in));
    for (const char *p = in; *p;) {
        if (p[0] == '$' && p[1] == '$') {
            pc_buf_putc(&out, '$');
            p += 2;
            continue;
        }
        if (p[0] != '$' || p[1] != '{') {
            pc_buf_putc(&out, *p++);
            continue;
        }
        const char *close = strchr(p, '}');
        if (!close) {
            errf(L->err, L->errlen, "%s: unterminated ${ in \"%s\"", where, in);
            pc_buf_free(&out);
            return NULL;
        }
        const char *name = p + 2;
        if (strncmp(name, "env:", 4) == 0) name += 4;
        const char *dflt = NULL;
        const char *name_end = close;
        const char *sep = strstr(name, ":-");
        if (sep && sep < close) {
            dflt = sep + 2;
            name_end = sep;
        }
        char var[256];
        size_t vl = (size_t)(name_end - name);
        if (vl == 0 || vl >= sizeof(var)) {
            errf(L->err, L->errlen, "%s: bad variable reference in \"%s\"", where, in);
            pc_buf_free(&out);
            return NULL;
        }
        memcpy(var, name, vl);
        var[vl] = '\0';
        const char *val = getenv(var);
        if (val && (*val || !dflt)) pc_buf_puts(&out, val);
        else if (dflt) pc_buf_append(&out, dflt, (size_t)(close - dflt));
        else {
            errf(L->err, L->errlen,
                 "%s: environment variable %s is not set (write ${env:%s:-default} for a default)",
                 where, var, var);
            pc_buf_free(&out);
            return NULL;
        }
        p = close + 1;
    }
    if (!out.data) pc_buf_reserve(&out, 0);
    return keep(L, pc_buf_steal(&out, NULL));
}

static bool is_null_scalar(yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE) return false;
    if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return false;
    const char *v = (const char *)n->data.scalar.value;
    return !*v || !strcmp(v, "~") || !strcmp(v, "null") || !strcmp(v, "Null") || !strcmp(v, "NULL");
}

static pc_config_entry *add_entry(loader *L, const char *key)
{
    if (L->n_entries == L->cap_entries) {
        L->cap_entries = L->cap_entries ? L->cap_entries * 2 : 32;
        L->entries = pc_xrealloc(L->entries, L->cap_entries * sizeof(pc_config_entry));
    }
    pc_config_entry *e = &L->entries[L->n_entries++];
    memset(e, 0, sizeof(*e));
    e->key = keep(L, pc_xstrdup(key));
    return e;
}

/*
 * The text of the mapping key |k|, or NULL after the message "<where>: keys
 * must be plain text". Every reader of a mapping's keys goes through here:
 * libyaml also allows a mapping or a sequence as a key, whose node holds no
 * scalar text.
 */
static const char *key_text(loader *L, yaml_node_t *k, const char *where)
{
    if (k && k->type == YAML_SCALAR_NODE) return (const char *)k->data.scalar.value;
    errf(L->err, L->errlen, "%s: keys must be plain text", *where ? where : "(top level)");
    return NULL;
}

/*
 * Why bounds on the walk: YAML aliases make the document a graph, not a tree.
 * An alias may refer to a node that contains it (`&a {x: *a}`: a cycle) or
 * repeat a large node many times (an "alias bomb"). flatten() therefore stops
 * at MAX_DEPTH levels and after MAX_NODES nodes of one section, with a message
 * naming where it stopped, instead of recursing or expanding without end.
 */
#define MAX_DEPTH 32
#define MAX_NODES 100000

/* Flattens the node |n| at dotted |path| (under |where| for messages), |depth|
 * levels below the section. */
static int flatten(loader *L, yaml_node_t *n, const char *path, const char *where, int depth)
{
    char full[512];
    snprintf(full, sizeof(full), "%s.%s", where, path);
    if (!n) return errf(L->err, L->errlen, "%s: missing value", full);
    if (depth > MAX_DEPTH)
        return errf(L->err, L->errlen,
                    "%s: nested deeper than %d levels (does an alias refer to itself?)", full,
                    MAX_DEPTH);
    if (++L->n_nodes > MAX_NODES)
        return errf(L->err, L->errlen, "%s: more than %d values in one section (aliases?)", full,
                    MAX_NODES);
    if (n->type == YAML_MAPPING_NODE) {
        if (*path) add_entry(L, path)->is_map = 1;
        for (yaml_node_pair_t *pr = n->data.mapping.pairs.start; pr < n->data.mapping.pairs.top;
             pr++) {
            const char *k = key_text(L, yaml_document_get_node(&L->doc, pr->key), full);
            yaml_node_t *v = yaml_document_get_node(&L->doc, pr->value);
            if (!k) return -1;
            char sub[512];
            snprintf(sub, sizeof(sub), "%s%s%s", path, *path ? "." : "", k);
            if (flatten(L, v, sub, where, depth + 1)) return -1;
        }
        return 0;
    }
    if (n->type == YAML_SEQUENCE_NODE) {
        size_t cnt = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
        yaml_node_t *first =
            cnt ? yaml_document_get_node(&L->doc, n->data.sequence.items.start[0]) : NULL;
        if (L->map_items && first && first->type == YAML_MAPPING_NODE) {
            add_entry(L, path)->is_map = 1;
            for (size_t i = 0; i < cnt; i++) {
                yaml_node_t *it = yaml_document_get_node(&L->doc, n->data.sequence.items.start[i]);
                char sub[512];
                snprintf(sub, sizeof(sub), "%s[%zu]", path, i);
                if (!it || it->type != YAML_MAPPING_NODE)
                    return errf(L->err, L->errlen, "%s.%s: expected a mapping like the first item",
                                where, sub);
                if (flatten(L, it, sub, where, depth + 1)) return -1;
            }
            return 0;
        }
        pc_config_entry *e = add_entry(L, path);
        const char **items = (const char **)keep(L, pc_xcalloc(cnt ? cnt : 1, sizeof(char *)));
        for (size_t i = 0; i < cnt; i++) {
            yaml_node_t *it = yaml_document_get_node(&L->doc, n->data.sequence.items.start[i]);
            if (!it || it->type != YAML_SCALAR_NODE)
                return errf(L->err, L->errlen, "%s[%zu]: list items must be plain values", full,
                            i);
            char w[560];
            snprintf(w, sizeof(w), "%s[%zu]", full, i);
            if (!(items[i] = substitute(L, (const char *)it->data.scalar.value, w))) return -1;
        }
        e = &L->entries[L->n_entries - 1];
        e->is_list = 1;
        e->items = items;
        e->n_items = cnt;
        return 0;
    }
    if (is_null_scalar(n)) {
        add_entry(L, path);
        return 0;
    }
    const char *v = substitute(L, (const char *)n->data.scalar.value, full);
    if (!v) return -1;
    add_entry(L, path)->value = v;
    return 0;
}

static void reset_entries(loader *L)
{
    L->n_entries = 0;
    L->n_nodes = 0;
}

static yaml_node_t *map_get(loader *L, yaml_node_t *map, const char *key)
{
    if (!map || map->type != YAML_MAPPING_NODE) return NULL;
    for (yaml_node_pair_t *pr = map->data.mapping.pairs.start; pr < map->data.mapping.pairs.top;
         pr++) {
        yaml_node_t *k = yaml_document_get_node(&L->doc, pr->key);
        if (k && k->type == YAML_SCALAR_NODE && !strcmp((const char *)k->data.scalar.value, key))
            return yaml_document_get_node(&L->doc, pr->value);
    }
    return NULL;
}

/* Checks that |map| (a mapping or null) has only the keys in |allowed|. */
static int only_keys(loader *L, yaml_node_t *map, const char *where, const char *const *allowed)
{
    if (!map || is_null_scalar(map)) return 0;
    if (map->type != YAML_MAPPING_NODE)
        return errf(L->err, L->errlen, "%s: expected a mapping", where);
    for (yaml_node_pair_t *pr = map->data.mapping.pairs.start; pr < map->data.mapping.pairs.top;
         pr++) {
        const char *ks = key_text(L, yaml_document_get_node(&L->doc, pr->key), where);
        if (!ks) return -1;
        bool ok = false;
        for (const char *const *a = allowed; *a; a++) ok |= !strcmp(ks, *a);
        if (!ok) {
            pc_buf known = PC_BUF_INIT;
            for (const char *const *a = allowed; *a; a++) {
                if (known.len) pc_buf_puts(&known, ", ");
                pc_buf_puts(&known, *a);
            }
            errf(L->err, L->errlen, "%s%s%s: unknown key (known keys: %s)", where, *where ? "." : "",
                 ks, known.data);
            pc_buf_free(&known);
            return -1;
        }
    }
    return 0;
}

static const char *const kind_section[] = {"receivers", "processors", "exporters"};
static const char *const kind_noun[] = {"receiver", "processor", "exporter"};

static void list_types(const pc_component_ops *ops, void *ud)
{
    void **a = ud;
    pc_buf *b = a[0];
    if (ops->kind != *(pc_kind *)a[1]) return;
    if (b->len) pc_buf_puts(b, ", ");
    pc_buf_puts(b, ops->type);
}

static int load_components(loader *L, pc_config *c, yaml_node_t *root, pc_kind kind)
{
    yaml_node_t *sec = map_get(L, root, kind_section[kind]);
    if (!sec || is_null_scalar(sec)) return 0;
    if (sec->type != YAML_MAPPING_NODE)
        return errf(L->err, L->errlen, "%s: expected a mapping of components", kind_section[kind]);
    for (yaml_node_pair_t *pr = sec->data.mapping.pairs.start; pr < sec->data.mapping.pairs.top;
         pr++) {
        const char *id = key_text(L, yaml_document_get_node(&L->doc, pr->key), kind_section[kind]);
        yaml_node_t *v = yaml_document_get_node(&L->doc, pr->value);
        if (!id) return -1;
        char where[300];
        snprintf(where, sizeof(where), "%s.%s", kind_section[kind], id);
        char type[128];
        size_t tl = strcspn(id, "/");
        if (tl == 0 || tl >= sizeof(type) || (id[tl] == '/' && !id[tl + 1]))
            return errf(L->err, L->errlen, "%s: component ids are type or type/name", where);
        memcpy(type, id, tl);
        type[tl] = '\0';
        const pc_component_ops *ops = pc_registry_find(kind, type);
        if (!ops) {
            pc_buf known = PC_BUF_INIT;
            void *ud[2] = {&known, &kind};
            pc_registry_each(list_types, ud);
            errf(L->err, L->errlen, "%s: unknown %s type '%s' (known: %s)", where, kind_noun[kind],
                 type, known.data ? known.data : "none");
            pc_buf_free(&known);
            return -1;
        }
        for (size_t i = 0; i < c->n_components; i++)
            if (!strcmp(c->components[i].id, id) && c->components[i].ops->kind == kind)
                return errf(L->err, L->errlen, "%s: defined twice", where);
        reset_entries(L);
        if (!is_null_scalar(v)) {
            if (v->type != YAML_MAPPING_NODE)
                return errf(L->err, L->errlen, "%s: expected a mapping of settings", where);
            if (flatten(L, v, "", where, 0)) return -1;
        }
        c->components = pc_xrealloc(c->components, (c->n_components + 1) * sizeof(*c->components));
        pc_config_component *cc = &c->components[c->n_components++];
        cc->id = pc_xstrdup(id);
        cc->ops = ops;
        cc->cfg = pc_xcalloc(1, ops->config_size ? ops->config_size : 1);
        if (pc_config_apply_options(ops->options, cc->cfg, L->entries, L->n_entries, where, L->err,
                                    L->errlen))
            return -1;
        if (ops->validate) {
            char verr[400] = "";
            if (ops->validate(cc->cfg, verr, sizeof(verr)))
                return errf(L->err, L->errlen, "%s.%s", where, verr);
        }
    }
    return 0;
}

static int load_list(loader *L, yaml_node_t *n, const char *where, pc_strlist *out)
{
    if (!n || is_null_scalar(n)) return 0;
    reset_entries(L);
    if (n->type != YAML_SEQUENCE_NODE)
        return errf(L->err, L->errlen, "%s: expected a list such as [a, b]", where);
    if (flatten(L, n, "", where, 0)) return -1;
    pc_config_entry *e = &L->entries[0];
    out->v = pc_xcalloc(e->n_items ? e->n_items : 1, sizeof(char *));
    for (size_t i = 0; i < e->n_items; i++) out->v[i] = pc_xstrdup(e->items[i]);
    out->n = e->n_items;
    return 0;
}

/* Every id of |ids| must be a configured component of |kind| that takes |signal|. */
static int check_refs(loader *L, pc_config *c, const pc_strlist *ids, pc_kind kind,
                      pc_signal signal, const char *where)
{
    for (size_t i = 0; i < ids->n; i++) {
        const pc_config_component *cc = pc_config_find(c, (int)kind, ids->v[i]);
        if (!cc)
            return errf(L->err, L->errlen, "%s: '%s' is not configured under %s", where, ids->v[i],
                        kind_section[kind]);
        unsigned takes = cc->ops->signals ? cc->ops->signals : PC_SIG_BIT(PC_SIGNAL_TRACES);
        if (!(takes & PC_SIG_BIT(signal)))
            return errf(L->err, L->errlen, "%s: '%s' does not handle %s", where, ids->v[i],
                        pc_signal_name(signal));
    }
    return 0;
}

/* The signal of pipeline id "traces", "metrics/x", ...; -1 when it names none. */
static int pipeline_signal(const char *id)
{
    for (int s = 0; s < PC_SIGNALS; s++) {
        const char *name = pc_signal_name((pc_signal)s);
        size_t n = strlen(name);
        if (!strncmp(id, name, n) && (id[n] == '\0' || id[n] == '/')) return s;
    }
    return -1;
}

/* service.memory_limit (a size, default 256 MiB) and
 * service.memory_limit_percentage (of the cgroup limit, 0 < p <= 100). */
static int load_memory_limit(loader *L, pc_config *c, yaml_node_t *svc)
{
    c->memory_limit = (int64_t)256 << 20;
    c->memory_limit_percentage = 0;
    yaml_node_t *n = map_get(L, svc, "memory_limit");
    if (n && !is_null_scalar(n)) {
        const char *v = n->type == YAML_SCALAR_NODE
                            ? substitute(L, (const char *)n->data.scalar.value,
                                         "service.memory_limit")
                            : NULL;
        if (n->type == YAML_SCALAR_NODE && !v) return -1;
        if (!v || pc_parse_size(v, &c->memory_limit) || c->memory_limit < (1 << 20))
            return errf(L->err, L->errlen,
                        "service.memory_limit: expected a size of at least 1MiB (\"256MiB\", "
                        "\"1GiB\"), got \"%s\"",
                        v ? v : "a non-scalar");
    }
    n = map_get(L, svc, "memory_limit_percentage");
    if (n && !is_null_scalar(n)) {
        const char *v = n->type == YAML_SCALAR_NODE
                            ? substitute(L, (const char *)n->data.scalar.value,
                                         "service.memory_limit_percentage")
                            : NULL;
        if (n->type == YAML_SCALAR_NODE && !v) return -1;
        char *end = NULL;
        double pct = v ? strtod(v, &end) : 0;
        if (!v || end == v || *end || !(pct > 0 && pct <= 100))
            return errf(L->err, L->errlen,
                        "service.memory_limit_percentage: expected a number above 0 and at most "
                        "100, got \"%s\"",
                        v ? v : "a non-scalar");
        c->memory_limit_percentage = pct;
    }
    return 0;
}

/* service.telemetry.metrics: {level: none|basic|normal|detailed, endpoint}.
 * Why "level: none" is the off switch: it is the OpenTelemetry Collector's.
 * The other levels all serve every metric. The endpoint's default honours
 * PRELA_METRICS_ENDPOINT, so a machine running many collectors (tests) can
 * move them all off 8888 without editing each file. */
static int load_metrics(loader *L, pc_config *c, yaml_node_t *m)
{
    static const char *const keys[] = {"level", "endpoint", NULL};
    if (only_keys(L, m, "service.telemetry.metrics", keys)) return -1;
    yaml_node_t *lvl = map_get(L, m, "level"), *ep = map_get(L, m, "endpoint");
    if (lvl && lvl->type == YAML_SCALAR_NODE) {
        const char *v = substitute(L, (const char *)lvl->data.scalar.value,
                                   "service.telemetry.metrics.level");
        if (!v) return -1;
        if (!strcmp(v, "none")) return 0;
        if (strcmp(v, "basic") && strcmp(v, "normal") && strcmp(v, "detailed"))
            return errf(L->err, L->errlen,
                        "service.telemetry.metrics.level: \"%s\" is not one of none, basic, "
                        "normal, detailed",
                        v);
    }
    const char *env = getenv("PRELA_METRICS_ENDPOINT");
    const char *v = env && *env ? env : "127.0.0.1:8888";
    if (ep && ep->type == YAML_SCALAR_NODE &&
        !(v = substitute(L, (const char *)ep->data.scalar.value,
                         "service.telemetry.metrics.endpoint")))
        return -1;
    char host[256];
    int port;
    if (pc_http_parse_endpoint(v, host, sizeof(host), &port))
        return errf(L->err, L->errlen,
                    "service.telemetry.metrics.endpoint: \"%s\" is not host:port (turn the "
                    "endpoint off with level: none)",
                    v);
    c->metrics_endpoint = pc_xstrdup(v);
    return 0;
}

static int load_service(loader *L, pc_config *c, yaml_node_t *root)
{
    yaml_node_t *svc = map_get(L, root, "service");
    static const char *const svc_keys[] = {"pipelines", "telemetry", "memory_limit",
                                           "memory_limit_percentage", NULL};
    if (only_keys(L, svc, "service", svc_keys)) return -1;
    if (load_memory_limit(L, c, svc)) return -1;
    yaml_node_t *tel = map_get(L, svc, "telemetry");
    static const char *const tel_keys[] = {"logs", "metrics", NULL};
    if (only_keys(L, tel, "service.telemetry", tel_keys)) return -1;
    if (load_metrics(L, c, map_get(L, tel, "metrics"))) return -1;
    yaml_node_t *logs = map_get(L, tel, "logs");
    static const char *const log_keys[] = {"level", NULL};
    if (only_keys(L, logs, "service.telemetry.logs", log_keys)) return -1;
    yaml_node_t *lvl = map_get(L, logs, "level");
    c->log_level = PC_LOG_INFO;
    if (lvl && lvl->type == YAML_SCALAR_NODE) {
        const char *v = substitute(L, (const char *)lvl->data.scalar.value,
                                   "service.telemetry.logs.level");
        if (!v) return -1;
        if ((c->log_level = pc_log_level_parse(v)) < 0)
            return errf(L->err, L->errlen,
                        "service.telemetry.logs.level: \"%s\" is not one of debug, info, warn, "
                        "error",
                        v);
    }
    yaml_node_t *pls = map_get(L, svc, "pipelines");
    if (!pls || is_null_scalar(pls))
        return errf(L->err, L->errlen, "service.pipelines: at least one pipeline is required");
    if (pls->type != YAML_MAPPING_NODE)
        return errf(L->err, L->errlen, "service.pipelines: expected a mapping of pipelines");
    for (yaml_node_pair_t *pr = pls->data.mapping.pairs.start; pr < pls->data.mapping.pairs.top;
         pr++) {
        const char *id = key_text(L, yaml_document_get_node(&L->doc, pr->key), "service.pipelines");
        yaml_node_t *v = yaml_document_get_node(&L->doc, pr->value);
        if (!id) return -1;
        char where[300];
        snprintf(where, sizeof(where), "service.pipelines.%s", id);
        int signal = pipeline_signal(id);
        if (signal < 0)
            return errf(L->err, L->errlen,
                        "%s: unknown signal; a pipeline id is traces, metrics or logs, optionally "
                        "followed by /name",
                        where);
        static const char *const pl_keys[] = {"receivers", "processors", "exporters", NULL};
        if (only_keys(L, v, where, pl_keys)) return -1;
        c->pipelines = pc_xrealloc(c->pipelines, (c->n_pipelines + 1) * sizeof(*c->pipelines));
        pc_config_pipeline *p = &c->pipelines[c->n_pipelines++];
        memset(p, 0, sizeof(*p));
        p->id = pc_xstrdup(id);
        p->signal = (pc_signal)signal;
        char w[340];
        snprintf(w, sizeof(w), "%s.receivers", where);
        if (load_list(L, map_get(L, v, "receivers"), w, &p->receivers) ||
            check_refs(L, c, &p->receivers, PC_RECEIVER, p->signal, w))
            return -1;
        if (!p->receivers.n) return errf(L->err, L->errlen, "%s: at least one receiver is required", w);
        snprintf(w, sizeof(w), "%s.processors", where);
        if (load_list(L, map_get(L, v, "processors"), w, &p->processors) ||
            check_refs(L, c, &p->processors, PC_PROCESSOR, p->signal, w))
            return -1;
        snprintf(w, sizeof(w), "%s.exporters", where);
        if (load_list(L, map_get(L, v, "exporters"), w, &p->exporters) ||
            check_refs(L, c, &p->exporters, PC_EXPORTER, p->signal, w))
            return -1;
        if (!p->exporters.n) return errf(L->err, L->errlen, "%s: at least one exporter is required", w);
    }
    return 0;
}

/* The top-level `auth:` section (auth.h parses it; keys_file is read later). */
static int load_auth(loader *L, pc_config *c, yaml_node_t *root)
{
    yaml_node_t *sec = map_get(L, root, "auth");
    if (!sec) return 0;
    reset_entries(L);
    if (!is_null_scalar(sec)) {
        if (sec->type != YAML_MAPPING_NODE)
            return errf(L->err, L->errlen, "auth: expected a mapping with keys or keys_file");
        L->map_items = 1;
        int rc = flatten(L, sec, "", "auth", 0);
        L->map_items = 0;
        if (rc) return -1;
    }
    return pc_auth_config_parse(L->entries, L->n_entries, "auth", 0, &c->auth, L->err, L->errlen);
}

const pc_config_component *pc_config_find(const pc_config *c, int kind, const char *id)
{
    for (size_t i = 0; i < c->n_components; i++)
        if (!strcmp(c->components[i].id, id) && (int)c->components[i].ops->kind == kind)
            return &c->components[i];
    return NULL;
}

pc_config *pc_config_load(const char *text, size_t len, const char *source, char *err,
                          size_t errlen)
{
    loader L = {.err = err, .errlen = errlen};
    yaml_parser_t parser;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &L.doc)) {
        errf(err, errlen, "%s:%zu:%zu: YAML error: %s", source, parser.problem_mark.line + 1,
             parser.problem_mark.column + 1, parser.problem ? parser.problem : "unknown");
        yaml_parser_delete(&parser);
        return NULL;
    }
    yaml_parser_delete(&parser);
    pc_config *c = pc_xcalloc(1, sizeof(*c));
    c->source = pc_xstrdup(source);
    yaml_node_t *root = yaml_document_get_root_node(&L.doc);
    static const char *const top_keys[] = {"receivers", "processors", "exporters", "service",
                                           "auth", NULL};
    int rc = -1;
    if (!root) errf(err, errlen, "%s: the configuration is empty", source);
    else if (root->type != YAML_MAPPING_NODE) errf(err, errlen, "%s: expected a mapping at the top", source);
    else if (!only_keys(&L, root, "", top_keys) && !load_components(&L, c, root, PC_RECEIVER) &&
             !load_components(&L, c, root, PC_PROCESSOR) &&
             !load_components(&L, c, root, PC_EXPORTER) && !load_service(&L, c, root) &&
             !load_auth(&L, c, root))
        rc = 0;
    yaml_document_delete(&L.doc);
    for (size_t i = 0; i < L.n_pool; i++) free(L.pool[i]);
    free(L.pool);
    free(L.entries);
    if (rc) {
        pc_config_free(c);
        return NULL;
    }
    return c;
}

/* Reads the whole file |path| into |out|. 0, or -1 with a message in |err|. */
static int read_file(const char *path, pc_buf *out, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) return errf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    char tmp[8192];
    size_t n;
    while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0) pc_buf_append(out, tmp, n);
    fclose(f);
    pc_buf_putc(out, '\0');
    out->len--;
    return 0;
}

pc_config *pc_config_load_file(const char *path, char *err, size_t errlen)
{
    pc_buf b = PC_BUF_INIT;
    if (read_file(path, &b, err, errlen)) return NULL;
    pc_config *c = pc_config_load(b.data, b.len, path, err, errlen);
    pc_buf_free(&b);
    return c;
}

int pc_config_read_entries(const char *path, pc_config_entries_fn fn, void *ud, char *err,
                           size_t errlen)
{
    pc_buf b = PC_BUF_INIT;
    if (read_file(path, &b, err, errlen)) return -1;
    loader L = {.err = err, .errlen = errlen, .map_items = 1};
    yaml_parser_t parser;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_string(&parser, (const unsigned char *)b.data, b.len);
    int loaded = yaml_parser_load(&parser, &L.doc);
    if (!loaded)
        errf(err, errlen, "%s:%zu:%zu: YAML error: %s", path, parser.problem_mark.line + 1,
             parser.problem_mark.column + 1, parser.problem ? parser.problem : "unknown");
    yaml_parser_delete(&parser);
    pc_buf_free(&b);
    if (!loaded) return -1;
    int rc = -1;
    yaml_node_t *root = yaml_document_get_root_node(&L.doc);
    if (root && root->type != YAML_MAPPING_NODE) errf(err, errlen, "%s: expected a mapping", path);
    else if (!root || !flatten(&L, root, "", path, 0)) rc = fn(L.entries, L.n_entries, ud);
    yaml_document_delete(&L.doc);
    for (size_t i = 0; i < L.n_pool; i++) free(L.pool[i]);
    free(L.pool);
    free(L.entries);
    return rc;
}

pc_config *pc_config_load_default(char *err, size_t errlen)
{
    return pc_config_load(pc_default_config_yaml, strlen(pc_default_config_yaml),
                          "built-in standalone defaults (configs/standalone.yaml)", err, errlen);
}

static void free_list(pc_strlist *l)
{
    for (size_t i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
}

void pc_config_free(pc_config *c)
{
    if (!c) return;
    for (size_t i = 0; i < c->n_components; i++) {
        pc_config_free_options(c->components[i].ops->options, c->components[i].cfg);
        free(c->components[i].cfg);
        free(c->components[i].id);
    }
    free(c->components);
    for (size_t i = 0; i < c->n_pipelines; i++) {
        free(c->pipelines[i].id);
        free_list(&c->pipelines[i].receivers);
        free_list(&c->pipelines[i].processors);
        free_list(&c->pipelines[i].exporters);
    }
    free(c->pipelines);
    pc_auth_config_free(&c->auth);
    free(c->metrics_endpoint);
    free(c->source);
    free(c);
}
