// sessions.js - the Sessions page (a list) and the Session page (one session's
// traces read as one conversation).
//
//   #/sessions?user_id=&project_id=&start_time=&end_time=&offset=
//       GET /api/v1/sessions: the most recently active first, 50 a page (offset)
//   #/session/<id>?project_id=&cursor=
//       GET /api/v1/sessions/{id}: its totals and traces in time order (the newest
//       PAGE of them; the API's `next` as cursor pages to earlier ones), then each
//       trace (GET /api/v1/traces/{id}, at most FETCHES at once) for its LLM spans'
//       messages. A chat app resends the history with every call, so a call's
//       input messages that repeat the conversation shown so far (as its prefix)
//       are left out: each message appears once, in turn.
import { get } from './api.js';
import { h, fill, fmtTime, fmtMs, fmtCost, fmtInt, dash } from './dom.js';
import { message } from './trace.js';

const PAGE = 50;      // sessions a page
const TRACES = 20;    // traces of a session a page (each one is fetched)
const FETCHES = 4;    // trace fetches at once

// ------------------------------------------------------------- the list --

export async function render(main, args, params, ctx) {
  const p = Object.fromEntries(params.entries());
  const offset = Math.max(0, parseInt(p.offset || '0', 10) || 0);
  const table = h('table', { id: 'sessions', class: 'traces' },
    h('caption', { class: 'visually-hidden' }, 'Sessions, most recently active first'),
    h('thead', {}, h('tr', {}, ['Session', 'User', 'Project', 'Traces', 'Spans', 'Errors',
      'Tokens', 'Cost', 'First seen', 'Last seen'].map((c) => h('th', { scope: 'col' }, c)))));
  const body = h('tbody', {}, h('tr', {}, h('td', { colspan: 10 }, 'Loading\u2026')));
  table.appendChild(body);
  const pager = h('nav', { class: 'pager', 'aria-label': 'Pages of sessions' });
  fill(main, h('h1', {}, 'Sessions'), filterForm(p, ctx), h('div', { class: 'scroll' }, table),
    pager);
  const r = await get('/api/v1/sessions', {
    user_id: p.user_id, project_id: p.project_id, start_time: p.start_time,
    end_time: p.end_time, limit: PAGE, offset: offset || '' });
  if (ctx.stale()) return;
  fill(body, r.sessions.length ? r.sessions.map((s) => sessionRow(s, ctx)) :
    h('tr', {}, h('td', { colspan: 10, class: 'empty' }, 'No sessions match.')));
  main.dataset.count = r.sessions.length;
  if (offset > 0)
    pager.appendChild(h('a', { href: ctx.hashOf('sessions', [],
      { ...p, offset: Math.max(0, offset - PAGE) || '' }), id: 'newer' }, 'Newer sessions'));
  if (r.sessions.length === PAGE && offset + PAGE <= 10000)
    pager.appendChild(h('a', { href: ctx.hashOf('sessions', [], { ...p, offset: offset + PAGE }),
      rel: 'next', id: 'older' }, 'Older sessions'));
}

function tokens(o) {
  return o.input_tokens || o.output_tokens ?
    `${fmtInt(o.input_tokens || 0)} \u2192 ${fmtInt(o.output_tokens || 0)}` : dash;
}

function sessionRow(s, ctx) {
  const href = ctx.hashOf('session', [s.session_id], { project_id: s.project_id });
  return h('tr', { class: s.error_count ? 'is-error' : null, dataset: { session: s.session_id } },
    h('td', {}, h('a', { href, class: 'session-link' }, s.session_id)),
    h('td', {}, s.user_id || dash),
    h('td', {}, s.project_id || dash),
    h('td', { class: 'num' }, fmtInt(s.trace_count)),
    h('td', { class: 'num' }, fmtInt(s.span_count)),
    h('td', { class: 'num' }, fmtInt(s.error_count)),
    h('td', { class: 'num', title: 'input \u2192 output tokens' }, tokens(s)),
    h('td', { class: 'num' }, fmtCost(s.cost_usd)),
    h('td', { class: 'num' }, h('time', { datetime: s.first_seen }, fmtTime(s.first_seen))),
    h('td', { class: 'num' }, h('time', { datetime: s.last_seen }, fmtTime(s.last_seen))));
}

// <input type=datetime-local> value (local time) <-> ISO-8601 UTC.
function toLocal(iso) {
  const d = new Date(iso);
  if (!iso || isNaN(d)) return '';
  return new Date(d - d.getTimezoneOffset() * 60000).toISOString().slice(0, 19);
}
function fromLocal(v) {
  const d = new Date(v);
  return v && !isNaN(d) ? d.toISOString() : '';
}

function field(id, label, control) {
  return h('div', { class: 'field' }, h('label', { for: id }, label), control);
}

function filterForm(p, ctx) {
  const form = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter sessions' },
    field('user_id', 'User',
      h('input', { id: 'user_id', name: 'user_id', value: p.user_id || '' })),
    field('project_id', 'Project (admin keys)', h('input', { id: 'project_id', name: 'project_id',
      value: p.project_id || '' })),
    field('start_time', 'Active from', h('input', { id: 'start_time', name: 'start_time',
      type: 'datetime-local', step: 1, value: toLocal(p.start_time) })),
    field('end_time', 'Active to', h('input', { id: 'end_time', name: 'end_time',
      type: 'datetime-local', step: 1, value: toLocal(p.end_time) })),
    h('div', { class: 'actions' },
      h('button', { type: 'submit', id: 'apply' }, 'Apply'),
      h('a', { href: '#/sessions', class: 'button' }, 'Clear')));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const out = {};
    for (const [k, v] of new FormData(form).entries()) {
      const s = String(v).trim();
      if (s) out[k] = k === 'start_time' || k === 'end_time' ? fromLocal(s) : s;
    }
    ctx.go(ctx.hashOf('sessions', [], out));
  });
  return form;
}

// ---------------------------------------------------------- one session --

export async function renderOne(main, args, params, ctx) {
  const id = args[0] || '';
  const project = params.get('project_id') || '';
  const cursor = params.get('cursor') || '';
  fill(main, h('p', {}, 'Loading session\u2026'));
  const r = await get('/api/v1/sessions/' + encodeURIComponent(id),
    { project_id: project, limit: TRACES, cursor });
  if (ctx.stale()) return;
  const s = r.session;
  const conv = h('ol', { id: 'session-conversation', class: 'turns' });
  fill(main,
    h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' },
      h('a', { href: '#/sessions' }, 'Sessions'), ' / ', h('span', {}, s.session_id)),
    h('h1', {}, `Session ${s.session_id}`),
    h('dl', { class: 'summary trace-summary', id: 'session-totals' },
      pair('Project', s.project_id), pair('User', s.user_id),
      pair('Traces', fmtInt(s.trace_count)), pair('Spans', fmtInt(s.span_count)),
      pair('Errors', fmtInt(s.error_count)),
      pair('Tokens', `${fmtInt(s.input_tokens)} in, ${fmtInt(s.output_tokens)} out`),
      pair('Cost', fmtCost(s.cost_usd)), pair('First seen', fmtTime(s.first_seen)),
      pair('Last seen', fmtTime(s.last_seen)), pair('Duration', fmtMs(s.duration_ms))),
    r.next ? h('p', {}, h('a', { id: 'earlier', href: ctx.hashOf('session', [id],
      { project_id: project, cursor: r.next }) }, 'Earlier traces of this session')) : null,
    h('h2', {}, cursor ? 'Its traces (a page of earlier ones)' : 'Its traces, oldest first'),
    conv);
  // every trace of the page, fetched a few at a time, shown in the session's order
  const details = new Array(r.traces.length);
  let next = 0;
  const worker = async () => {
    while (next < r.traces.length && !ctx.stale()) {
      const i = next++;
      const t = r.traces[i];
      try {
        details[i] = await get('/api/v1/traces/' + encodeURIComponent(t.trace_id),
          { project_id: t.project_id });
      } catch (e) {
        details[i] = { error: e.message };
      }
    }
  };
  await Promise.all(Array.from({ length: FETCHES }, worker));
  if (ctx.stale()) return;
  let history = [];
  fill(conv, r.traces.map((t, i) => {
    const { items, seen } = turns(details[i], history);
    history = seen;
    return h('li', { class: 'turn', dataset: { trace: t.trace_id } },
      h('div', { class: 'turn-head' },
        h('a', { href: ctx.hashOf('trace', [t.trace_id], { project_id: t.project_id }),
          class: 'trace-link' }, t.root_span_name || t.trace_id),
        h('span', { class: 'muted' }, ` \u00b7 ${fmtTime(t.started_at)} \u00b7 ` +
          `${fmtMs(t.duration_ms)} \u00b7 ${tokens(t)} tokens \u00b7 ${fmtCost(t.cost_usd)}`),
        t.status === 'error' ? h('span', { class: 'status status-error' }, 'error') : null),
      details[i].error ? h('p', { class: 'error' }, `Could not load: ${details[i].error}`) :
        items.length ? h('ol', { class: 'conversation' }, items) :
          h('p', { class: 'muted' }, 'No LLM messages in this trace.'));
  }));
}

// The messages of trace answer |d|'s LLM spans (by start), leaving out the
// inputs that repeat |history| as their prefix. Returns the list items and the
// conversation so far.
function turns(d, history) {
  const items = [];
  if (!d || !Array.isArray(d.spans)) return { items, seen: history };
  const llm = d.spans.filter((s) => Array.isArray(s.input_messages) ||
    Array.isArray(s.output_messages));
  llm.sort((a, b) => a.start_time_unix_nano - b.start_time_unix_nano);
  for (const s of llm) {
    const input = Array.isArray(s.input_messages) ? s.input_messages : [];
    const output = Array.isArray(s.output_messages) ? s.output_messages : [];
    let k = 0;
    while (k < input.length && k < history.length && key(input[k]) === key(history[k])) k++;
    if (k < history.length) k = 0; // not a continuation: show the whole input
    for (const m of input.slice(k)) items.push(message(m, 'input'));
    for (const m of output) items.push(message(m, 'output'));
    history = input.concat(output);
  }
  return { items, seen: history };
}

// What makes two messages the same turn: role and parts (not finish_reason,
// which an output carries and the same message resent as input does not).
function key(m) {
  const parts = m && Array.isArray(m.parts) ? m.parts : [];
  return JSON.stringify([m && m.role, parts.map((p) => p && typeof p === 'object' ?
    [p.type, p.content, p.name, p.id, p.arguments, p.response] : p)]);
}

function pair(k, v) {
  return h('div', {}, h('dt', {}, k),
    h('dd', {}, v === null || v === undefined || v === '' ? dash : String(v)));
}
