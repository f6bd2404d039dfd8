// api.js - calls to the query API (same origin), with the read key.
//
// The key lives in sessionStorage (gone when the tab closes) and travels as the
// X-API-Key header, never in a URL. A 401 throws AuthError: the app then asks
// for a key (app.js) and renders again.

const KEY = 'prela.readKey';

export class AuthError extends Error {}
export class ApiError extends Error {
  constructor(status, detail) {
    super(detail || `HTTP ${status}`);
    this.status = status;
  }
}

export const key = {
  get: () => sessionStorage.getItem(KEY),
  set: (k) => sessionStorage.setItem(KEY, k),
  clear: () => sessionStorage.removeItem(KEY),
};

// GET |path| with query |params| (empty values left out); the parsed JSON.
export async function get(path, params = {}) {
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(params))
    if (v !== undefined && v !== null && v !== '') url.searchParams.set(k, v);
  const headers = { Accept: 'application/json' };
  const k = key.get();
  if (k) headers['X-API-Key'] = k;
  const r = await fetch(url, { headers, cache: 'no-store', credentials: 'omit' });
  if (r.status === 401) throw new AuthError((await detail(r)) || 'a key is required');
  if (!r.ok) throw new ApiError(r.status, await detail(r));
  return r.json();
}

async function detail(r) {
  try {
    return (await r.json()).detail;
  } catch {
    return r.statusText;
  }
}

// Reads the Server-Sent Events of GET |path| (the live tail) with the key as a
// header (EventSource cannot send one, and the key never goes in a URL).
// Calls onComment(text) for each comment line (": ready") and onEvent(type,
// data) for each event; resolves when the stream ends, throws AuthError /
// ApiError as get() does. |signal| (an AbortSignal) stops it.
export async function stream(path, params, { onEvent, onComment, signal }) {
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(params))
    if (v !== undefined && v !== null && v !== '') url.searchParams.set(k, v);
  const headers = { Accept: 'text/event-stream' };
  const k = key.get();
  if (k) headers['X-API-Key'] = k;
  const r = await fetch(url, { headers, cache: 'no-store', credentials: 'omit', signal });
  if (r.status === 401) throw new AuthError((await detail(r)) || 'a key is required');
  if (!r.ok) throw new ApiError(r.status, await detail(r));
  const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value;
    let end;
    while ((end = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, end);
      buf = buf.slice(end + 2);
      let type = 'message';
      const data = [];
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) onComment && onComment(line.slice(1).trim());
        else if (line.startsWith('event:')) type = line.slice(6).trim();
        else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
      }
      if (data.length) onEvent(type, data.join('\n'));
    }
  }
}
