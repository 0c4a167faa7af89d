// Generations: outcomes per hour, and one generation's timeline (every event with its worker, attempt, cost and
// reasons), its result and the account movements it caused. An unfinished generation refreshes until it ends.
import { enc, get } from './api.js';
import { stackedBars } from './charts.js';
import { $, pairItems, duration, fill, h, note, num, signed, table, time } from './dom.js';

const OUTCOMES = [
  { key: 'completed', label: 'Completed', cls: 's-ok' },
  { key: 'failed', label: 'Failed', cls: 's-bad' },
  { key: 'rejected', label: 'Rejected', cls: 's-warn' },
];
let refresh = null;
let shown = null;

$('#gen-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const id = $('#gen-id').value.trim();
  if (id) location.hash = `#/generations/${enc(id)}`;
});

export function stop() {
  clearTimeout(refresh);
  refresh = null;
  shown = null;
}

export async function show(sessionId) {
  stop();
  void perHour();
  if (!sessionId) {
    $('#generation').hidden = true;
    return null;
  }
  $('#gen-id').value = sessionId;
  shown = sessionId;
  return load(sessionId);
}

async function perHour() {
  try {
    const { hours } = await get('/v1/admin/charts/generations', { hours: 24 });
    const totals = Object.fromEntries(OUTCOMES.map((o) => [o.key, hours.reduce((a, b) => a + b[o.key], 0)]));
    fill(
      $('#per-hour'),
      stackedBars({
        title: 'Generations per hour by outcome, last 24 hours',
        desc: `In 24 hours: ${totals.completed} completed, ${totals.failed} failed, ${totals.rejected} rejected.`,
        caption: 'Finished generations by the hour they finished (UTC), from the session-status projection.',
        buckets: hours.map((b) => ({ t: Date.parse(b.hour), values: b })),
        keys: OUTCOMES,
        yLabel: 'per hour',
      }),
    );
  } catch (err) {
    fill($('#per-hour'), h('p', { class: 'note', role: 'status', text: `Outcomes per hour: ${err.message}` }));
  }
}

function detail(e) {
  const d = e.data;
  const parts = [];
  if (d.attempt !== undefined) parts.push(`attempt ${d.attempt}`);
  if (e.type === 'GenerationRequested') parts.push(`cost ${d.cost} credit(s)`, `account ${d.account}`, `${d.images} image(s)`);
  if (e.type === 'GenerationCharged') parts.push(`held ${d.amount} credit(s)`);
  if (d.leaseUntil) parts.push(`lease until ${time(d.leaseUntil)}`);
  if (d.notBefore) parts.push(`retry not before ${time(d.notBefore)}`);
  if (d.code) parts.push(`code ${d.code}`);
  if (d.reason) parts.push(`reason: ${d.reason}`);
  if (d.message) parts.push(d.message);
  if (e.type === 'GenerationCompleted') {
    parts.push(`provider ${d.provider}`);
    if (d.costUsd !== null && d.costUsd !== undefined) parts.push(`$${Number(d.costUsd).toFixed(4)}`);
    if (d.timings) parts.push(`${duration(d.timings.totalMs)} queue to done`);
  }
  return parts.join(' · ');
}

async function load(sessionId) {
  note($('#gen-note'), '');
  let g;
  let ev;
  try {
    [g, ev] = await Promise.all([get(`/v1/generations/${enc(sessionId)}`), get(`/v1/admin/generations/${enc(sessionId)}/events`)]);
  } catch (err) {
    $('#generation').hidden = true;
    note($('#gen-note'), err.status === 404 ? `No generation ${sessionId}.` : err.message, err.status === 404 ? 'info' : 'error');
    return null;
  }
  if (shown !== sessionId) return null;
  fill($('#gen-title'), `Generation ${sessionId}`);
  $('#gen-title').setAttribute('tabindex', '-1');
  const result = g.result_url ? h('a', { href: g.result_url, target: '_blank', rel: 'noopener noreferrer', text: 'Open the result image' }) : '–';
  const rows = [
    ['Status', h('span', { class: `status st-${g.status}`, id: 'gen-status', text: g.status })],
    ['Ledger status', g.ledger_status],
    ['Account', g.account ? h('a', { href: `#/accounts/${enc(g.account)}`, text: g.account }) : '–'],
    ['Channel', g.channel ?? '–'],
    ['Requested', time(g.requested_at)],
    ['Last event', time(g.updated_at)],
    ['Attempts', String(g.attempt)],
    ['Cost', `${num(g.cost.credits)} credit(s)${g.cost.estimated_usd !== null ? ` · $${Number(g.cost.estimated_usd).toFixed(4)}` : ''}`],
    ['Queue to done', duration(g.processing_time_ms)],
    ['Result', result],
    ['Error', g.error ? `${g.error.code}: ${g.error.message}` : '–'],
  ];
  fill($('#gen-summary'), pairItems(rows));
  fill(
    $('#gen-timeline'),
    table(
      'Timeline',
      [
        ['Revision', (e) => String(e.revision)],
        ['Time', (e) => time(e.at)],
        ['Event', (e) => e.type],
        ['Worker', (e) => e.worker_id],
        ['Details', detail],
      ],
      ev.events,
      { id: 'gen-timeline-table' },
    ),
  );
  fill(
    $('#gen-movements'),
    ev.movements
      ? table(
          `Account movements (${ev.movements_source})`,
          [
            ['Time', (m) => time(m.occurred_at)],
            ['Account', (m) => h('a', { href: `#/accounts/${enc(m.account)}`, text: m.account })],
            ['Movement', (m) => m.event_type],
            ['Amount', (m) => signed(m.amount)],
            ['Balance after', (m) => num(m.balance_after)],
            ['Held after', (m) => num(m.held_after)],
          ],
          ev.movements,
          { id: 'gen-movements-table' },
        )
      : h('p', { class: 'muted', text: `Account movements: ${ev.movements_source}.` }),
  );
  $('#generation').hidden = false;
  // refresh until it has ended and its hold is settled (capture or refund follow the terminal event)
  const holdOpen = ev.movements?.length && ev.movements[ev.movements.length - 1].event_type === 'CreditDeducted';
  if (g.status === 'queued' || g.status === 'processing' || holdOpen) refresh = setTimeout(() => shown === sessionId && void load(sessionId), 1000);
  return $('#gen-title');
}
