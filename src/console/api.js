// Calls to the service's JSON API. The token lives in this tab's sessionStorage only (never a URL, never a cookie) and
// goes out as a bearer header; without API_TOKEN the service answers loopback callers and no token is needed.
const KEY = 'wearon.console.token';

export const token = {
  get: () => sessionStorage.getItem(KEY),
  set: (t) => sessionStorage.setItem(KEY, t),
  clear: () => sessionStorage.removeItem(KEY),
};

export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

function headers(extra = {}) {
  const h = { accept: 'application/json', ...extra };
  const t = token.get();
  if (t) h.authorization = `Bearer ${t}`;
  return h;
}

async function failure(res) {
  let body = null;
  try {
    body = await res.json();
  } catch {
    // not JSON: keep the status line
  }
  const e = body?.error;
  return new ApiError(res.status, e?.code ?? `http_${res.status}`, e?.message ?? res.statusText, e?.details);
}

const q = (params) => {
  const s = new URLSearchParams();
  for (const [k, v] of Object.entries(params ?? {})) if (v !== undefined && v !== null && v !== '') s.set(k, String(v));
  const t = s.toString();
  return t ? `?${t}` : '';
};

export async function get(path, params) {
  const res = await fetch(path + q(params), { headers: headers(), cache: 'no-store' });
  if (!res.ok) throw await failure(res);
  return res.json();
}

/** State-changing calls: JSON body and the console header, which a cross-site page cannot send without a preflight. */
export async function post(path, body = {}) {
  const res = await fetch(path, {
    method: 'POST',
    headers: headers({ 'content-type': 'application/json', 'x-wearon-console': '1' }),
    body: JSON.stringify(body),
    cache: 'no-store',
  });
  if (!res.ok) throw await failure(res);
  return res.json();
}

/** A file download through fetch (so the token stays in a header), handed to the browser as a blob. */
export async function download(path, params, filename) {
  const res = await fetch(path + q(params), { headers: headers({ accept: 'text/csv' }), cache: 'no-store' });
  if (!res.ok) throw await failure(res);
  const url = URL.createObjectURL(await res.blob());
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

export const enc = encodeURIComponent;
