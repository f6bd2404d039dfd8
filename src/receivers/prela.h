/*
 * prela.h - the Prela receiver: the Prela SDK's JSON ingest API on :8001
 * (POST /v1/traces, /v1/spans, /v1/batch; GET /health, /).
 */
#ifndef PC_PRELA_H
#define PC_PRELA_H

#include "component.h"

extern const pc_component_ops pc_prela_receiver_ops;

#endif
