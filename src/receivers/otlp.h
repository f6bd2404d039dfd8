/*
 * otlp.h - the OTLP receiver: OpenTelemetry SDKs and collectors export traces,
 * metrics and logs to it over OTLP/gRPC (:4317) and OTLP/HTTP (:4318,
 * POST /v1/traces, /v1/metrics, /v1/logs, protobuf or JSON).
 *
 * Settings (receivers: otlp: ...), in the OpenTelemetry Collector's shape; at
 * least one protocol must be enabled:
 *   protocols.grpc                          enable OTLP/gRPC
 *   protocols.grpc.endpoint                 "0.0.0.0:4317" (HTTP/2 cleartext)
 *   protocols.grpc.max_recv_msg_size        "4MiB" (compressed and inflated)
 *   protocols.grpc.max_concurrent_streams   100 per connection
 *   protocols.http                          enable OTLP/HTTP
 *   protocols.http.endpoint                 "0.0.0.0:4318"
 *   protocols.http.max_request_body_size    "20MiB" (after decompression)
 *   protocols.http.cors_origins             comma list or "*"; none by default
 *   project_id                              "default": project of spans without
 *                                           X-Prela-Project-Id (header or gRPC
 *                                           metadata) or prela.project_id
 *   retry_after                             "1s": Retry-After / RetryInfo delay
 *
 * Traces are decoded into the span model; metrics and logs go on as protobuf to
 * the receiver's metrics / logs pipelines, or are counted and dropped when it
 * is in none. Decoding lives in src/formats/ (otlp_proto.h, otlp_json.h, otlp_signal.h), so it can be tested without a
 * transport.
 */
#ifndef PC_OTLP_H
#define PC_OTLP_H

#include "component.h"

extern const pc_component_ops pc_otlp_receiver_ops;

#endif
