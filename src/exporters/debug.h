/*
 * debug.h - the `debug` exporter: logs what reaches it, for every signal, and
 * keeps nothing. For trying a config out, watching a pipeline, and as the
 * destination of metrics and logs pipelines when they need to go nowhere but
 * should still be seen.
 *
 * Settings: verbosity "basic" (one line per batch: signal, item count, bytes)
 * or "detailed" (also one line per span: ids, name, type, status, service).
 * Totals per signal are logged at shutdown.
 */
#ifndef PC_DEBUG_H
#define PC_DEBUG_H

#include "component.h"

extern const pc_component_ops pc_debug_exporter_ops;

#endif
