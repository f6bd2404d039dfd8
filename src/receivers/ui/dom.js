// dom.js - the one way the viewer builds markup: elements and text nodes.
//
// Every string that came from the API (a span name, an attribute value, a
// message) becomes a text node, so it is shown and never parsed as HTML; this
// module has no innerHTML, and neither may its callers.

// h('tr', {class: 'x', onclick: fn}, child, ...): an element. Attributes are set
// with setAttribute (on* keys become listeners); children are nodes, strings
// (text nodes), arrays of them, or null/false (skipped).
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// Replaces the children of |el| with |children|.
export function fill(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

// Formatting of API values; null/undefined show as an en dash.
export const dash = '\u2013';
export function fmtTime(iso) {
  if (!iso) return dash;
  const d = new Date(iso);
  if (isNaN(d)) return String(iso);
  const p = (n, w = 2) => String(n).padStart(w, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ` +
    `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}
export function fmtMs(ms) {
  if (ms === null || ms === undefined) return dash;
  if (ms < 1) return `${(ms * 1000).toFixed(0)} \u00b5s`;
  if (ms < 1000) return `${ms.toFixed(ms < 10 ? 2 : 0)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(2)} s`;
  return `${(ms / 60000).toFixed(1)} min`;
}
export function fmtCost(usd) {
  if (usd === null || usd === undefined) return dash;
  return '$' + (usd >= 1 ? usd.toFixed(2) : usd.toPrecision(3));
}
export function fmtInt(n) {
  return n === null || n === undefined ? dash : Number(n).toLocaleString('en-US');
}

// The type of a JSON attribute value as the collector kept it.
export function typeOf(v) {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'int' : 'double';
  if (typeof v === 'boolean') return 'bool';
  if (typeof v === 'object') return 'map';
  return 'string';
}
export function show(v) {
  return typeof v === 'string' ? v : JSON.stringify(v);
}

// Announces |msg| to screen readers (the status region).
export function announce(msg) {
  const s = document.getElementById('live');
  if (s) s.textContent = msg;
}
