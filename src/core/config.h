/*
 * config.h - configuration: YAML in the OpenTelemetry Collector's shape, and the
 * option tables components describe their settings with.
 *
 *   receivers:  { <type>[/<name>]: {options} ... }
 *   processors: { ... }
 *   exporters:  { ... }
 *   service:
 *     telemetry: { logs: { level: info },
 *                  metrics: { level: normal, endpoint: 127.0.0.1:8888 } }  # level none = off
 *     memory_limit: 256MiB              # the process memory budget (budget.h)
 *     memory_limit_percentage: 0        # % of the cgroup limit, when one is set
 *     pipelines: { traces[/<name>]: { receivers: [..], processors: [..], exporters: [..] } }
 *
 * Loading: the YAML is read into a tree, every scalar gets ${env:NAME} and
 * ${env:NAME:-default} substituted, and each component section is flattened into
 * dotted keys ("protocols.http.endpoint") that must each match an entry of the
 * component's option table. Unknown keys, bad values and unset variables fail
 * with a message naming the key. Defaults live only in the option tables.
 *
 * Ownership: pc_config owns every component's config struct, including the
 * strings and lists in it; components borrow them for their whole life.
 */
#ifndef PC_CONFIG_H
#define PC_CONFIG_H

#include "span.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum pc_opt_type {
    PC_OPT_STRING,   /* char *, heap */
    PC_OPT_INT,      /* int64_t */
    PC_OPT_BOOL,     /* bool */
    PC_OPT_DURATION, /* int64_t milliseconds; "250ms", "5s", "10m", "2h", "90d" */
    PC_OPT_SIZE,     /* int64_t bytes; "4096", "512KiB", "20MiB", "1GiB", "10MB" */
    PC_OPT_STRLIST,  /* pc_strlist */
    PC_OPT_SECTION,  /* bool: true when the key is present (a section that may be empty) */
} pc_opt_type;

typedef struct pc_strlist {
    char **v;
    size_t n;
} pc_strlist;

/*
 * One setting of a component: dotted |key|, |type|, default as text (NULL = none:
 * empty string / 0 / false / empty list), byte |offset| in the config struct,
 * inclusive range |min|..|max| for numeric types (both 0 = unchecked), and a
 * one-line |doc|. Tables end with an entry whose key is NULL.
 */
typedef struct pc_option {
    const char *key;
    pc_opt_type type;
    const char *def;
    size_t offset;
    int64_t min;
    int64_t max;
    const char *doc;
} pc_option;

typedef struct pc_component_ops pc_component_ops;

/* One configured component instance, "type" or "type/name". */
typedef struct pc_config_component {
    char *id;
    const pc_component_ops *ops;
    void *cfg; /* struct of ops->config_size bytes filled from ops->options */
} pc_config_component;

typedef struct pc_config_pipeline {
    char *id;         /* "traces", "metrics/kafka", ... */
    pc_signal signal; /* from the id */
    pc_strlist receivers;
    pc_strlist processors;
    pc_strlist exporters;
} pc_config_pipeline;

/* The parsed top-level `auth:` section (auth.h). */
typedef struct pc_auth_key pc_auth_key;
typedef struct pc_auth_config {
    int present; /* an auth: section was given */
    pc_auth_key *keys;
    size_t n_keys;
    char *keys_file; /* NULL = none */
} pc_auth_config;

typedef struct pc_config {
    pc_config_component *components;
    size_t n_components;
    pc_config_pipeline *pipelines;
    size_t n_pipelines;
    int log_level;
    int64_t memory_limit;           /* service.memory_limit, bytes (default 256 MiB) */
    double memory_limit_percentage; /* service.memory_limit_percentage; 0 = unused */
    pc_auth_config auth;
    char *metrics_endpoint; /* service.telemetry.metrics.endpoint; NULL = level none (off) */
    char *source; /* file name or "built-in standalone defaults" */
} pc_config;

/*
 * Loads |len| bytes of YAML text named |source| (for messages). Returns a config
 * or NULL with a message naming the key written to |err|.
 */
pc_config *pc_config_load(const char *text, size_t len, const char *source, char *err,
                          size_t errlen);
/* Reads and loads the file |path|. */
pc_config *pc_config_load_file(const char *path, char *err, size_t errlen);
/* Loads the built-in standalone defaults (configs/standalone.yaml, compiled in). */
pc_config *pc_config_load_default(char *err, size_t errlen);
void pc_config_free(pc_config *c);

/* Returns the component |id| of kind |kind| (a pc_kind), or NULL. */
const pc_config_component *pc_config_find(const pc_config *c, int kind, const char *id);

/* One flattened setting: "protocols.http.endpoint" = "0.0.0.0:4318". */
typedef struct pc_config_entry {
    const char *key;
    const char *value;        /* scalar text after ${env:...}; NULL for null, lists, maps */
    const char *const *items; /* list items when is_list */
    size_t n_items;
    int is_list;
    int is_map; /* a nested section; its children follow as their own entries */
} pc_config_entry;

/*
 * Fills the struct |cfg| from |opts|: defaults first, then the |n| entries. A
 * key no option names fails; messages name the key as |prefix|.key. Exposed
 * for tests. Returns 0, or -1 with a message in |err|.
 */
int pc_config_apply_options(const pc_option *opts, void *cfg, const pc_config_entry *e, size_t n,
                            const char *prefix, char *err, size_t errlen);
/*
 * Reads the YAML file |path| (a mapping), substitutes ${env:...}, flattens it
 * (lists of mappings become "key[i].sub" entries) and calls |fn| with the
 * entries, which live only during the call. Returns |fn|'s result, or -1 with
 * a message in |err| when the file cannot be read or parsed.
 */
typedef int (*pc_config_entries_fn)(const pc_config_entry *e, size_t n, void *ud);
int pc_config_read_entries(const char *path, pc_config_entries_fn fn, void *ud, char *err,
                           size_t errlen);

/* Frees the strings and lists |opts| put into |cfg| (not |cfg| itself). */
void pc_config_free_options(const pc_option *opts, void *cfg);

/* Writes a printf-style message (one that names the key) to |err|; returns -1. */
int pc_config_errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Parsers for the text forms of durations (to ms) and sizes (to bytes). 0 / -1. */
int pc_parse_duration_ms(const char *s, int64_t *out);
int pc_parse_size(const char *s, int64_t *out);

/* The compiled-in text of configs/standalone.yaml. */
extern const char pc_default_config_yaml[];

#endif
