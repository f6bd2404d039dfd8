/*
 * options.h - unit tests build a component's settings through its real option
 * table (config.h), exactly as the YAML loader does, instead of filling the
 * settings struct by hand.
 */
#ifndef PC_TEST_OPTIONS_H
#define PC_TEST_OPTIONS_H

#include "component.h"
#include "config.h"

#include <stdlib.h>

/*
 * Applies (key0, value0) when key0 is not NULL, then the |n| pairs
 * kv[2i] = kv[2i + 1], to a fresh settings struct of |ops|, as the loader does
 * for section |section| ("exporters.kafka"). Sets |*rc| to the result of
 * pc_config_apply_options (0, or -1 with a message in |err|). Returns the
 * struct; free it with pc_test_options_free.
 */
static inline void *pc_test_options(const pc_component_ops *ops, const char *section,
                                    const char *key0, const char *value0, const char *const *kv,
                                    size_t n, char *err, size_t errlen, int *rc)
{
    void *cfg = calloc(1, ops->config_size);
    pc_config_entry *e = calloc(n + 1, sizeof(*e));
    size_t m = 0;
    if (key0) e[m++] = (pc_config_entry){.key = key0, .value = value0};
    for (size_t i = 0; i < n; i++)
        e[m++] = (pc_config_entry){.key = kv[2 * i], .value = kv[2 * i + 1]};
    *rc = pc_config_apply_options(ops->options, cfg, e, m, section, err, errlen);
    free(e);
    return cfg;
}

static inline void pc_test_options_free(const pc_component_ops *ops, void *cfg)
{
    pc_config_free_options(ops->options, cfg);
    free(cfg);
}

#endif
