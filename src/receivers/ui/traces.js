// traces.js - the Traces page: the newest traces, filters, search and paging.
//
// The filters are the list API's parameters, kept in the hash under the same
// names (service_name, status, span_type, project_id, session_id, user_id,
// model, start_time, end_time) plus q (full-text search), limit (rows a page,
// default 50) and cursor (the API's `next` of the page before). With q,
// /api/v1/search answers and the filters a trace row carries (service, status,
// project, session, user, time) narrow its results here; span type and model
// need the list API.
//
// Live (live=1 in the hash, the first page of the list only, without a time
// range or search): GET /api/v1/tail with the same filters; a trace that is
// new appears at the top, one that changed (more spans, a status) is
// replaced where it stands, without a reload. The stream stops when the page
// goes and reconnects after an error.
import { get, stream } from './api.js';
import { h, fill, fmtTime, fmtMs, fmtCost, fmtInt, dash, announce } from './dom.js';

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
const TAIL_FILTERS = ['service_name', 'status', 'span_type', 'project_id', 'session_id',
  'user_id', 'model'];
const RECONNECT_MS = 2000;

export async function render(main, args, params, ctx) {
  const p = Object.fromEntries(params.entries());
  const form = filterForm(p, ctx);
  const table = h('table', { id: 'traces', class: 'traces' },
    h('caption', { class: 'visually-hidden' }, 'Traces, newest first'),
    h('thead', {}, h('tr', {}, ['Time', 'Root span', 'Service', 'Spans', 'Duration', 'Status',
      'Tokens', 'Cost', 'Session'].map((c) => h('th', { scope: 'col' }, c)))));
  const body = h('tbody', {}, h('tr', {}, h('td', { colspan: 9 }, 'Loading\u2026')));
  table.appendChild(body);
  const pager = h('nav', { class: 'pager', 'aria-label': 'Pages of traces' });
  const canLive = !p.q && !p.cursor && !p.start_time && !p.end_time;
  const live = canLive && p.live === '1';
  const liveStatus = h('span', { id: 'live-status', class: 'muted', role: 'status' });
  const toggle = h('label', { class: 'live-toggle', title: canLive ? 'New traces appear as ' +
    'they arrive' : 'Live needs the first page, without search or a time range' },
  h('input', { type: 'checkbox', id: 'live-toggle', checked: live, disabled: !canLive,
    onchange: (ev) => ctx.go(ctx.hashOf('traces', [],
      { ...p, live: ev.target.checked ? '1' : '' })) }),
  'Live');
  delete main.dataset.live;
  fill(main, h('div', { class: 'page-head' }, h('h1', {}, p.q ? 'Search results' : 'Traces'),
    toggle, liveStatus), form, h('div', { class: 'scroll' }, table), pager);

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
    h('tr', {}, h('td', { colspan: 9, class: 'empty' }, 'No traces match.')));
  main.dataset.count = rows.length;
  if (live) startLive(main, body, liveStatus, p, ctx);
  if (p.cursor)
    pager.appendChild(h('a', { href: ctx.hashOf('traces', [], { ...p, cursor: '' }) },
      'First page'));
  if (next)
    pager.appendChild(h('a', { href: ctx.hashOf('traces', [], { ...p, cursor: next }), rel: 'next',
      id: 'older' }, 'Older traces'));
}

// Follows the tail with the page's filters until the page goes (ctx.onLeave).
function startLive(main, body, status, p, ctx) {
  const ac = new AbortController();
  ctx.onLeave(() => ac.abort());
  const params = {};
  for (const k of TAIL_FILTERS) if (p[k]) params[k] = p[k];
  const limit = Number(p.limit) || PAGE;
  main.dataset.live = 'connecting';
  status.textContent = 'connecting\u2026';
  (async () => {
    while (!ac.signal.aborted) {
      try {
        await stream('/api/v1/tail', params, {
          signal: ac.signal,
          onComment: (c) => {
            if (c !== 'ready') return;
            main.dataset.live = 'ready';
            status.textContent = 'new traces appear at the top';
          },
          onEvent: (type, data) => {
            if (type === 'trace') upsert(body, JSON.parse(data), ctx, limit);
          },
        });
      } catch (e) {
        if (ac.signal.aborted) return;
        main.dataset.live = 'error';
        status.textContent = `stopped: ${e.message}; retrying`;
      }
      if (ac.signal.aborted) return;
      await new Promise((r) => setTimeout(r, RECONNECT_MS));
    }
  })();
}

// Puts trace |t| at the top of the list, or in place of its row.
function upsert(body, t, ctx, limit) {
  const empty = body.querySelector('td.empty');
  if (empty) empty.parentNode.remove();
  const tr = row(t, ctx);
  const old = [...body.children].find((r) => r.dataset.trace === t.trace_id &&
    r.dataset.project === t.project_id);
  if (old) {
    old.replaceWith(tr);
    return;
  }
  tr.classList.add('is-new');
  body.prepend(tr);
  while (body.children.length > limit) body.lastChild.remove();
  announce(`New trace: ${t.root_span_name || t.trace_id}`);
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
  return h('tr', { class: cls, dataset: { trace: t.trace_id, project: t.project_id } },
    h('td', { class: 'num' }, h('time', { datetime: t.started_at }, fmtTime(t.started_at))),
    h('td', {}, h('a', { href, class: 'trace-link' }, t.root_span_name || t.trace_id)),
    h('td', {}, t.service_name || dash),
    h('td', { class: 'num' }, fmtInt(t.span_count)),
    h('td', { class: 'num' }, fmtMs(t.duration_ms)),
    h('td', {}, h('span', { class: `status status-${t.status}` }, t.status || dash)),
    h('td', { class: 'num', title: 'input \u2192 output tokens' }, tokens),
    h('td', { class: 'num' }, fmtCost(t.cost_usd)),
    h('td', {}, t.session_id ? h('a', { class: 'session-link',
      href: ctx.hashOf('session', [t.session_id], { project_id: t.project_id }) },
    t.session_id) : dash));
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
    if (p.live) out.live = p.live; // Live stays on where it can
    ctx.go(ctx.hashOf('traces', [], out));
  });
  return form;
}
