/*
 * registry.h - the list of every component type the binary knows.
 */
#ifndef PC_REGISTRY_H
#define PC_REGISTRY_H

#include "component.h"

/* Returns the ops of component |type| of |kind|, or NULL. */
const pc_component_ops *pc_registry_find(pc_kind kind, const char *type);
/* Calls |fn| for every registered component (for --help). */
void pc_registry_each(void (*fn)(const pc_component_ops *ops, void *ud), void *ud);

#endif
