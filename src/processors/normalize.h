/*
 * normalize.h - the normalize processor: maps every span dialect onto the one
 * span model (span types, status, service name, LLM provider/model/tokens,
 * session and user, cost, prompt and completion messages). Option `prices:`
 * names a price file (prices.h) added to the shipped table and re-read on SIGHUP.
 */
#ifndef PC_NORMALIZE_H
#define PC_NORMALIZE_H

#include "component.h"
#include "prices.h"

extern const pc_component_ops pc_normalize_processor_ops;

/* Fills the derived fields of |s| (exposed for tests and other processors),
 * pricing it with the shipped table; all but input_messages / output_messages,
 * which need the batch's arena (pc_normalize_span_priced) and are left as they are. */
void pc_normalize_span(pc_span *s, pc_str default_service);
/* The same, pricing it with |prices| (a reference the caller holds), and
 * with a non-NULL |arena| (the batch's) also input_messages / output_messages
 * (messages.h), written there. The processor passes the batch's arena. */
void pc_normalize_span_priced(pc_span *s, pc_str default_service, pc_price_table *prices,
                              pc_arena *arena);

#endif
