/*
 * fuzz_config.c - fuzz target of the YAML configuration loader
 * (pc_config_load, config.h) on the input bytes as a config file.
 *
 * Checks: a refused file has a message; an accepted one is freed cleanly
 * (ASan sees any overflow or leak on the way).
 */
#include "config.h"
#include "roundtrip.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[1024] = "";
    pc_config *c = pc_config_load((const char *)data, size, "fuzz.yaml", err, sizeof(err));
    if (!c) FUZZ_CHECK(err[0], "a refused configuration without a message");
    pc_config_free(c);
    return 0;
}
