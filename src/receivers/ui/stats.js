// stats.js - the Stats page: charts over time from GET /api/v1/stats.
//
//   #/stats?group_by=model&range=24h&interval=1h   (or start_time=&end_time=
//   instead of range)
//
// One chart per measure (spans, errors, tokens, cost, latency p50/p95/p99), one
// line per group (model, service or span type; "none" = one line), drawn as
// SVG with DOM calls. Each point is a <circle> carrying its bucket, group and
// value (data-*) and a <title> with them, so the numbers are readable without
// the picture; a table below holds every row of the answer. The exact query
// sent is on the charts' section as data-query (tests ask the API the same).
//
// A bucket a group has no row in counts as 0 for the counts (spans, errors,
// tokens) and as no point for cost and latency (the API's null: nothing known).
import { get } from './api.js';
import { h, svg, fill, fmtTime, fmtMs, fmtCost, fmtInt, dash } from './dom.js';

const GROUPS = [['model', 'Model'], ['service', 'Service'], ['span_type', 'Span type'],
  ['none', 'None']];
const RANGES = { '1h': 3600, '6h': 21600, '24h': 86400, '7d': 604800, '30d': 2592000 };
const INTERVALS = ['1m', '5m', '15m', '1h', '6h', '1d'];
const AUTO = { '1h': '5m', '6h': '15m', '24h': '1h', '7d': '6h', '30d': '1d' };
const MAX_SERIES = 12; // lines a chart draws; the table has every group

const MEASURES = [
  { key: 'spans', title: 'Spans', unit: 'spans', count: true, v: (r) => r.spans,
    fmt: fmtInt },
  { key: 'errors', title: 'Errors', unit: 'spans in error', count: true, v: (r) => r.errors,
    fmt: fmtInt },
  { key: 'tokens', title: 'Tokens', unit: 'input + output tokens', count: true,
    v: (r) => (r.input_tokens || 0) + (r.output_tokens || 0), fmt: fmtInt },
  { key: 'cost', title: 'Cost', unit: 'USD', v: (r) => r.cost_usd, fmt: fmtCost },
  { key: 'p50', title: 'Latency p50', unit: 'ms', v: (r) => r.latency_ms && r.latency_ms.p50,
    fmt: fmtMs },
  { key: 'p95', title: 'Latency p95', unit: 'ms', v: (r) => r.latency_ms && r.latency_ms.p95,
    fmt: fmtMs },
  { key: 'p99', title: 'Latency p99', unit: 'ms', v: (r) => r.latency_ms && r.latency_ms.p99,
    fmt: fmtMs },
];

export async function render(main, args, params, ctx) {
  const p = Object.fromEntries(params.entries());
  const group = GROUPS.some(([g]) => g === p.group_by) ? p.group_by : 'model';
  const range = RANGES[p.range] ? p.range : '24h';
  const interval = INTERVALS.includes(p.interval) ? p.interval : AUTO[range];
  let end = Date.parse(p.end_time || '') || Date.now();
  let start = Date.parse(p.start_time || '') || end - RANGES[range] * 1000;
  if (start >= end) start = end - RANGES[range] * 1000;
  const query = { group_by: group, interval, start_time: new Date(start).toISOString(),
    end_time: new Date(end).toISOString(), project_id: p.project_id };
  const charts = h('section', { id: 'charts', class: 'charts', 'aria-label': 'Charts',
    dataset: { query: new URLSearchParams(Object.entries(query).filter(([, v]) => v))
      .toString() } }, h('p', {}, 'Loading\u2026'));
  fill(main, h('h1', {}, 'Stats'), form(group, range, interval, p, ctx), charts);
  const r = await get('/api/v1/stats', query);
  if (ctx.stale()) return;
  start = Date.parse(r.start_time);
  end = Date.parse(r.end_time);
  const rows = r.stats;
  if (!rows.length) {
    fill(charts, h('p', { class: 'empty' }, 'No spans in this time range.'));
    return;
  }
  const label = (g) => (g === null ? 'all spans' : g === '' ? '(none)' : g);
  // groups by spans, most first; buckets in time order
  const totals = new Map();
  for (const row of rows) totals.set(row.group, (totals.get(row.group) || 0) + row.spans);
  const groups = [...totals.keys()].sort((a, b) => totals.get(b) - totals.get(a) ||
    (String(a) < String(b) ? -1 : 1));
  const shown = groups.slice(0, MAX_SERIES);
  const buckets = [...new Set(rows.map((row) => row.bucket))].sort((a, b) =>
    Date.parse(a) - Date.parse(b));
  const at = new Map(rows.map((row) => [`${row.bucket}\u0000${row.group}`, row]));
  fill(charts,
    h('ul', { class: 'legend chart-legend', 'aria-label': 'Groups' }, shown.map((g, i) =>
      h('li', {}, h('span', { class: `swatch series-${i % 8}` }), label(g)))),
    groups.length > shown.length ? h('p', { class: 'muted' },
      `${groups.length - shown.length} more groups are in the table only.`) : null,
    r.truncated ? h('p', { class: 'muted' }, 'The answer was cut at its row limit.') : null,
    h('div', { class: 'chart-grid' }, MEASURES.map((m) => chart(m, shown, buckets, at, start,
      end, label))),
    table(rows, label));
}

function form(group, range, interval, p, ctx) {
  const sel = (id, label, value, options) => h('div', { class: 'field' },
    h('label', { for: id }, label),
    h('select', { id, name: id }, options.map(([v, t]) =>
      h('option', { value: v, selected: v === value }, t))));
  const f = h('form', { class: 'filters', 'aria-label': 'Chart settings' },
    sel('group_by', 'Group by', group, GROUPS),
    sel('range', 'Time range', range, Object.keys(RANGES).map((k) => [k, `last ${k}`])),
    sel('interval', 'Interval', interval, INTERVALS.map((k) => [k, k])),
    h('div', { class: 'field' }, h('label', { for: 'project_id' }, 'Project (admin keys)'),
      h('input', { id: 'project_id', name: 'project_id', value: p.project_id || '' })),
    h('div', { class: 'actions' }, h('button', { type: 'submit', id: 'apply' }, 'Apply')));
  f.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const out = {};
    for (const [k, v] of new FormData(f).entries()) if (String(v).trim()) out[k] = v;
    // a new range picks its own interval unless the interval was changed too
    if (out.range !== range && out.interval === interval) out.interval = AUTO[out.range];
    ctx.go(ctx.hashOf('stats', [], out));
  });
  return f;
}

const W = 640, H = 220, L = 76, R = 12, T = 12, B = 34; // view box and margins

// One measure's chart: a line and points per group.
function chart(m, groups, buckets, at, start, end, label) {
  const series = groups.map((g) => buckets.map((b) => {
    const row = at.get(`${b}\u0000${g}`);
    const v = row ? m.v(row) : m.count ? 0 : null;
    return v === null || v === undefined ? null : { t: Date.parse(b), b, v };
  }).filter(Boolean));
  const max = Math.max(0, ...series.flat().map((pt) => pt.v));
  const top = max > 0 ? max * 1.1 : 1;
  const x = (t) => L + ((t - start) / Math.max(end - start, 1)) * (W - L - R);
  const y = (v) => T + (1 - v / top) * (H - T - B);
  const id = `chart-${m.key}`;
  const s = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', class: 'chart',
    'aria-labelledby': `${id}-title` },
    svg('title', { id: `${id}-title` }, `${m.title} (${m.unit}) over time`),
    svg('line', { class: 'axis', x1: L, y1: T, x2: L, y2: H - B }),
    svg('line', { class: 'axis', x1: L, y1: H - B, x2: W - R, y2: H - B }),
    [0, 0.5, 1].map((f) => [
      svg('line', { class: 'grid', x1: L, x2: W - R, y1: y(top * f), y2: y(top * f) }),
      svg('text', { class: 'tick-label', x: L - 4, y: y(top * f) + 4, 'text-anchor': 'end' },
        m.fmt(m.count ? Math.round(top * f) : top * f))]),
    [[start, 'start'], [(start + end) / 2, 'middle'], [end, 'end']].map(([t, a]) =>
      svg('text', { class: 'tick-label', x: x(t), y: H - B + 14, 'text-anchor': a },
        fmtTime(new Date(t).toISOString()).slice(5, 16))),
    svg('text', { class: 'axis-label', x: (L + W - R) / 2, y: H - 4, 'text-anchor': 'middle' },
      'time (local)'),
    svg('text', { class: 'axis-label', x: 12, y: (T + H - B) / 2, 'text-anchor': 'middle',
      transform: `rotate(-90 12 ${(T + H - B) / 2})` }, m.unit),
    series.map((pts, i) => svg('g', { class: `series series-${i % 8}`,
      dataset: { group: groups[i] === null ? '' : groups[i] } },
    pts.length > 1 ? svg('polyline', { class: 'line',
      points: pts.map((pt) => `${x(pt.t).toFixed(1)},${y(pt.v).toFixed(1)}`).join(' ') }) : null,
    pts.map((pt) => svg('circle', { class: 'pt', cx: x(pt.t).toFixed(1), cy: y(pt.v).toFixed(1),
      r: 3, dataset: { bucket: pt.b, value: pt.v } },
    svg('title', {}, `${label(groups[i])} \u00b7 ${fmtTime(pt.b)}: ${m.fmt(pt.v)}`))))));
  return h('figure', { class: 'chart-box', id, dataset: { measure: m.key } },
    h('figcaption', {}, `${m.title} `, h('span', { class: 'muted' }, `(${m.unit})`)), s);
}

function table(rows, label) {
  const cols = ['Bucket', 'Group', 'Spans', 'Errors', 'Tokens', 'Cost', 'p50', 'p95', 'p99'];
  return h('details', { class: 'stats-table' }, h('summary', {}, 'The numbers as a table'),
    h('div', { class: 'scroll' }, h('table', { id: 'stats-table' },
      h('thead', {}, h('tr', {}, cols.map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, rows.map((r) => h('tr', {},
        h('td', { class: 'num' }, fmtTime(r.bucket)), h('td', {}, label(r.group)),
        MEASURES.map((m) => {
          const v = m.v(r);
          return h('td', { class: 'num', dataset: { measure: m.key,
            value: v === null || v === undefined ? '' : v } },
          v === null || v === undefined ? dash : m.fmt(v));
        })))))));
}
