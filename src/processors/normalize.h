/*
 * normalize.h - the normalize processor: maps every span dialect onto the one
 * span model (span types, status, service name, LLM provider/model/tokens).
 */
#ifndef PC_NORMALIZE_H
#define PC_NORMALIZE_H

#include "component.h"

extern const pc_component_ops pc_normalize_processor_ops;

/* Fills the derived fields of |s| (exposed for tests and other processors). */
void pc_normalize_span(pc_span *s, pc_str default_service);

#endif
