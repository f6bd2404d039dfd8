/*
 * query.h - the `query` receiver: the HTTP query API (:8002) over a trace store.
 *
 * It is not part of any pipeline (create gets next == NULL). start() looks up
 * the exporter named by its `store` setting (pc_host_store) and serves
 * /api/v1/traces, /api/v1/traces/{id}, /api/v1/traces/{id}/spans,
 * /api/v1/search and /api/v1/health from that exporter's store (store.h), so
 * the API behaves the same over every store.
 */
#ifndef PC_QUERY_H
#define PC_QUERY_H

#include "component.h"
#include "store.h"

extern const pc_component_ops pc_query_receiver_ops;

/*
 * Test hooks. pc_query_serve starts a created query receiver over |store|
 * directly, without a pipeline host (start() does the same after looking the
 * store up). Returns 0 / -1 after logging. pc_query_port returns the port bound
 * (useful with endpoint "127.0.0.1:0"), or -1 when not serving.
 */
int pc_query_serve(void *ctx, const pc_store *store);
int pc_query_port(void *ctx);

#endif
