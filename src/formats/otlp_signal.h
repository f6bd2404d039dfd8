/*
 * otlp_signal.h - OTLP metrics and logs requests: checked, counted and passed
 * on as protobuf, never decoded into a model (otlp_signal.c).
 *
 * Who calls it: the otlp receiver, for /v1/metrics, /v1/logs and their gRPC
 * services; the exporters forward b->raw unchanged.
 */
#ifndef PC_OTLP_SIGNAL_H
#define PC_OTLP_SIGNAL_H

#include "formats/otlp.h"

/*
 * Checks an ExportMetricsServiceRequest or ExportLogsServiceRequest (|b->signal|
 * is PC_SIGNAL_METRICS or PC_SIGNAL_LOGS) of |len| bytes at |buf|, protobuf or
 * (when |json|) OTLP/JSON, and sets |b->raw| to its protobuf encoding and
 * |b->items| to the number of data points (metrics) or log records (logs) in it.
 * For protobuf, raw is |buf| itself, so |buf| must live as long as |b| (it does
 * when it is the request body in b's arena); for JSON, raw is a re-encoding in
 * b's arena, with the same liberal rules as pc_otlp_json_decode (names in either
 * case, hex or base64 ids, 64-bit integers as strings or numbers, enum names).
 * Returns 0, or -1 with |res->error| naming the field ("resource_metrics[0].
 * scope_metrics[0].metrics[2].gauge: ..."); res->accepted is set to items.
 */
int pc_otlp_signal_decode(pc_batch *b, const void *buf, size_t len, bool json, pc_otlp_result *res);

#endif
