/*
 * clickhouse_tsv.c - the reader of the `clickhouse` store's TabSeparated
 * answers (see clickhouse_tsv.h): lines split into columns and unescaped in
 * place, and the columns of a trace summary or a span read into the store's
 * rows. Pure functions, no I/O.
 */
#include "clickhouse_tsv.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Unescapes one TabSeparated field in place: \t \n \\ \' \0 ... Returns its end. */
static char *unescape(char *s)
{
    char *w = s;
    for (char *r = s; *r; r++) {
        if (*r != '\\' || !r[1]) {
            *w++ = *r;
            continue;
        }
        r++;
        switch (*r) {
        case 'b': *w++ = '\b'; break;
        case 'f': *w++ = '\f'; break;
        case 'n': *w++ = '\n'; break;
        case 'r': *w++ = '\r'; break;
        case 't': *w++ = '\t'; break;
        case 'a': *w++ = '\a'; break;
        case 'v': *w++ = '\v'; break;
        case '0': *w++ = '\0'; break;
        default: *w++ = *r; break;
        }
    }
    *w = '\0';
    return w;
}

int pc_ch_tsv_row(char **cur, char *end, char **cols, int max)
{
    char *p = *cur;
    if (p >= end) return 0;
    char *nl = memchr(p, '\n', (size_t)(end - p));
    char *line_end = nl ? nl : end;
    *cur = nl ? nl + 1 : end;
    *line_end = '\0';
    int n = 0;
    while (n < max) {
        char *tab = strchr(p, '\t');
        if (tab) *tab = '\0';
        cols[n++] = p;
        if (!tab) break;
        p = tab + 1;
    }
    for (int i = 0; i < n; i++)
        unescape(cols[i]);
    return n;
}

int pc_ch_tsv_rows(const pc_buf *text)
{
    int n = 0;
    for (size_t i = 0; i < text->len; i++)
        n += text->data[i] == '\n';
    return n;
}

static int64_t num(const char *s)
{
    return strtoll(s, NULL, 10);
}

double pc_ch_cost(const char *s)
{
    /* NULL arrives as \N, which the reader unescapes to "N"; nan as "nan" */
    if (!*s || *s == 'N' || *s == 'n' || (*s == '-' && s[1] == 'n')) return NAN;
    return strtod(s, NULL);
}

void pc_ch_read_trace(char **c, pc_trace_row *r)
{
    r->trace_id = c[0];
    r->project_id = c[1];
    r->service_name = c[2];
    r->root_span_id = c[3];
    r->root_span_name = c[4];
    r->status = c[5];
    r->source = c[6];
    r->started_ns = num(c[7]);
    r->completed_ns = num(c[8]);
    r->created_ns = num(c[9]);
    r->span_count = num(c[10]);
    r->input_tokens = num(c[11]);
    r->output_tokens = num(c[12]);
    r->session_id = c[13];
    r->user_id = c[14];
    r->cost_usd = pc_ch_cost(c[15]);
}

void pc_ch_read_span(char **c, pc_span_row *r)
{
    r->events_cut = false;
    r->trace_id = c[0];
    r->span_id = c[1];
    r->parent_span_id = c[2];
    r->project_id = c[3];
    r->name = c[4];
    r->kind = (int)num(c[5]);
    r->span_type = c[6];
    r->service_name = c[7];
    r->status = c[8];
    r->status_message = c[9];
    r->source = c[10];
    r->trace_state = c[11];
    r->start_ns = num(c[12]);
    r->end_ns = num(c[13]);
    r->created_ns = num(c[14]);
    r->llm_provider = c[15];
    r->llm_model = c[16];
    r->input_tokens = num(c[17]);
    r->output_tokens = num(c[18]);
    r->attributes = c[19];
    r->events = c[20];
    r->links = c[21];
    r->resource = c[22];
    r->scope = c[23];
    r->llm_request_model = c[24];
    r->cache_read_tokens = num(c[25]);
    r->cache_write_tokens = num(c[26]);
    r->reasoning_tokens = num(c[27]);
    r->cost_usd = pc_ch_cost(c[28]);
    r->cost_input_usd = pc_ch_cost(c[29]);
    r->cost_output_usd = pc_ch_cost(c[30]);
    r->cost_source = c[31];
    r->session_id = c[32];
    r->user_id = c[33];
    r->input_messages = c[34];
    r->output_messages = c[35];
}
