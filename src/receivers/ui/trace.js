// trace.js - the Trace page: the span tree as a waterfall on a time axis, and
// the selected span beside it.
//
// Spans come from GET /api/v1/traces/{id} (by start time). The tree links each
// span to its parent_span_id; a span whose parent is not in the answer is a
// root. Rows are the tree in depth-first order, children by start time. The
// view window [lo, hi] (ms) is the trace's extent, or a span's after "Zoom to
// span"; bars outside it are clipped. Keyboard: Up/Down move between rows,
// Left/Right collapse/expand, Home/End, Enter or Space select.
import { get } from './api.js';
import { h, fill, fmtTime, fmtMs, fmtCost, fmtInt, typeOf, show, dash } from './dom.js';

const NS = 1e6; // ns per ms

export async function render(main, args, params, ctx) {
  const id = args[0] || '';
  const project = params.get('project_id') || '';
  fill(main, h('p', {}, 'Loading trace\u2026'));
  const r = await get('/api/v1/traces/' + encodeURIComponent(id), { project_id: project });
  if (ctx.stale()) return;
  if (!r.spans.length) {
    fill(main, h('h1', {}, r.trace.root_span_name || r.trace.trace_id),
      h('p', {}, 'This trace has no spans.'));
    return;
  }
  new TraceView(main, r, params, ctx);
}

class TraceView {
  constructor(main, r, params, ctx) {
    this.ctx = ctx;
    this.trace = r.trace;
    this.params = params;
    this.spans = r.spans.map((s) => ({
      s, start: s.start_time_unix_nano / NS,
      end: (s.end_time_unix_nano > 0 ? s.end_time_unix_nano : s.start_time_unix_nano) / NS,
      kids: [], depth: 0, open: true,
    }));
    const byId = new Map(this.spans.map((n) => [n.s.span_id, n]));
    this.byId = byId;
    this.roots = [];
    for (const n of this.spans) {
      const parent = n.s.parent_span_id && n.s.parent_span_id !== n.s.span_id ?
        byId.get(n.s.parent_span_id) : null;
      (parent ? parent.kids : this.roots).push(n);
    }
    const order = (a, b) => a.start - b.start || (a.s.span_id < b.s.span_id ? -1 : 1);
    this.roots.sort(order);
    for (const n of this.spans) n.kids.sort(order);
    this.lo = Math.min(...this.spans.map((n) => n.start));
    this.hi = Math.max(...this.spans.map((n) => n.end));
    this.full = [this.lo, this.hi];
    this.selected = byId.get(params.get('span')) || this.roots[0] || null;

    const t = this.trace;
    this.rowsEl = h('div', { class: 'wf-rows', role: 'tree', 'aria-label': 'Span tree' });
    this.axisEl = h('div', { class: 'wf-axis', 'aria-hidden': 'true' });
    this.detailEl = h('aside', { id: 'span-detail', class: 'detail',
      'aria-label': 'Selected span' });
    this.zoomOut = h('button', { type: 'button', id: 'zoom-reset', disabled: true,
      onclick: () => this.zoom(null) }, 'Reset zoom');
    fill(main,
      h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' },
        h('a', { href: '#/traces' }, 'Traces'), ' / ',
        h('span', {}, t.root_span_name || t.trace_id)),
      h('h1', {}, t.root_span_name || t.trace_id),
      h('dl', { class: 'summary trace-summary' },
        pair('Trace', t.trace_id), pair('Project', t.project_id), pair('Service', t.service_name),
        pair('Started', fmtTime(t.started_at)), pair('Duration', fmtMs(t.duration_ms)),
        pair('Spans', r.spans_truncated ? `${r.span_count} of ${r.spans_total}` :
          fmtInt(r.span_count)),
        pair('Status', t.status),
        pair('Tokens', `${fmtInt(t.input_tokens)} in, ${fmtInt(t.output_tokens)} out`),
        pair('Cost', fmtCost(t.cost_usd)),
        t.session_id ? pair('Session', t.session_id) : null,
        t.user_id ? pair('User', t.user_id) : null),
      h('div', { class: 'trace-layout' },
        h('section', { class: 'waterfall', 'aria-label': 'Waterfall' },
          h('div', { class: 'wf-tools' }, this.zoomOut, legend()),
          this.axisEl, this.rowsEl),
        this.detailEl));
    this.rowsEl.addEventListener('keydown', (ev) => this.key(ev));
    this.draw();
    this.showDetail();
  }

  visible() {
    const out = [];
    const walk = (n, depth) => {
      n.depth = depth;
      out.push(n);
      if (n.open) for (const k of n.kids) walk(k, depth + 1);
    };
    for (const r of this.roots) walk(r, 0);
    return out;
  }

  draw() {
    const span = Math.max(this.hi - this.lo, 1e-6);
    const pct = (ms) => ((ms - this.lo) / span) * 100;
    fill(this.axisEl, [0, 0.25, 0.5, 0.75, 1].map((f) =>
      h('span', { class: 'tick', dataset: { f } }, tick((this.lo - this.full[0]) + f * span))));
    for (const tk of this.axisEl.children) tk.style.left = `${tk.dataset.f * 100}%`;
    this.rows = this.visible();
    fill(this.rowsEl, this.rows.map((n) => {
      const s = n.s;
      const err = s.status === 'error';
      const sel = n === this.selected;
      const toggle = n.kids.length ?
        h('button', { type: 'button', class: 'twisty', tabindex: -1,
          'aria-label': (n.open ? 'Collapse ' : 'Expand ') + s.name,
          onclick: (ev) => { ev.stopPropagation(); this.toggle(n); } },
        n.open ? '\u25be' : '\u25b8') :
        h('span', { class: 'twisty' });
      const left = Math.max(pct(n.start), 0), right = Math.min(pct(n.end), 100);
      const bar = h('span', { class: `wf-bar type-${s.span_type}${err ? ' error' : ''}`,
        title: `${s.name}: ${fmtMs(s.duration_ms)}` });
      const out = right < 0 || left > 100;
      bar.style.left = `${Math.min(left, 100)}%`;
      bar.style.width = out ? '0' : `max(2px, ${Math.max(right - left, 0)}%)`;
      const label = h('div', { class: 'wf-label' }, toggle,
        h('span', { class: `chip type-${s.span_type}` }, s.span_type),
        h('span', { class: 'wf-name' }, s.name),
        err ? h('span', { class: 'err-mark', title: 'error' }, '\u2716',
          h('span', { class: 'visually-hidden' }, ' error')) : null);
      label.style.paddingLeft = `${n.depth * 14}px`;
      const row = h('div', {
        class: `wf-row${sel ? ' selected' : ''}${err ? ' is-error' : ''}`, role: 'treeitem',
        tabindex: sel ? 0 : -1, 'aria-level': n.depth + 1, 'aria-selected': sel ? 'true' : 'false',
        'aria-expanded': n.kids.length ? String(n.open) : null, dataset: { span: s.span_id },
        onclick: () => this.select(n, true),
      }, label, h('div', { class: 'wf-track' }, bar,
        h('span', { class: 'wf-dur' }, fmtMs(s.duration_ms))));
      return row;
    }));
  }

  focusRow(n) {
    const el = this.rowsEl.querySelector(`[data-span="${CSS.escape(n.s.span_id)}"]`);
    if (el) el.focus();
  }

  select(n, focus) {
    this.selected = n;
    const p = new URLSearchParams(this.params);
    p.set('span', n.s.span_id);
    history.replaceState(null, '', this.ctx.hashOf('trace', [this.trace.trace_id], p));
    // only two rows change: no redraw (a 1,000-span tree takes ~0.2 s to rebuild)
    for (const el of this.rowsEl.querySelectorAll('.wf-row.selected')) mark(el, false);
    const el = this.rowsEl.querySelector(`[data-span="${CSS.escape(n.s.span_id)}"]`);
    if (el) mark(el, true);
    else this.draw();
    this.showDetail();
    if (focus) this.focusRow(n);
  }

  toggle(n) {
    n.open = !n.open;
    if (!n.open && this.selected && isUnder(this.selected, n)) this.selected = n;
    this.draw();
    this.focusRow(n);
  }

  zoom(n) {
    if (n) {
      const pad = Math.max((n.end - n.start) * 0.02, 1e-3);
      [this.lo, this.hi] = [n.start - pad, n.end + pad];
    } else {
      [this.lo, this.hi] = this.full;
    }
    this.zoomOut.disabled = !n;
    this.draw();
  }

  key(ev) {
    const i = this.rows.indexOf(this.selected);
    const n = this.selected;
    let to = null;
    switch (ev.key) {
      case 'ArrowDown': to = this.rows[Math.min(i + 1, this.rows.length - 1)]; break;
      case 'ArrowUp': to = this.rows[Math.max(i - 1, 0)]; break;
      case 'Home': to = this.rows[0]; break;
      case 'End': to = this.rows[this.rows.length - 1]; break;
      case 'ArrowRight': // expand, or go to the first child
        if (n && n.kids.length && !n.open) this.toggle(n);
        else if (n && n.kids.length) to = n.kids[0];
        break;
      case 'ArrowLeft': // collapse, or go to the parent
        if (n && n.kids.length && n.open) this.toggle(n);
        else if (n) to = this.byId.get(n.s.parent_span_id) || null;
        break;
      case 'Enter': case ' ': if (n) this.select(n, true); break;
      default: return;
    }
    ev.preventDefault();
    if (to) this.select(to, true);
  }

  showDetail() {
    const n = this.selected;
    if (!n) return fill(this.detailEl, h('p', {}, 'No span selected.'));
    const s = n.s;
    const llm = s.span_type === 'llm' || s.span_type === 'embedding' || s.llm_model ||
      s.input_messages || s.output_messages;
    fill(this.detailEl,
      h('h2', { id: 'span-name' }, s.name),
      h('div', { class: 'detail-tools' },
        h('button', { type: 'button', id: 'zoom-span', onclick: () => this.zoom(n) },
          'Zoom to span')),
      h('dl', { class: 'summary' },
        pair('Type', s.span_type), pair('Kind', s.kind), pair('Service', s.service_name),
        pair('Status', s.status),
        s.status_message ? pair('Status message', s.status_message) : null,
        pair('Started', fmtTime(s.started_at)), pair('Duration', fmtMs(s.duration_ms)),
        pair('Span ID', s.span_id), pair('Parent', s.parent_span_id || dash)),
      llm ? llmSection(s) : null,
      s.input_messages || s.output_messages ? conversation(s) : null,
      section('Attributes', kvTable(s.attributes, 'attributes')),
      section('Events', events(s.events, n.start)),
      section('Links', links(s.links, s.project_id)),
      section('Resource', kvTable(s.resource, 'resource')),
      s.scope && s.scope.name ? section('Scope',
        h('p', {}, `${s.scope.name} ${s.scope.version || ''}`),
        hasKeys(s.scope.attributes) ? kvTable(s.scope.attributes, 'scope') : null) : null);
  }
}

function mark(row, on) {
  row.classList.toggle('selected', on);
  row.setAttribute('aria-selected', on ? 'true' : 'false');
  row.tabIndex = on ? 0 : -1;
}

function tick(ms) {
  return Math.abs(ms) < 1e-9 ? '0' : fmtMs(ms);
}

function isUnder(n, anc) {
  for (const k of anc.kids) if (k === n || isUnder(n, k)) return true;
  return false;
}

function pair(k, v) {
  return h('div', {}, h('dt', {}, k),
    h('dd', {}, v === null || v === undefined || v === '' ? dash : String(v)));
}

function hasKeys(o) {
  return !!o && typeof o === 'object' && Object.keys(o).length > 0;
}

function section(title, ...body) {
  return h('section', { class: 'detail-section' }, h('h3', {}, title), body);
}

function legend() {
  return h('ul', { class: 'legend', 'aria-label': 'Span types' },
    ['agent', 'llm', 'tool', 'retrieval', 'embedding', 'custom'].map((t) =>
      h('li', {}, h('span', { class: `swatch type-${t}` }), t)));
}

function kvTable(obj, cls) {
  const keys = obj && typeof obj === 'object' ? Object.keys(obj) : [];
  if (!keys.length) return h('p', { class: 'muted' }, 'None.');
  return h('table', { class: `kv ${cls}` },
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Key'), h('th', { scope: 'col' }, 'Type'),
      h('th', { scope: 'col' }, 'Value'))),
    h('tbody', {}, keys.sort().map((k) => h('tr', {},
      h('th', { scope: 'row' }, k), h('td', { class: 'type' }, typeOf(obj[k])),
      h('td', { class: 'value' }, show(obj[k]))))));
}

function events(list, spanStart) {
  if (!Array.isArray(list) || !list.length) return h('p', { class: 'muted' }, 'None.');
  return h('ol', { class: 'events' }, list.map((e) => {
    const ns = e.time_unix_nano ?? e.timestamp_unix_nano;
    const at = typeof ns === 'number' ? `+${fmtMs(ns / NS - spanStart)}` : e.timestamp || '';
    return h('li', {}, h('span', { class: 'ev-name' }, e.name || '(event)'), ' ',
      h('span', { class: 'muted' }, at),
      hasKeys(e.attributes) ? kvTable(e.attributes, 'event-attrs') : null);
  }));
}

// Links to spans of other traces (or this one), each opening that trace in
// this span's project.
function links(list, project) {
  if (!Array.isArray(list) || !list.length) return h('p', { class: 'muted' }, 'None.');
  const href = (l) => '#/trace/' + encodeURIComponent(l.trace_id) + '?' +
    new URLSearchParams({ project_id: project || '', span: l.span_id || '' });
  return h('ul', { class: 'links' }, list.map((l) => h('li', {},
    'trace ', l.trace_id ? h('a', { href: href(l), class: 'link-trace' }, l.trace_id) : dash,
    ` span ${l.span_id || dash}`,
    hasKeys(l.attributes) ? kvTable(l.attributes, 'link-attrs') : null)));
}

function llmSection(s) {
  return section('LLM', h('dl', { class: 'summary llm' },
    pair('Model', s.llm_model), pair('Request model', s.llm_request_model),
    pair('Provider', s.llm_provider),
    pair('Input tokens', fmtInt(s.input_tokens)), pair('Output tokens', fmtInt(s.output_tokens)),
    pair('Cached tokens (read)', fmtInt(s.cache_read_tokens)),
    pair('Cached tokens (write)', fmtInt(s.cache_write_tokens)),
    pair('Reasoning tokens', fmtInt(s.reasoning_tokens)),
    pair('Cost', fmtCost(s.cost_usd)),
    pair('Cost in / out', `${fmtCost(s.cost_input_usd)} / ${fmtCost(s.cost_output_usd)}`),
    pair('Cost source', s.cost_source), pair('Latency', fmtMs(s.duration_ms))));
}

// Input then output messages (OTel GenAI 1.37 shape: role, parts, finish_reason).
function conversation(s) {
  const msgs = [];
  for (const [side, list] of [['input', s.input_messages], ['output', s.output_messages]])
    if (Array.isArray(list)) for (const m of list) msgs.push(message(m, side));
  return section('Conversation', h('ol', { class: 'conversation' }, msgs));
}

function message(m, side) {
  const role = m && typeof m.role === 'string' ? m.role : 'unknown';
  const parts = m && Array.isArray(m.parts) ? m.parts : [];
  return h('li', { class: `msg role-${role.replace(/[^a-z_]/gi, '')} side-${side}` },
    h('div', { class: 'msg-head' }, h('span', { class: 'role' }, role),
      side === 'output' ? h('span', { class: 'muted' }, ' (output)') : null,
      m && m.finish_reason ? h('span', { class: 'muted' }, ` \u00b7 ${m.finish_reason}`) : null),
    parts.map(part));
}

function part(p) {
  if (!p || typeof p !== 'object') return h('pre', { class: 'part' }, show(p));
  switch (p.type) {
    case 'text':
    case 'reasoning':
      return h('pre', { class: `part part-${p.type}` }, show(p.content ?? ''));
    case 'tool_call':
      return h('div', { class: 'part part-tool-call' },
        h('span', { class: 'muted' }, 'tool call '), h('code', {}, p.name || '?'),
        p.id ? h('span', { class: 'muted' }, ` (${p.id})`) : null,
        h('pre', {}, show(p.arguments ?? '')));
    case 'tool_call_response':
      return h('div', { class: 'part part-tool-result' },
        h('span', { class: 'muted' }, 'tool result'),
        p.id ? h('span', { class: 'muted' }, ` (${p.id})`) : null,
        h('pre', {}, show(p.response ?? '')));
    default:
      return h('pre', { class: 'part' }, show(p));
  }
}
