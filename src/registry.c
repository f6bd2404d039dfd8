/*
 * registry.c - every component type the binary knows, in one hand-written table.
 *
 * How to add a component: write src/<kind>s/<name>.c exporting one
 * `const pc_component_ops pc_<name>_<kind>_ops` (declared in its .h), include
 * the header here and add the table to |all| below. Nothing else registers
 * components, so `grep pc_registry` finds them all.
 */
#include "component.h"

#include "exporters/debug.h"
#include "exporters/clickhouse.h"
#include "exporters/kafka.h"
#include "exporters/local.h"
#include "processors/normalize.h"
#include "receivers/kafka.h"
#include "receivers/otlp.h"
#include "receivers/prela.h"
#include "receivers/query.h"

#include <string.h>

static const pc_component_ops *const all[] = {
    /* receivers */
    &pc_prela_receiver_ops,
    &pc_otlp_receiver_ops,
    &pc_query_receiver_ops,
    &pc_kafka_receiver_ops,
    /* processors */
    &pc_normalize_processor_ops,
    /* exporters */
    &pc_local_exporter_ops,
    &pc_debug_exporter_ops,
    &pc_kafka_exporter_ops,
    &pc_clickhouse_exporter_ops,
};

const pc_component_ops *pc_registry_find(pc_kind kind, const char *type)
{
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        if (all[i]->kind == kind && !strcmp(all[i]->type, type)) return all[i];
    return NULL;
}

void pc_registry_each(void (*fn)(const pc_component_ops *ops, void *ud), void *ud)
{
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) fn(all[i], ud);
}
