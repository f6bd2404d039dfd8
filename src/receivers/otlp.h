/*
 * otlp.h - the OTLP receiver: OpenTelemetry SDKs and collectors export traces
 * to it over OTLP/HTTP (POST /v1/traces on :4318, protobuf or JSON).
 *
 * Settings (receivers: otlp: ...), in the OpenTelemetry Collector's shape:
 *   protocols.http                         enable OTLP/HTTP (required for now)
 *   protocols.http.endpoint                "0.0.0.0:4318"
 *   protocols.http.max_request_body_size   "20MiB" (after decompression)
 *   protocols.http.cors_origins            comma list or "*"; none by default
 *   project_id                             "default": project of spans without
 *                                          X-Prela-Project-Id or prela.project_id
 *   retry_after                            "1s": Retry-After sent with 503
 * protocols.grpc is reserved for the gRPC transport (not built yet).
 *
 * Decoding lives in otlp_decode.h, so it can be tested without HTTP.
 */
#ifndef PC_OTLP_H
#define PC_OTLP_H

#include "component.h"

extern const pc_component_ops pc_otlp_receiver_ops;

#endif
