// Hand-written SVG charts: a time series (lines, optional min/max band, step or straight) and stacked bars per hour.
// Each is a <figure> whose <svg role="img"> carries a title and a text summary for screen readers.
import { h } from './dom.js';

const NS = 'http://www.w3.org/2000/svg';
const W = 720;
const H = 220;
const PAD = { l: 56, r: 12, t: 24, b: 28 };
let ids = 0;

function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) el.setAttribute(k, String(v));
  for (const c of children.flat()) if (c) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

/** Round ticks covering [lo, hi]; whole numbers only (credits, events, generations). */
function niceTicks(lo, hi, count = 5) {
  if (hi <= lo) hi = lo + 1;
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = Math.max(1, [1, 2, 5, 10].map((m) => m * mag).find((st) => st >= raw) ?? 10 * mag);
  const first = Math.floor(lo / step) * step;
  const ticks = [];
  for (let v = first; ; v += step) {
    ticks.push(Number(v.toPrecision(12)));
    if (v >= hi) return ticks; // the top tick is at or above the highest value
  }
}

const STEPS = [1, 5, 10, 30, 60, 300, 600, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 7 * 86400, 30 * 86400].map((x) => x * 1000);

/** Time ticks on round UTC boundaries (whole minutes, hours, days). */
function timeTicks(t0, t1, count = 6) {
  const step = STEPS.find((st) => (t1 - t0) / st <= count) ?? Math.ceil((t1 - t0) / count / 86_400_000) * 86_400_000;
  const ticks = [];
  for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) ticks.push(t);
  return ticks;
}

function timeLabel(t, span) {
  const iso = new Date(t).toISOString();
  if (span > 3 * 86_400_000) return iso.slice(0, 10);
  if (span > 86_400_000) return `${iso.slice(5, 10)} ${iso.slice(11, 16)}`;
  return span > 600_000 ? iso.slice(11, 16) : iso.slice(11, 19);
}

function frame(title, desc) {
  const id = `chart-${++ids}`;
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-labelledby': `${id}-t ${id}-d`, class: 'chart', preserveAspectRatio: 'xMidYMid meet' });
  svg.append(s('title', { id: `${id}-t` }, title), s('desc', { id: `${id}-d` }, desc));
  return svg;
}

function axes(svg, xs, ys, x, y, span, yLabel) {
  const g = s('g', { class: 'axis' });
  for (const v of ys) {
    g.append(s('line', { x1: PAD.l, x2: W - PAD.r, y1: y(v), y2: y(v), class: 'grid' }));
    g.append(s('text', { x: PAD.l - 6, y: y(v) + 4, 'text-anchor': 'end' }, Intl.NumberFormat('en-US', { notation: 'compact' }).format(v)));
  }
  for (const t of xs) g.append(s('text', { x: x(t), y: H - 8, 'text-anchor': 'middle' }, timeLabel(t, span)));
  g.append(s('text', { x: 4, y: 12, 'text-anchor': 'start', class: 'unit' }, yLabel));
  svg.append(g);
}

const legend = (items) => h('ul', { class: 'legend' }, items.map(([label, cls]) => h('li', {}, h('span', { class: `swatch ${cls}`, 'aria-hidden': 'true' }), label)));

/**
 * series: [{ label, cls, points: [{ t (ms), y }] }]; band: [{ t, low, high }] drawn behind the first series.
 * `step`: the value holds until the next point (balances); else straight segments.
 */
export function timeSeries({ title, desc, caption, series, band, yLabel, step = false, from, to }) {
  const all = series.flatMap((x) => x.points);
  const svg = frame(title, desc);
  const fig = h('figure', { class: 'chart-box' }, svg);
  if (all.length === 0) {
    svg.append(s('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'empty' }, 'no data yet'));
    return fig;
  }
  const t0 = from ?? Math.min(...all.map((p) => p.t));
  const t1 = Math.max(to ?? 0, ...all.map((p) => p.t), t0 + 1);
  const ys = [...all.map((p) => p.y), ...(band ?? []).flatMap((b) => [b.low, b.high])];
  const yt = niceTicks(Math.min(0, ...ys), Math.max(...ys));
  const [y0, y1] = [yt[0], yt[yt.length - 1]];
  const x = (t) => PAD.l + ((t - t0) / (t1 - t0)) * (W - PAD.l - PAD.r);
  const y = (v) => H - PAD.b - ((v - y0) / (y1 - y0 || 1)) * (H - PAD.t - PAD.b);
  axes(svg, timeTicks(t0, t1), yt, x, y, t1 - t0, yLabel);
  if (band?.length) {
    const top = band.map((b) => `${x(b.t).toFixed(1)},${y(b.high).toFixed(1)}`);
    const bottom = band.map((b) => `${x(b.t).toFixed(1)},${y(b.low).toFixed(1)}`).reverse();
    svg.append(s('polygon', { points: [...top, ...bottom].join(' '), class: 'band' }));
  }
  for (const sr of series) {
    let d = '';
    sr.points.forEach((p, i) => {
      const px = x(p.t).toFixed(1);
      const py = y(p.y).toFixed(1);
      d += i === 0 ? `M${px},${py}` : step ? `H${px}V${py}` : `L${px},${py}`;
    });
    if (step && sr.points.length) d += `H${x(t1).toFixed(1)}`;
    svg.append(s('path', { d, class: `line ${sr.cls}` }));
    if (sr.points.length === 1) svg.append(s('circle', { cx: x(sr.points[0].t), cy: y(sr.points[0].y), r: 3, class: `dot ${sr.cls}` }));
  }
  if (series.length > 1) fig.append(legend(series.map((sr) => [sr.label, sr.cls])));
  if (caption) fig.append(h('figcaption', { text: caption }));
  return fig;
}

/** buckets: [{ t (ms, start of the hour), values: { key: n } }]; keys: [{ key, label, cls }], stacked bottom-up. */
export function stackedBars({ title, desc, caption, buckets, keys, yLabel }) {
  const svg = frame(title, desc);
  const fig = h('figure', { class: 'chart-box' }, svg, legend(keys.map((k) => [k.label, k.cls])));
  const totals = buckets.map((b) => keys.reduce((a, k) => a + (b.values[k.key] ?? 0), 0));
  const yt = niceTicks(0, Math.max(1, ...totals), 4);
  const top = yt[yt.length - 1];
  const slot = (W - PAD.l - PAD.r) / Math.max(1, buckets.length);
  const x = (t) => PAD.l + ((t - buckets[0].t) / 3_600_000) * slot;
  const y = (v) => H - PAD.b - (v / top) * (H - PAD.t - PAD.b);
  const span = buckets.length * 3_600_000;
  const every = Math.ceil(buckets.length / 8);
  axes(svg, buckets.filter((_, i) => i % every === 0).map((b) => b.t), yt, (t) => x(t) + slot / 2, y, span, yLabel);
  for (const b of buckets) {
    let acc = 0;
    for (const k of keys) {
      const v = b.values[k.key] ?? 0;
      if (!v) continue;
      svg.append(
        s('rect', { x: x(b.t) + slot * 0.1, width: slot * 0.8, y: y(acc + v), height: y(acc) - y(acc + v), class: `bar ${k.cls}` },
          s('title', {}, `${new Date(b.t).toISOString().slice(0, 13)}:00 UTC: ${v} ${k.label.toLowerCase()}`)),
      );
      acc += v;
    }
  }
  if (caption) fig.append(h('figcaption', { text: caption }));
  return fig;
}
