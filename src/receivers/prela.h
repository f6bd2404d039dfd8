/*
 * prela.h - the Prela receiver: the Prela SDK's JSON ingest API on :8001
 * (POST /v1/traces, /v1/spans, /v1/batch; GET /health, /).
 */
#ifndef PC_PRELA_H
#define PC_PRELA_H

#include "component.h"

extern const pc_component_ops pc_prela_receiver_ops;

/*
 * Decodes one Prela span object |obj| into a new span of |b|. |where| names the
 * object in messages ("spans[3]"). |trace_id| (non-empty: the /v1/traces
 * envelope's) overrides the span's own; |service| is the envelope's
 * service_name hint. Returns 0, or -1 with a message naming the field in |err|.
 */
int pc_prela_decode_span(pc_batch *b, const pc_value *obj, const char *where, pc_str trace_id,
                         pc_str service, pc_str project, char *err, size_t errlen);

#endif
