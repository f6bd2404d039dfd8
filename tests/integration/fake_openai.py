"""A fake OpenAI-compatible HTTP server for the instrumentation-library tests.

It answers POST /v1/chat/completions (plain and streamed with server-sent events, with a
tool call when the request offers tools and has no tool result yet) and POST
/v1/embeddings, with fixed usage figures (cached and reasoning token details included), so
a test knows exactly what every library must report. A request for the model "fail-model"
gets a 500 with an OpenAI-style error body. `requests` lists every request body received.
"""
import http.server
import json
import threading

# What every chat answer reports; embeddings report EMBED_TOKENS prompt tokens.
CHAT_USAGE = {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150,
              "prompt_tokens_details": {"cached_tokens": 100},
              "completion_tokens_details": {"reasoning_tokens": 10}}
EMBED_TOKENS = 8
RESPONSE_MODEL = "gpt-4o-mini-2024-07-18"
ANSWER = "The capital of France is Paris."


class FakeOpenAI:
    def __init__(self):
        self.requests = []
        handler = self._handler()
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = self.httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def _handler(self):
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # TCP_NODELAY: headers and body are two writes; with Nagle the body waits for the
            # client's delayed ACK of the headers (40 ms on Linux) on a kept-alive connection
            disable_nagle_algorithm = True

            def log_message(self, *a):
                pass

            def send_json(self, status, obj):
                body = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
                fake.requests.append((self.path, body))
                if body.get("model") == "fail-model":
                    self.send_json(500, {"error": {"message": "the model is on fire",
                                                   "type": "server_error", "code": "fire"}})
                elif self.path.endswith("/embeddings"):
                    inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
                    self.send_json(200, {"object": "list", "model": "text-embedding-3-small",
                                         "data": [{"object": "embedding", "index": i,
                                                   "embedding": [0.1, 0.2, 0.3]}
                                                  for i in range(len(inputs))],
                                         "usage": {"prompt_tokens": EMBED_TOKENS,
                                                   "total_tokens": EMBED_TOKENS}})
                elif self.path.endswith("/chat/completions"):
                    self.chat(body)
                else:
                    self.send_json(404, {"error": {"message": "no such path"}})

            def chat(self, body):
                wants_tool = body.get("tools") and not any(
                    m.get("role") == "tool" for m in body.get("messages", []))
                if wants_tool:
                    message = {"role": "assistant", "content": None, "tool_calls": [{
                        "id": "call_weather_1", "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]}
                    finish = "tool_calls"
                else:
                    message = {"role": "assistant", "content": ANSWER}
                    finish = "stop"
                if not body.get("stream"):
                    self.send_json(200, {"id": "chatcmpl-1", "object": "chat.completion",
                                         "created": 1700000000, "model": RESPONSE_MODEL,
                                         "choices": [{"index": 0, "message": message,
                                                      "finish_reason": finish}],
                                         "usage": CHAT_USAGE})
                    return
                chunks = [{"role": "assistant", "content": ""}]
                chunks += [{"content": w} for w in (ANSWER.split(" ", 1)[0] + " ",
                                                    ANSWER.split(" ", 1)[1])]
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                base = {"id": "chatcmpl-2", "object": "chat.completion.chunk",
                        "created": 1700000000, "model": RESPONSE_MODEL}
                for d in chunks:
                    ev = dict(base, choices=[{"index": 0, "delta": d, "finish_reason": None}])
                    self.wfile.write(b"data: " + json.dumps(ev).encode() + b"\n\n")
                ev = dict(base, choices=[{"index": 0, "delta": {}, "finish_reason": "stop"}])
                self.wfile.write(b"data: " + json.dumps(ev).encode() + b"\n\n")
                if (body.get("stream_options") or {}).get("include_usage"):
                    ev = dict(base, choices=[], usage=CHAT_USAGE)
                    self.wfile.write(b"data: " + json.dumps(ev).encode() + b"\n\n")
                self.wfile.write(b"data: [DONE]\n\n")
                self.close_connection = True

        return Handler
