/*
 * messages.h - prompts and completions of every LLM dialect, normalized into
 * one message shape (span.h, pc_span.input_messages / output_messages).
 *
 * Position: called by the normalize processor (normalize.c) once per span,
 * after the span type is known. It reads the span's attributes and events
 * (never changes them) and writes two JSON arrays into the batch's arena.
 *
 * The shape is the GenAI semantic conventions' (1.37+), stated in span.h:
 *   [{"role": "...", "name"?: "...", "parts": [part, ...], "finish_reason"?: "..."}]
 * part: {"type":"text","content":"..."}, {"type":"tool_call","id"?,"name"?,
 * "arguments"?: any}, {"type":"tool_call_response","id"?,"response": any},
 * {"type":"reasoning","content":"..."}, {"type":"uri","modality":"image","uri":"..."};
 * a part of another type that a source sent in this shape already (blob, file,
 * server_tool_call, ...) is copied as sent. Roles are kept as sent, except
 * LangChain's "human" -> "user" and "ai" -> "assistant"; a message without a
 * role gets "user" on the input side and "assistant" on the output side.
 * finish_reason is written on output messages only.
 *
 * Sources, and the precedence rule: each side (input, output) is taken from
 * the FIRST source in this list that yields at least one message, newest
 * convention first; the two sides are chosen independently.
 *   1. semconv 1.37+: span attributes gen_ai.system_instructions (input, first,
 *      role "system") + gen_ai.input.messages / gen_ai.output.messages, as JSON
 *      strings or structured (array/map) values; when the span has neither key
 *      of a side, the same keys on its gen_ai.client.inference.operation.details
 *      event.
 *   2. semconv 1.28-1.36 events: gen_ai.system.message, gen_ai.user.message,
 *      gen_ai.assistant.message, gen_ai.tool.message (input, in event order)
 *      and gen_ai.choice (output, in event order: its "message" or, without
 *      one, its own content / tool_calls, and "finish_reason"; "tool_calls"
 *      beside "message" as Traceloop's event mode sends them).
 *   3. semconv 1.26 events gen_ai.content.prompt (attribute gen_ai.prompt) and
 *      gen_ai.content.completion (attribute gen_ai.completion).
 *   4. Traceloop/OpenLLMetry flattening: gen_ai.prompt.N.{role,content,name,
 *      tool_call_id,tool_calls.M.{id,name,arguments}} and gen_ai.completion.N.
 *      {...,finish_reason}.
 *   5. OpenInference flattening: llm.input_messages.N.message.{role,content,
 *      name,tool_call_id,contents.M.message_content.{type,text,image.image.url},
 *      tool_calls.M.tool_call.{id,function.name,function.arguments}} and
 *      llm.output_messages.N.message.{...} (finish reason: the span's
 *      llm.finish_reason).
 *   6. Prela SDK: events llm.request {messages, system, prompt}, llm.response
 *      {content | text}, llm.tool_calls / llm.tool_use {tool_calls},
 *      llm.thinking {thinking}, finish reason from the span attribute
 *      llm.finish_reason or llm.stop_reason; the Prela LangChain attributes
 *      llm.prompt.N / llm.response.N (one text message each).
 *   7. OpenInference input.value / output.value: a JSON chat request
 *      ({"messages": [...], "system"?: ...}, or {"prompt": "..."}) or response
 *      ({"choices": [...]}, Anthropic {"content": [...], "stop_reason"}) becomes
 *      messages; anything else one text message holding the value.
 *   8. Traceloop traceloop.entity.input / traceloop.entity.output, read as in 7.
 * An event's content is its attribute "body" (a map, or a JSON string: how an
 * OTLP log record's body travels once attached to its span) when present,
 * else its attributes themselves. Inside every source a message may be in the
 * conventions' shape ({role, parts}), OpenAI's ({role, content: string | parts,
 * tool_calls, tool_call_id}), Anthropic's (content blocks text / tool_use /
 * tool_result / thinking) or LangChain's (serialized {"lc":1,...,"kwargs"}).
 * Indexed keys are read in numeric index order (sparse indices fine; an index
 * that is not 1-9 decimal digits, e.g. "-1", "x", "1e3", is ignored); all
 * indexed keys are collected in one pass and sorted once.
 *
 * Bounds (hostile input): at most PC_MESSAGES_MAX messages per side and
 * PC_MESSAGE_PARTS_MAX parts per message; a side's JSON is at most
 * 8 x (bytes of the span's attribute and event values, +16 per value) + 4 KiB:
 * messages past a bound are left out (the array stays valid JSON). A JSON
 * string that does not parse (invalid, deeper than PC_JSON_MAX_DEPTH) becomes
 * a text part holding the string. Invalid UTF-8 is written as U+FFFD (json.h).
 * A span with none of the keys above costs one pass over its attribute keys
 * and event names.
 */
#ifndef PC_MESSAGES_H
#define PC_MESSAGES_H

#include "span.h"

#define PC_MESSAGES_MAX 1024
#define PC_MESSAGE_PARTS_MAX 256

/*
 * Sets s->input_messages and s->output_messages from the attributes and
 * events of |s| (see above): JSON text allocated in |arena| (the batch's), or
 * empty when the span carries no message of that side. Scratch memory (JSON
 * parses, the sort) is freed before returning.
 */
void pc_messages_extract(pc_span *s, pc_arena *arena);

#endif
