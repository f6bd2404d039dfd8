// app.js - the trace viewer's entry: routes the URL hash to a page, asks for a
// key when the API answers 401.
//
// Routes (the hash keeps the whole view in the URL, so a view can be shared):
//   #/traces?<filters>            traces.js
//   #/trace/<id>?project_id=&span= trace.js
// To add a page: a module exporting render(main, args, params, ctx) and a line
// in PAGES.
import { AuthError, key } from './api.js';
import { h, fill, announce } from './dom.js';
import * as traces from './traces.js';
import * as trace from './trace.js';

const PAGES = {
  traces: { mod: traces, title: 'Traces' },
  trace: { mod: trace, title: 'Trace' },
};

let generation = 0;
let shownPage = null; // the page on screen, to move focus only when it changes

// The hash as {page, args, params}.
export function parseHash() {
  const raw = location.hash.replace(/^#/, '') || '/traces';
  const q = raw.indexOf('?');
  const path = q < 0 ? raw : raw.slice(0, q);
  const params = new URLSearchParams(q < 0 ? '' : raw.slice(q + 1));
  const parts = path.split('/').filter(Boolean).map((p) => {
    try {
      return decodeURIComponent(p);
    } catch {
      return p;
    }
  });
  return { page: parts[0] || 'traces', args: parts.slice(1), params };
}

// The hash of |page| with |args| and |params| (empty values left out).
export function hashOf(page, args = [], params = {}) {
  const sp = new URLSearchParams();
  const entries = params instanceof URLSearchParams ? params.entries() : Object.entries(params);
  for (const [k, v] of entries) if (v !== undefined && v !== null && v !== '') sp.set(k, v);
  const qs = sp.toString();
  return '#/' + [page, ...args].map(encodeURIComponent).join('/') + (qs ? '?' + qs : '');
}

async function render() {
  const gen = ++generation;
  const main = document.getElementById('main');
  delete main.dataset.ready; // set again once the page has its data (tests wait on it)
  const { page, args, params } = parseHash();
  const p = PAGES[page] || PAGES.traces;
  document.title = `${p.title} \u00b7 Prela`;
  document.getElementById('signout').hidden = !key.get();
  for (const a of document.querySelectorAll('nav a'))
    a.toggleAttribute('aria-current', a.getAttribute('href') === '#/' + page);
  const ctx = { stale: () => gen !== generation, go: (hash) => (location.hash = hash), hashOf };
  try {
    await p.mod.render(main, args, params, ctx);
    if (!ctx.stale()) {
      main.dataset.ready = page;
      announce(`${p.title} loaded`);
      // a new page: start at its top, focus on its content (not on a link now gone)
      if (shownPage !== null && shownPage !== page) {
        window.scrollTo(0, 0);
        main.focus({ preventScroll: true });
      }
      shownPage = page;
    }
  } catch (e) {
    if (ctx.stale()) return;
    if (e instanceof AuthError) signIn(main, e.message);
    else fill(main, h('p', { class: 'error', role: 'alert' }, `Could not load: ${e.message}`));
  }
}

function signIn(main, why) {
  const had = key.get();
  const input = h('input', { id: 'key', type: 'password', name: 'key', autocomplete: 'off',
    required: true, 'aria-describedby': 'key-help' });
  const form = h('form', { class: 'signin', id: 'signin' },
    h('h1', {}, 'Sign in'),
    h('p', { id: 'key-help' }, had ? `The key was refused (${why}). ` : '',
      'This collector needs a read key. It is kept in this tab only (session storage) ',
      'and sent as the X-API-Key header.'),
    h('label', { for: 'key' }, 'Read key'),
    input,
    h('button', { type: 'submit' }, 'Sign in'));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    key.set(input.value.trim());
    render();
  });
  fill(main, form);
  main.dataset.ready = 'signin';
  input.focus();
}

document.getElementById('signout').addEventListener('click', () => {
  key.clear();
  render();
});
window.addEventListener('hashchange', render);
render();
