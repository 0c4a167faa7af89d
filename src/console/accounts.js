// Accounts: find one (user, store, or a shopper by store and email), its balance and holds, the balance over time,
// and the statement with filters, paging and CSV export.
import { download, enc, get, post } from './api.js';
import { timeSeries } from './charts.js';
import { $, pairItems, fill, h, note, num, signed, table, time } from './dom.js';

const PAGE = 50;
const LABELS = { CreditsGranted: 'Granted', CreditsRevoked: 'Revoked', CreditDeducted: 'Held', CreditCaptured: 'Captured', CreditRefunded: 'Refunded' };
const ID_LABEL = { user: 'User id', store: 'Store id', shopper: 'Store id' };

/** The statement being shown: the account, its filters, and where each page seen so far started. */
const st = { account: null, filters: {}, starts: [undefined], page: 0, next: null };

const genLink = (id) => (id ? h('a', { href: `#/generations/${enc(id)}`, text: id }) : '');

$('#find-kind').addEventListener('change', () => {
  const kind = $('#find-kind').value;
  $('#find-id-label').textContent = ID_LABEL[kind];
  $('#find-email-box').hidden = kind !== 'shopper';
  $('#find-email').required = kind === 'shopper';
});

$('#find-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const kind = $('#find-kind').value;
  try {
    const { account } = await post('/v1/admin/accounts/find', {
      kind,
      id: $('#find-id').value.trim(),
      ...(kind === 'shopper' ? { shopper_email: $('#find-email').value.trim() } : {}),
    });
    const target = `#/accounts/${enc(account)}`;
    if (location.hash === target) await load(account).then((el) => el?.focus());
    else location.hash = target; // the route loads it
  } catch (err) {
    note($('#account-note'), err.message, 'error');
  }
});

export async function show(account) {
  if (!account) return null;
  return load(account);
}

async function load(account) {
  note($('#account-note'), '');
  $('#account').hidden = true;
  let view;
  try {
    view = await get(`/v1/accounts/${enc(account)}`);
  } catch (err) {
    note($('#account-note'), err.status === 404 ? `${account}: no movements yet.` : err.message, err.status === 404 ? 'info' : 'error');
    return null;
  }
  fill($('#account-title'), `Account ${view.account}`);
  $('#account-title').setAttribute('tabindex', '-1');
  const totals = [
    ['Balance', num(view.balance)],
    ['Held', num(view.held)],
    ['Granted', num(view.granted)],
    ['Revoked', num(view.revoked)],
    ['Deducted', num(view.deducted)],
    ['Captured', num(view.captured)],
    ['Refunded', num(view.refunded)],
    ['Events', num(view.revision + 1)],
  ];
  fill($('#account-totals'), pairItems(totals));
  fill(
    $('#account-holds'),
    view.open_holds.length
      ? table('Open holds', [['Generation', (r) => genLink(r.generation_id)], ['Credits', (r) => num(r.amount)]], view.open_holds)
      : h('p', { class: 'muted', text: 'No open holds.' }),
  );
  $('#account').hidden = false;
  st.account = view.account;
  st.starts = [undefined];
  st.page = 0;
  await Promise.all([statementPage(), chart(view.account)]);
  return $('#account-title');
}

async function chart(account) {
  const box = $('#account-chart');
  try {
    const s = await get(`/v1/admin/accounts/${enc(account)}/balance-series`, { points: 300 });
    const pts = s.points.map((p) => ({ t: p.at, y: p.balance }));
    const last = s.points[s.points.length - 1];
    fill(
      box,
      timeSeries({
        title: `Balance of ${account} over time`,
        desc: last
          ? `${s.points.length} points from ${time(s.points[0].at)} to ${time(last.at)}; now ${last.balance}, lowest ${Math.min(...s.points.map((p) => p.low))}, highest ${Math.max(...s.points.map((p) => p.high))}.`
          : 'No movements.',
        caption: s.exact ? 'Balance after every movement.' : 'Balance at regular points of the stream; the band spans the lowest and highest balance between two points.',
        series: [{ label: 'Balance', cls: 's1', points: pts }],
        band: s.exact ? undefined : s.points.map((p) => ({ t: p.at, low: p.low, high: p.high })),
        yLabel: 'credits',
        step: true,
      }),
    );
  } catch (err) {
    fill(box, h('p', { class: 'note error', role: 'alert', text: `Balance chart: ${err.message}` }));
  }
}

function readFilters() {
  const f = new FormData($('#statement-form'));
  const since = f.get('since');
  const until = f.get('until');
  const types = f.getAll('types');
  const next = (d) => new Date(Date.parse(`${d}T00:00:00Z`) + 86_400_000).toISOString().slice(0, 10);
  return {
    order: f.get('order'),
    since: since || undefined,
    until: until ? next(until) : undefined, // the form's "to" day is inclusive, the API's `until` exclusive
    types: types.length ? types.join(',') : undefined,
  };
}

async function statementPage() {
  const f = readFilters();
  const from = st.starts[st.page];
  note($('#statement-note'), '');
  let p;
  try {
    p = await get(`/v1/accounts/${enc(st.account)}/statement`, { ...f, from, limit: PAGE });
  } catch (err) {
    note($('#statement-note'), err.message, 'error');
    return;
  }
  st.next = p.next_revision;
  fill(
    $('#statement'),
    table(
      `Statement of ${st.account}, ${f.order === 'asc' ? 'oldest' : 'newest'} first`,
      [
        ['Revision', (l) => String(l.revision)],
        ['Time', (l) => time(l.occurred_at)],
        ['Movement', (l) => LABELS[l.type] ?? l.type],
        ['Amount', (l) => signed(l.amount)],
        ['Balance', (l) => num(l.balance)],
        ['Generation', (l) => genLink(l.generation_id)],
        ['Reason', (l) => l.reason ?? ''],
        ['Reference', (l) => l.reference ?? ''],
      ],
      p.lines,
      { id: 'statement-table', class: 'num-cols' },
    ),
  );
  if (!p.lines.length) note($('#statement-note'), 'No movements match these filters.');
  $('#st-prev').disabled = st.page === 0;
  $('#st-next').disabled = st.next === null;
  const range = p.lines.length ? `revisions ${p.lines[0].revision}–${p.lines[p.lines.length - 1].revision}` : 'no lines';
  $('#st-page').textContent = `Page ${st.page + 1} · ${range} · head revision ${p.head_revision ?? '–'}`;
}

$('#statement-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  st.starts = [undefined];
  st.page = 0;
  void statementPage();
});
$('#st-next').addEventListener('click', () => {
  st.starts[st.page + 1] = st.next;
  st.page += 1;
  void statementPage();
});
$('#st-prev').addEventListener('click', () => {
  st.page = Math.max(0, st.page - 1);
  void statementPage();
});
$('#st-export').addEventListener('click', async () => {
  const { since, until, types } = readFilters();
  try {
    await download(`/v1/admin/accounts/${enc(st.account)}/statement.csv`, { since, until, types }, `statement-${st.account.replace(/[^A-Za-z0-9_.-]+/g, '_')}.csv`);
    note($('#statement-note'), 'CSV exported (oldest first, the same lines and columns as `wearon statement --format csv`).');
  } catch (err) {
    note($('#statement-note'), err.message, 'error');
  }
});
