// traces.js - the Traces page: the newest traces, filters, search and paging.
//
// The filters are the list API's parameters, kept in the hash under the same
// names (service_name, status, span_type, project_id, session_id, user_id,
// model, start_time, end_time) plus q (full-text search), limit (rows a page,
// default 50) and cursor (the API's `next` of the page before). With q,
// /api/v1/search answers and the filters a trace row carries (service, status,
// project, session, user, time) narrow its results here; span type and model
// need the list API.
import { get } from './api.js';
import { h, fill, fmtTime, fmtMs, fmtCost, fmtInt, dash } from './dom.js';

const SPAN_TYPES = ['agent', 'llm', 'tool', 'retrieval', 'embedding', 'custom'];
const STATUSES = ['success', 'error', 'pending'];
const TEXT_FILTERS = [
  ['service_name', 'Service'],
  ['project_id', 'Project (admin keys)'],
  ['session_id', 'Session'],
  ['user_id', 'User'],
  ['model', 'Model'],
];
const PAGE = 50;

export async function render(main, args, params, ctx) {
  const p = Object.fromEntries(params.entries());
  const form = filterForm(p, ctx);
  const table = h('table', { id: 'traces', class: 'traces' },
    h('caption', { class: 'visually-hidden' }, 'Traces, newest first'),
    h('thead', {}, h('tr', {}, ['Time', 'Root span', 'Service', 'Spans', 'Duration', 'Status',
      'Tokens', 'Cost'].map((c) => h('th', { scope: 'col' }, c)))));
  const body = h('tbody', {}, h('tr', {}, h('td', { colspan: 8 }, 'Loading\u2026')));
  table.appendChild(body);
  const pager = h('nav', { class: 'pager', 'aria-label': 'Pages of traces' });
  fill(main, h('h1', {}, p.q ? 'Search results' : 'Traces'), form,
    h('div', { class: 'scroll' }, table), pager);

  let rows, next = null;
  if (p.q) {
    const r = await get('/api/v1/search', { query: p.q, limit: 500, project_id: p.project_id });
    rows = r.results.filter((t) => matches(t, p));
  } else {
    const r = await get('/api/v1/traces',
      { ...listParams(p), limit: p.limit || PAGE, cursor: p.cursor });
    rows = r.traces;
    next = r.next;
  }
  if (ctx.stale()) return;
  fill(body, rows.length ? rows.map((t) => row(t, ctx)) :
    h('tr', {}, h('td', { colspan: 8, class: 'empty' }, 'No traces match.')));
  main.dataset.count = rows.length;
  if (p.cursor)
    pager.appendChild(h('a', { href: ctx.hashOf('traces', [], { ...p, cursor: '' }) },
      'First page'));
  if (next)
    pager.appendChild(h('a', { href: ctx.hashOf('traces', [], { ...p, cursor: next }), rel: 'next',
      id: 'older' }, 'Older traces'));
}

function listParams(p) {
  const out = {};
  for (const k of ['service_name', 'status', 'span_type', 'project_id', 'session_id', 'user_id',
    'model', 'start_time', 'end_time']) if (p[k]) out[k] = p[k];
  return out;
}

// Whether search result |t| passes the filters a trace row can answer.
function matches(t, p) {
  const eq = (k) => !p[k] || t[k] === p[k];
  if (!eq('service_name') || !eq('project_id') || !eq('session_id') || !eq('user_id')) return false;
  if (p.status && (t.status || '').toLowerCase() !== p.status.toLowerCase()) return false;
  if (p.start_time && Date.parse(t.started_at) < Date.parse(p.start_time)) return false;
  if (p.end_time && Date.parse(t.started_at) > Date.parse(p.end_time)) return false;
  return true;
}

function row(t, ctx) {
  const tokens = t.input_tokens || t.output_tokens ?
    `${fmtInt(t.input_tokens || 0)} \u2192 ${fmtInt(t.output_tokens || 0)}` : dash;
  const href = ctx.hashOf('trace', [t.trace_id], { project_id: t.project_id });
  const cls = t.status === 'error' ? 'is-error' : null;
  return h('tr', { class: cls, dataset: { trace: t.trace_id } },
    h('td', { class: 'num' }, h('time', { datetime: t.started_at }, fmtTime(t.started_at))),
    h('td', {}, h('a', { href, class: 'trace-link' }, t.root_span_name || t.trace_id)),
    h('td', {}, t.service_name || dash),
    h('td', { class: 'num' }, fmtInt(t.span_count)),
    h('td', { class: 'num' }, fmtMs(t.duration_ms)),
    h('td', {}, h('span', { class: `status status-${t.status}` }, t.status || dash)),
    h('td', { class: 'num', title: 'input \u2192 output tokens' }, tokens),
    h('td', { class: 'num' }, fmtCost(t.cost_usd)));
}

// <input type=datetime-local> value (local time) <-> ISO-8601 UTC.
function toLocal(iso) {
  const d = new Date(iso);
  if (!iso || isNaN(d)) return '';
  const off = d.getTimezoneOffset() * 60000;
  return new Date(d - off).toISOString().slice(0, 19);
}
function fromLocal(v) {
  const d = new Date(v);
  return v && !isNaN(d) ? d.toISOString() : '';
}

function field(id, label, control) {
  return h('div', { class: 'field' }, h('label', { for: id }, label), control);
}

function select(id, value, options) {
  return h('select', { id, name: id },
    h('option', { value: '' }, 'any'),
    options.map((o) => h('option', { value: o, selected: o === value }, o)));
}

function filterForm(p, ctx) {
  const form = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter traces' },
    field('q', 'Search', h('input', { id: 'q', name: 'q', type: 'search', value: p.q || '',
      placeholder: 'text in names, attributes, messages' })),
    field('status', 'Status', select('status', p.status, STATUSES)),
    field('span_type', 'Span type', select('span_type', p.span_type, SPAN_TYPES)),
    TEXT_FILTERS.map(([k, label]) =>
      field(k, label, h('input', { id: k, name: k, value: p[k] || '' }))),
    field('start_time', 'From', h('input', { id: 'start_time', name: 'start_time',
      type: 'datetime-local', step: 1, value: toLocal(p.start_time) })),
    field('end_time', 'To', h('input', { id: 'end_time', name: 'end_time',
      type: 'datetime-local', step: 1, value: toLocal(p.end_time) })),
    h('div', { class: 'actions' },
      h('button', { type: 'submit', id: 'apply' }, 'Apply'),
      h('a', { href: '#/traces', class: 'button' }, 'Clear')));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const out = {};
    for (const [k, v] of new FormData(form).entries()) {
      const s = String(v).trim();
      if (!s) continue;
      out[k] = k === 'start_time' || k === 'end_time' ? fromLocal(s) : s;
    }
    ctx.go(ctx.hashOf('traces', [], out));
  });
  return form;
}
