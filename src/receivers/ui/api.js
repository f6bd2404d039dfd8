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
