// DOM helpers. Data always goes in as text (textContent), never as markup: payloads and reasons are untrusted.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) el.append(c instanceof Node ? c : String(c));
  return el;
}

export const $ = (sel, root = document) => root.querySelector(sel);

export function fill(el, ...children) {
  el.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}

const nf = new Intl.NumberFormat('en-US');
export const num = (n) => (n === null || n === undefined ? '–' : nf.format(n));
export const signed = (n) => (n > 0 ? `+${nf.format(n)}` : nf.format(n));

/** `2026-02-17 10:11:12 UTC`: one unambiguous form for times across the page. */
export function time(iso) {
  if (!iso) return '–';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : `${d.toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}

export function duration(ms) {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '–';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = Math.round(ms / 1000);
  const m = Math.floor(s / 60);
  return m ? `${m}:${String(s % 60).padStart(2, '0')} min` : `${s} s`;
}

/** A table with a caption and column headers; `cols`: [header, (row) => cell content]. */
export function table(caption, cols, rows, attrs = {}) {
  return h(
    'table',
    attrs,
    h('caption', { text: caption }),
    h('thead', {}, h('tr', {}, cols.map(([label]) => h('th', { scope: 'col', text: label })))),
    h('tbody', {}, rows.map((r) => h('tr', {}, cols.map(([, cell]) => h('td', {}, cell(r) ?? ''))))),
  );
}

/** Name/value pairs as a <dl>, one group per pair (so the grid keeps each value under its name). */
export const pairItems = (list) => list.map(([k, v]) => h('div', {}, h('dt', { text: k }), h('dd', {}, v)));
export const pairs = (list) => h('dl', { class: 'totals' }, pairItems(list));

/** A status line in a live region (errors in role=alert). */
export function note(el, text, kind = 'info') {
  el.textContent = text;
  el.className = `note ${kind}`;
  el.hidden = !text;
  el.setAttribute('role', kind === 'error' ? 'alert' : 'status');
}
