// Ops: ledger health (the last verification and "verify now"), projections (checkpoint, head, lag, replay with progress
// and ETA, lag over the last hour) and dead letters (list, re-drive). Jobs are polled while they run.
import { enc, get, post } from './api.js';
import { timeSeries } from './charts.js';
import { $, duration, fill, h, note, num, pairs, table, time } from './dom.js';
import { stop as stopGeneration } from './generations.js';

const POLL_MS = 500;
let poller = null;

/** Stops whatever the previous view was polling. */
export function leave(view) {
  clearTimeout(poller);
  poller = null;
  if (view !== 'generations') stopGeneration();
}

function poll(fn) {
  clearTimeout(poller);
  poller = setTimeout(async () => {
    poller = null;
    await fn();
  }, POLL_MS);
}

function progressText(job) {
  const p = job.progress;
  if (!p.total && !p.done) return job.phase;
  const of = p.total ? ` of ${num(p.total)}` : '';
  const rate = job.rate ? ` · ${num(job.rate)} ${p.unit}/s` : '';
  const eta = job.eta_ms !== null && job.phase !== 'swapping' ? ` · ETA ${duration(job.eta_ms)}` : '';
  return `${job.phase}: ${num(p.done)}${of} ${p.unit}${rate}${eta}`;
}

function showProgress(bar, job) {
  bar.hidden = false;
  const total = job.progress.total || 1;
  bar.max = total;
  bar.value = job.phase === 'swapping' ? total : Math.min(job.progress.done, total);
}

// ---- ledger health

export async function showHealth() {
  await refreshVerify();
  return null;
}

async function refreshVerify() {
  const v = await get('/v1/admin/verify');
  const status = $('#verify-status');
  const bar = $('#verify-progress');
  $('#verify-run').disabled = Boolean(v.running);
  if (v.running) {
    showProgress(bar, v.running);
    status.textContent = `Verifying (started ${time(v.running.started_at)} by ${v.running.trigger}) · ${progressText(v.running)}`;
    poll(refreshVerify);
  } else {
    bar.hidden = true;
    status.textContent = v.last ? `Last verification ${v.last.state === 'done' ? 'finished' : v.last.state} ${time(v.last.finished_at)}.` : '';
  }
  fill($('#verify-last'), lastVerify(v.last, v.read_models));
}

function lastVerify(job, readModels) {
  if (!job) return h('p', { class: 'muted', text: 'No verification since this process started (the scheduled one runs 30 s after start, then hourly).' });
  if (job.state !== 'done') return h('p', { class: 'note error', role: 'alert', text: `The last verification ${job.state}: ${job.error}` });
  const r = job.result;
  const s = r.summary;
  const out = [
    h('h3', { text: r.ok ? 'Ledger OK' : 'Problems found', class: r.ok ? 'ok' : 'bad', id: 'verify-verdict' }),
    pairs([
        ['When', time(job.finished_at)],
        ['How long', duration(job.elapsed_ms)],
        ['Started by', job.trigger],
        ['Events', num(s.events)],
        ['Accounts', num(s.accounts)],
        ['Generations', num(s.generations)],
        ['Open holds', num(s.openHolds)],
        ['Violations', num(r.violation_count)],
        ['Read-model drifts', r.drift_count === null ? (readModels ? 'not checked by this run' : 'no read models in this process') : num(r.drift_count)],
    ]),
  ];
  if (r.violations.length) {
    out.push(
      table(
        `Invariant violations${r.violation_count > r.violations.length ? ` (first ${r.violations.length} of ${r.violation_count})` : ''}`,
        [
          ['Invariant', (v) => String(v.invariant)],
          ['Subject', (v) => v.subject],
          ['What', (v) => v.message],
          ['Stream', (v) => v.stream ?? '–'],
          ['Revision', (v) => (v.revision === undefined ? '–' : String(v.revision))],
          ['Event', (v) => [v.event_type, v.event_id].filter(Boolean).join(' ') || '–'],
        ],
        r.violations,
        { id: 'violations-table' },
      ),
    );
  }
  if (r.drifts?.length) {
    out.push(
      table(
        `Read-model drifts${r.drift_count > r.drifts.length ? ` (first ${r.drifts.length} of ${r.drift_count})` : ''}`,
        [
          ['Projection', (d) => d.projection],
          ['Table', (d) => d.table],
          ['Row', (d) => d.account ?? d.session ?? d.key],
          ['Kind', (d) => d.kind],
          ['Column', (d) => d.column ?? (d.behind === undefined ? '–' : `${d.behind} events behind${d.failure ? `, stuck at ${d.failure.eventId}` : ''}`)],
          ['Expected', (d) => (d.expected === undefined ? '–' : JSON.stringify(d.expected))],
          ['Actual', (d) => (d.actual === undefined ? '–' : JSON.stringify(d.actual))],
        ],
        r.drifts,
      ),
    );
  }
  return out;
}

$('#verify-run').addEventListener('click', async () => {
  try {
    await post('/v1/admin/verify');
  } catch (err) {
    if (err.code !== 'already_running') {
      $('#verify-status').textContent = `Could not start: ${err.message}`;
      return;
    }
  }
  await refreshVerify();
});

// ---- projections

export async function showProjections() {
  try {
    await Promise.all([refreshProjections(), lagChart()]);
  } catch (err) {
    if (err.status === 401) throw err;
    fill($('#projection-table'), h('p', { class: 'note', role: 'status', text: `Projections: ${err.message}` }));
  }
  return null;
}

async function refreshProjections() {
  const [{ projections }, replay] = await Promise.all([get('/v1/projections'), get('/v1/admin/replay')]);
  const running = replay.running;
  fill(
    $('#projection-table'),
    table(
      'Projections',
      [
        ['Projection', (p) => p.projection],
        ['Checkpoint', (p) => p.checkpoint ?? '–'],
        ['Head', (p) => p.head ?? '–'],
        ['Lag (events)', (p) => num(p.lag)],
        ['Events applied', (p) => num(p.events)],
        ['Updated', (p) => time(p.updatedAt)],
        ['Stuck at', (p) => (p.failure ? `${p.failure.eventType} ${p.failure.eventId} (${p.failure.position}): ${p.failure.error}` : '–')],
        ['Replay', (p) => h('button', { type: 'button', 'data-replay': p.projection, disabled: Boolean(running), 'aria-label': `Replay ${p.projection}`, onclick: () => startReplay(p.projection) }, 'Replay')],
      ],
      projections,
      { id: 'projections-table' },
    ),
  );
  const status = $('#replay-status');
  const bar = $('#replay-progress');
  if (running) {
    showProgress(bar, running);
    status.textContent = `Replaying ${running.subject} (started ${time(running.started_at)}) · ${progressText(running)}`;
    poll(refreshProjections);
  } else if (replay.last) {
    bar.hidden = true;
    const l = replay.last;
    status.textContent =
      l.state === 'done'
        ? `Replay of ${l.subject} done: ${num(l.result.events)} events in ${duration(l.result.ms)}, swapped in at ${l.result.checkpoint}.`
        : `Replay of ${l.subject} ${l.state}: ${l.error}`;
  } else {
    bar.hidden = true;
    status.textContent = '';
  }
}

async function startReplay(name) {
  try {
    await post(`/v1/admin/projections/${enc(name)}/replay`);
  } catch (err) {
    if (err.code !== 'already_running') {
      $('#replay-status').textContent = `Could not start the replay: ${err.message}`;
      return;
    }
  }
  await refreshProjections();
}

async function lagChart() {
  try {
    const l = await get('/v1/admin/charts/lag');
    const names = [...new Set(l.samples.flatMap((s) => Object.keys(s.lag)))];
    const now = Date.now();
    const since = Date.parse(l.since);
    const short = now - since < l.window_ms;
    const maxLag = Math.max(0, ...l.samples.flatMap((s) => Object.values(s.lag)));
    fill(
      $('#lag-chart'),
      h('h3', { text: 'Projection lag, last hour' }),
      short ? h('p', { class: 'note', role: 'status', id: 'lag-short', text: `History since ${time(l.since)} only (${duration(now - since)}): this process started then, and lag is sampled in memory every ${l.interval_ms / 1000} s.` }) : null,
      timeSeries({
        title: 'Projection lag over the last hour',
        desc: `${l.samples.length} samples; highest lag ${maxLag} events.`,
        series: names.map((n, i) => ({ label: n, cls: `s${i + 1}`, points: l.samples.map((s) => ({ t: Date.parse(s.at), y: s.lag[n] ?? 0 })) })),
        yLabel: 'events behind',
        from: now - l.window_ms,
        to: now,
      }),
    );
  } catch (err) {
    fill($('#lag-chart'), h('p', { class: 'note', role: 'status', text: `Lag chart: ${err.message}` }));
  }
}

// ---- dead letters

const DEAD_PAGE = 20;
let deadOffset = 0;

export async function showDeadLetters() {
  await refreshDead();
  return null;
}

function sessionOf(raw) {
  try {
    const v = JSON.parse(raw);
    return typeof v?.session_id === 'string' ? v.session_id : null;
  } catch {
    return null;
  }
}

async function refreshDead() {
  let d;
  try {
    d = await get('/v1/admin/dead-letters', { offset: deadOffset, limit: DEAD_PAGE });
  } catch (err) {
    note($('#dead-note'), err.message, err.status === 503 ? 'info' : 'error');
    fill($('#dead-list'));
    return;
  }
  fill(
    $('#dead-list'),
    d.items.length
      ? table(
          `Dead letters (${num(d.total)} in all)`,
          [
            ['Failed at', (x) => time(x.failed_at)],
            ['Worker', (x) => x.worker_id ?? '–'],
            ['Reason', (x) => x.reason],
            ['Session', (x) => sessionOf(x.raw) ?? '–'],
            ['Payload', (x) => h('details', {}, h('summary', {}, `${num(x.raw.length)} characters${x.truncated ? ' (truncated)' : ''}`), h('pre', { text: x.raw }))],
            [
              'Action',
              (x) =>
                x.truncated
                  ? h('span', { class: 'muted', text: 'Payload truncated: cannot be re-driven' })
                  : h('button', { type: 'button', 'aria-label': `Re-drive dead letter ${sessionOf(x.raw) ?? x.id.slice(0, 8)}`, onclick: () => redrive(x) }, 'Re-drive'),
            ],
          ],
          d.items,
          { id: 'dead-table' },
        )
      : h('p', { class: 'muted', text: 'No dead letters.' }),
  );
  $('#dead-prev').disabled = deadOffset === 0;
  $('#dead-next').disabled = deadOffset + DEAD_PAGE >= d.total;
  $('#dead-page').textContent = d.total ? `${deadOffset + 1}–${Math.min(d.total, deadOffset + DEAD_PAGE)} of ${num(d.total)}` : '';
}

async function redrive(x) {
  try {
    await post(`/v1/admin/dead-letters/${x.id}/redrive`);
    const session = sessionOf(x.raw);
    await refreshDead();
    const msg = $('#dead-note');
    note(msg, 'Re-driven: the task is back on the queue.');
    if (session) msg.append(' ', h('a', { href: `#/generations/${enc(session)}`, id: 'dead-redriven-link', text: `Follow generation ${session}` }));
  } catch (err) {
    note($('#dead-note'), err.message, 'error');
  }
}

$('#dead-refresh').addEventListener('click', () => void refreshDead());
$('#dead-prev').addEventListener('click', () => {
  deadOffset = Math.max(0, deadOffset - DEAD_PAGE);
  void refreshDead();
});
$('#dead-next').addEventListener('click', () => {
  deadOffset += DEAD_PAGE;
  void refreshDead();
});
