/*
 * normalize_bench.c - what the normalize processor costs per span on the
 * reference workload (workload.h: OTLP requests of 100 spans, 40 of them LLM
 * chat spans over four models and 10 embedding spans), on one thread: the
 * request is decoded once, then the processor's consume runs over the same
 * batch again and again (normalize rewrites only derived fields, so every pass
 * does the full work). Prints CPU ns per span. Built from the same source
 * before and after a change to normalize, it gives the change's cost.
 * With the price table (prices.h) it also prints the cost of a lookup that
 * misses the cache (a model name never seen before), and what the message
 * normalizer (messages.h) costs alone: on the workload's spans (which carry
 * no message keys: the one-pass scan) and on a chat span carrying semconv
 * 1.37 JSON messages (parsed and rewritten). A program that prints numbers,
 * not a test.
 *
 *   normalize_bench [SECONDS]   (default 3)
 */
#include "workload.h"

#include "component.h"
#include "config.h"
#include "formats/otlp_proto.h"
#include "processors/messages.h"
#include "processors/normalize.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The next consumer: keeps the batch (the bench holds its own reference). */
static pc_result keep(void *ctx, pc_batch *b)
{
    (void)ctx;
    pc_batch_unref(b);
    return PC_OK;
}

static const char yaml[] = "receivers:\n  prela:\nprocessors:\n  normalize:\nexporters:\n  debug:\n"
                           "service:\n  pipelines:\n    traces:\n      receivers: [prela]\n"
                           "      processors: [normalize]\n      exporters: [debug]\n";

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 3.0;
    lg_workload w;
    uint8_t *body = lg_reference_request(&w, 7);
    if (!body) return 1;
    pc_batch *b = pc_batch_create(NULL);
    pc_otlp_result res;
    if (pc_otlp_proto_decode(b, body, w.len, NULL, "default", &pc_span_limits_default, &res)) {
        fprintf(stderr, "decode failed: %s\n", res.error);
        return 1;
    }
    char err[256];
    pc_config *cfg = pc_config_load(yaml, strlen(yaml), "bench", err, sizeof(err));
    if (!cfg) {
        fprintf(stderr, "config: %s\n", err);
        return 1;
    }
    pc_consumer next = {keep, NULL, PC_SIG_BIT(PC_SIGNAL_TRACES)};
    const pc_config_component *cc = pc_config_find(cfg, PC_PROCESSOR, "normalize");
    void *ctx = pc_normalize_processor_ops.create("normalize", cc->cfg, &next);
    if (!ctx) return 1;
    size_t llm = 0;
    pc_normalize_processor_ops.consume(ctx, pc_batch_ref(b)); /* warm: caches, first lookups */
    for (size_t i = 0; i < b->n; i++)
        llm += b->spans[i].span_type == PC_TYPE_LLM;
    size_t spans = 0;
    double t0 = lg_cpu_seconds(), t = t0;
    while (t - t0 < seconds) {
        for (int k = 0; k < 200; k++) {
            pc_normalize_processor_ops.consume(ctx, pc_batch_ref(b));
            spans += b->n;
        }
        t = lg_cpu_seconds();
    }
    printf("normalize: %zu spans per batch (%zu llm), %.1f ns CPU per span, %.2f M spans per "
           "CPU-second\n",
           b->n, llm, (t - t0) * 1e9 / (double)spans, (double)spans / (t - t0) / 1e6);
#ifdef PC_PRICES_MAX_MODEL
    /* a cache miss: a model name the table has not seen (every entry whose
     * literal prefix fits runs its regex) */
    pc_price_table *pt = pc_price_table_parse(NULL, 0, NULL, err, sizeof(err));
    if (pt) {
        char name[64];
        int n = 0;
        pc_price p;
        t0 = lg_cpu_seconds();
        for (; n < 20000; n++) {
            int len = snprintf(name, sizeof(name), "gpt-4o-mini-%08d", n);
            pc_price_table_lookup(pt, PC_STR_LIT("openai"), (pc_str){name, (size_t)len}, 0, &p);
        }
        double miss_prefix = (lg_cpu_seconds() - t0) * 1e9 / n;
        t0 = lg_cpu_seconds();
        for (n = 0; n < 20000; n++) {
            int len = snprintf(name, sizeof(name), "vendor/%08d-model", n);
            pc_price_table_lookup(pt, PC_STR_LIT("acme"), (pc_str){name, (size_t)len}, 0, &p);
        }
        double miss_other = (lg_cpu_seconds() - t0) * 1e9 / n;
        printf("price lookup, cache miss: %.0f ns (name sharing a prefix with several "
               "entries), %.0f ns (unrelated name), %zu entries\n",
               miss_prefix, miss_other, pc_price_table_size(pt));
        pc_price_table_unref(pt);
    }
#endif
    /* the message normalizer alone: the scan on spans without message keys */
    spans = 0;
    t0 = t = lg_cpu_seconds();
    while (t - t0 < seconds / 3) {
        for (int k = 0; k < 200; k++) {
            for (size_t i = 0; i < b->n; i++) pc_messages_extract(&b->spans[i], b->arena);
            spans += b->n;
        }
        t = lg_cpu_seconds();
    }
    double scan_ns = (t - t0) * 1e9 / (double)spans;
    /* a chat span with a system prompt, a 600-byte question and a 250-byte
     * answer as JSON-string attributes (what openai-v2 sends); each pass
     * writes its answer into an arena replaced every 1,000 passes */
    char prompt[600], answer[250];
    for (size_t i = 0; i < sizeof(prompt); i++) prompt[i] = "customer order delayed, "[i % 24];
    for (size_t i = 0; i < sizeof(answer); i++) answer[i] = "sorry to hear that. "[i % 20];
    pc_buf in = PC_BUF_INIT, out = PC_BUF_INIT;
    pc_buf_printf(&in, "[{\"role\":\"system\",\"parts\":[{\"type\":\"text\",\"content\":"
                       "\"You are a support agent.\"}]},{\"role\":\"user\",\"parts\":[{\"type\":"
                       "\"text\",\"content\":\"%.*s\"}]}]",
                  (int)sizeof(prompt), prompt);
    pc_buf_printf(&out, "[{\"role\":\"assistant\",\"parts\":[{\"type\":\"text\",\"content\":"
                        "\"%.*s\"}],\"finish_reason\":\"stop\"}]",
                  (int)sizeof(answer), answer);
    pc_kv kv[] = {
        {PC_STR_LIT("gen_ai.operation.name"), {.type = PC_V_STR, .s = PC_STR_LIT("chat")}},
        {PC_STR_LIT("gen_ai.input.messages"), {.type = PC_V_STR, .s = {in.data, in.len}}},
        {PC_STR_LIT("gen_ai.output.messages"), {.type = PC_V_STR, .s = {out.data, out.len}}},
    };
    pc_span chat;
    memset(&chat, 0, sizeof(chat));
    chat.attrs = (pc_attrs){kv, 3};
    size_t n_chat = 0;
    t0 = t = lg_cpu_seconds();
    while (t - t0 < seconds / 3) {
        pc_arena *ma = pc_arena_create(1 << 20);
        for (int k = 0; k < 1000; k++) pc_messages_extract(&chat, ma);
        pc_arena_destroy(ma);
        n_chat += 1000;
        t = lg_cpu_seconds();
    }
    printf("messages: %.1f ns CPU per span without message keys, %.0f ns per chat span "
           "carrying %zu bytes of JSON messages\n",
           scan_ns, (t - t0) * 1e9 / (double)n_chat, in.len + out.len);
    pc_buf_free(&in);
    pc_buf_free(&out);
    pc_normalize_processor_ops.destroy(ctx);
    pc_config_free(cfg);
    pc_batch_unref(b);
    free(body);
    lg_workload_free(&w);
    return 0;
}
