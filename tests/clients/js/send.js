// The OpenTelemetry JS SDK as a client of prela-collector: replays one trace described
// in JSON through the SDK's public tracing API and exports it with one of the three
// OTLP trace exporters. Driven by tests/integration/test_conformance.py.
//
//   node send.js KIND ENDPOINT COMPRESSION TAG < spec.json
//     KIND         http-json | http-proto | grpc
//     ENDPOINT     http://127.0.0.1:PORT (OTLP/HTTP: /v1/traces is appended; gRPC: as is)
//     COMPRESSION  none | gzip
//     TAG          run tag; becomes the resource attribute conformance.run
//
// The spec (stdin) fixes everything the collector must report back: trace id, span ids
// (through a replaying IdGenerator), parents, names, kinds, [sec, nsec] timestamps,
// status, attributes, events, links, resource and scope. Attribute values are JSON;
// {"$bytes": "<base64>"} stands for a Uint8Array. Integral numbers go out as intValue,
// others as doubleValue (the SDK decides by Number.isInteger).
//
// Exit status: 0 when every export reported SUCCESS and every span was exported;
// 1 otherwise, with the reason on stderr. Stdout gets one JSON line:
// {"exported": N, "results": [...]}.
'use strict';

const api = require('@opentelemetry/api');
const { BasicTracerProvider, BatchSpanProcessor } = require('@opentelemetry/sdk-trace-base');
const { defaultResource, resourceFromAttributes } = require('@opentelemetry/resources');
const { ExportResultCode } = require('@opentelemetry/core');

const EXPORTERS = {
  'http-json': () => require('@opentelemetry/exporter-trace-otlp-http').OTLPTraceExporter,
  'http-proto': () => require('@opentelemetry/exporter-trace-otlp-proto').OTLPTraceExporter,
  grpc: () => require('@opentelemetry/exporter-trace-otlp-grpc').OTLPTraceExporter,
};
const KINDS = {
  internal: api.SpanKind.INTERNAL, server: api.SpanKind.SERVER, client: api.SpanKind.CLIENT,
  producer: api.SpanKind.PRODUCER, consumer: api.SpanKind.CONSUMER,
};
const STATUS = { unset: api.SpanStatusCode.UNSET, ok: api.SpanStatusCode.OK, error: api.SpanStatusCode.ERROR };

function fail(msg) {
  process.stderr.write(`send.js: ${msg}\n`);
  process.exit(1);
}

// JSON attribute value -> what the SDK takes ({"$bytes": b64} -> Uint8Array, recursively).
function value(v) {
  if (Array.isArray(v)) return v.map(value);
  if (v !== null && typeof v === 'object') {
    if (typeof v.$bytes === 'string') return new Uint8Array(Buffer.from(v.$bytes, 'base64'));
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, value(x)]));
  }
  return v;
}
const attrs = (o) => Object.fromEntries(Object.entries(o || {}).map(([k, v]) => [k, value(v)]));

// An exporter wrapper that records every result, so a failed export is an exit status.
class Recording {
  constructor(inner) { this.inner = inner; this.results = []; this.exported = 0; }
  export(spans, done) {
    this.inner.export(spans, (r) => {
      this.results.push({ code: r.code, error: r.error ? String(r.error.message || r.error) : undefined });
      if (r.code === ExportResultCode.SUCCESS) this.exported += spans.length;
      done(r);
    });
  }
  forceFlush() { return this.inner.forceFlush ? this.inner.forceFlush() : Promise.resolve(); }
  shutdown() { return this.inner.shutdown(); }
}

async function main() {
  const [kind, endpoint, compression, tag] = process.argv.slice(2);
  if (!EXPORTERS[kind] || !endpoint || !['none', 'gzip'].includes(compression) || !tag)
    fail('usage: node send.js http-json|http-proto|grpc ENDPOINT none|gzip TAG < spec.json');
  let spec;
  try {
    spec = JSON.parse(require('fs').readFileSync(0, 'utf8'));
  } catch (e) {
    fail(`bad spec on stdin: ${e.message}`);
  }

  const url = kind === 'grpc' ? endpoint : endpoint.replace(/\/$/, '') + '/v1/traces';
  const Exporter = EXPORTERS[kind]();
  const exporter = new Recording(new Exporter({ url, compression, timeoutMillis: 10000 }));

  const spanIds = spec.spans.map((s) => s.span_id);
  const idGenerator = {
    generateTraceId: () => spec.trace_id,
    generateSpanId: () => spanIds.shift() || fail('more spans started than the spec has'),
  };
  const provider = new BasicTracerProvider({
    // telemetry.sdk.* from the SDK's default resource, as NodeSDK would merge it.
    resource: defaultResource().merge(resourceFromAttributes({ ...attrs(spec.resource), 'conformance.run': tag })),
    idGenerator,
    spanProcessors: [new BatchSpanProcessor(exporter, { maxExportBatchSize: 512, scheduledDelayMillis: 60000 })],
  });
  const tracer = provider.getTracer(spec.scope.name, spec.scope.version);

  const made = {};
  for (const s of spec.spans) {
    const parent = s.parent ? api.trace.setSpan(api.ROOT_CONTEXT, made[s.parent]) : api.ROOT_CONTEXT;
    const links = (s.links || []).map((l) => ({
      context: { traceId: l.trace_id, spanId: l.span_id, traceFlags: api.TraceFlags.SAMPLED },
      attributes: attrs(l.attrs),
    }));
    const span = tracer.startSpan(s.name, { kind: KINDS[s.kind], startTime: s.start, attributes: attrs(s.attrs), links },
      parent);
    for (const e of s.events || []) span.addEvent(e.name, attrs(e.attrs), e.time);
    if (s.status && s.status !== 'unset') span.setStatus({ code: STATUS[s.status], message: s.message });
    made[s.span_id] = span;
  }
  // End children before parents, as instrumented code does.
  for (const s of [...spec.spans].reverse()) made[s.span_id].end(s.end);

  await provider.forceFlush();
  await provider.shutdown();
  process.stdout.write(JSON.stringify({ exported: exporter.exported, results: exporter.results }) + '\n');
  const bad = exporter.results.filter((r) => r.code !== ExportResultCode.SUCCESS);
  if (bad.length) fail(`export failed: ${JSON.stringify(bad)}`);
  if (exporter.exported !== spec.spans.length)
    fail(`exported ${exporter.exported} of ${spec.spans.length} spans`);
}

main().catch((e) => fail(e && e.stack ? e.stack : String(e)));
