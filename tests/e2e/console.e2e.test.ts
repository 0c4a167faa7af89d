// The console in a real browser (Debian's Chromium, driven by playwright-core), clicked through as a person would,
// against the service started as a user would (`node bin/wearon.mjs serve`: embedded SQLite ledger, real Redis
// intake, the preview generator, images from a local server). Screenshots of every step go to artifacts/console/.
//
//   npx vitest run tests/e2e/console.e2e.test.ts     (makes the screenshots)
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import type { Browser, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { openSqliteReadModel } from '../../src/adapters/readmodel/sqlite/sqliteReadModel.ts';
import { buildProducerTask, serializeProducerTask } from '../../src/contract.ts';
import { artifactsDir, chromiumAvailable, launchChromium } from '../support/browser.ts';
import { startImageServer, type ImageServer } from '../support/imageServer.ts';
import { noisyJpeg } from '../support/images.ts';
import { deleteKeys, REDIS_URL, redisAvailable } from '../support/services.ts';
import { scaled } from '../support/deadlines.ts';
import { ROOT, startService, waitFor, type RunningService } from '../support/stack.ts';

const run = promisify(execFile);
const ready = chromiumAvailable() && (await redisAvailable());
const TOKEN = 'console-e2e-token-7f3a91';
const USER = randomUUID(); // the platform's user ids are UUIDs (the queue contract insists)
const shots = ready ? artifactsDir('console') : '';

/** Every visible control's accessible name, as Chromium computes it (the accessibility tree, not our guess). */
async function unnamedControls(page: Page): Promise<string[]> {
  const cdp = await page.context().newCDPSession(page);
  const { nodes } = (await cdp.send('Accessibility.getFullAXTree')) as { nodes: { ignored: boolean; role?: { value: string }; name?: { value: string } }[] };
  await cdp.detach();
  const widgets = new Set(['textbox', 'combobox', 'checkbox', 'button', 'link', 'searchbox', 'spinbutton', 'radio', 'listbox', 'date', 'Date', 'InputTime', 'DateTime', 'DisclosureTriangle']);
  return nodes.filter((n) => !n.ignored && widgets.has(n.role?.value ?? '') && !(n.name?.value ?? '').trim()).map((n) => n.role!.value);
}

/** From the first control of the page (the skip link), presses Tab until focus comes back round; returns what got focus. */
async function tabOrder(page: Page, max = 150): Promise<string[]> {
  const current = () =>
    page.evaluate(() => {
      const el = document.activeElement as HTMLElement | null;
      return el && el !== document.body ? `${el.tagName.toLowerCase()}#${el.id}|${el.getAttribute('aria-label') ?? el.textContent?.trim().slice(0, 40) ?? ''}` : 'body';
    });
  await page.locator('a.skip').focus();
  const seen = [await current()];
  for (let i = 0; i < max; i++) {
    await page.keyboard.press('Tab');
    const id = await current();
    if (id === seen[0]) break;
    if (seen[seen.length - 1] !== id) seen.push(id);
  }
  return seen;
}

/** The visible, enabled controls a keyboard user must be able to reach, in document order. */
function reachable(page: Page): Promise<string[]> {
  return page.evaluate(() =>
    [...document.querySelectorAll<HTMLElement>('a[href], button, input, select, summary')]
      .filter((el) => el.getClientRects().length > 0 && !(el as HTMLButtonElement).disabled && getComputedStyle(el).visibility !== 'hidden')
      .map((el) => `${el.tagName.toLowerCase()}#${el.id}|${el.getAttribute('aria-label') ?? el.textContent?.trim().slice(0, 40) ?? ''}`),
  );
}

describe.skipIf(!ready)('console in Chromium, with API_TOKEN', () => {
  let images: ImageServer;
  let service: RunningService & { dataDir: string };
  let redis: Redis;
  let browser: Browser;
  let page: Page;
  let base: string;
  let step = 0;
  const pageErrors: Error[] = [];
  const queueKey = `e2e:${randomUUID().slice(0, 8)}:console`;
  const requested: string[] = [];
  const api = (p: string, init: RequestInit = {}) =>
    fetch(`${base}${p}`, { ...init, headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json', ...init.headers } });
  const shot = (name: string) => page.screenshot({ path: path.join(shots, `${String(++step).padStart(2, '0')}-${name}.png`), fullPage: true });
  const text = (sel: string, hasText: string | RegExp, timeout = 30_000) => page.locator(sel, { hasText }).first().waitFor({ timeout: scaled(timeout) });
  const terminal = (sessionId: string) =>
    waitFor(`generation ${sessionId} to finish`, async () => {
      const g = (await (await api(`/v1/generations/${sessionId}`)).json()) as { status: string };
      return (g.status === 'completed' || g.status === 'failed') && g;
    }, 60_000);

  // The hook's budget covers the deadlines inside it (three generations of up to 60 s each, the settling, Chromium's
  // start), so a slow step fails with its own message instead of the hook's blanket timeout.
  beforeAll(async () => {
    images = await startImageServer();
    images.serve('/model.jpg', await noisyJpeg(600, 800, 3), 'image/jpeg');
    images.serve('/outfit.jpg', await noisyJpeg(400, 400, 4), 'image/jpeg');
    images.serve('/not-an-image.jpg', Buffer.from('<html>no</html>'), 'image/jpeg');
    redis = new Redis(REDIS_URL);
    service = await startService({
      API_TOKEN: TOKEN,
      REDIS_URL,
      QUEUE_KEY: queueKey,
      IMAGE_FETCH_ALLOW_HOSTS: '127.0.0.1',
      RECOVERY_INTERVAL_MS: '500',
    });
    base = `http://127.0.0.1:${service.port}`;

    // An account with enough history for two statement pages: 55 grants, three generations (one fails and is refunded).
    for (let i = 1; i <= 55; i++) {
      const r = await api(`/v1/accounts/user:${USER}/grants`, { method: 'POST', body: JSON.stringify({ amount: i % 7 === 0 ? 10 : 1, reason: 'purchase', reference: `order-${i}` }) });
      expect(r.status).toBe(201);
    }
    const urls = [images.url('/model.jpg'), images.url('/outfit.jpg')];
    for (const imageUrls of [urls, urls, [images.url('/not-an-image.jpg')]]) {
      const task = buildProducerTask({ userId: USER, imageUrls });
      requested.push(task.sessionId);
      await redis.lpush(queueKey, serializeProducerTask(task));
    }
    for (const id of requested) await terminal(id);
    await waitFor('holds to settle', async () => {
      const a = (await (await api(`/v1/accounts/user:${USER}`)).json()) as { open_holds: unknown[]; refunded: number; captured: number };
      return a.open_holds.length === 0 && a.captured === 2 && a.refunded === 1;
    });
    // A dead letter left by an older worker that did not know this payload version yet; the task itself is valid.
    const deadTask = buildProducerTask({ userId: USER, imageUrls: urls });
    requested.push(deadTask.sessionId);
    await redis.lpush(
      `${queueKey}:dead`,
      JSON.stringify({ reason: 'unsupported payload version 1; this worker understands 0', raw: serializeProducerTask(deadTask), worker_id: 'old-worker-1', failed_at: new Date().toISOString() }),
    );

    browser = await launchChromium();
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
    page = await context.newPage();
    page.setDefaultTimeout(scaled(30_000)); // Playwright's own default, stretched by TEST_TIME_SCALE
    page.on('pageerror', (err) => pageErrors.push(err));
  }, scaled(240_000));

  afterEach(() => {
    expect(pageErrors, 'uncaught errors in the page').toEqual([]);
  });

  afterAll(async () => {
    await browser?.close();
    await service?.stop();
    if (redis) {
      await deleteKeys(redis, queueKey);
      redis.disconnect();
    }
    await images?.close();
  });

  it('asks for the token once, keeps it out of URLs and cookies, and refuses a wrong one', async () => {
    const urls: string[] = [];
    page.on('request', (r) => urls.push(r.url()));
    await page.goto(`${base}/console/`);
    await page.locator('#token-view').waitFor();
    expect(await unnamedControls(page)).toEqual([]);
    await shot('sign-in');
    // keyboard only: the page puts focus in the token field; Tab goes on to the button and round through the page
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('token-input');
    const order = await tabOrder(page);
    expect(order.slice(0, 3)).toEqual(['a#|Skip to content', 'input#token-input|', 'button#|Sign in']);
    for (const control of await reachable(page)) expect(order, `Tab reaches ${control}`).toContain(control);
    await page.locator('#token-input').focus();
    await page.keyboard.type('wrong-token');
    await page.keyboard.press('Enter');
    await text('#token-note', 'refused');
    await page.locator('#token-input').fill(TOKEN);
    await page.keyboard.press('Enter');
    await page.locator('#nav').waitFor();
    await text('#session-state', 'Signed in');
    expect(urls.some((u) => u.includes(TOKEN))).toBe(false);
    expect(await page.evaluate(() => document.cookie)).toBe('');
    expect(await page.evaluate(() => sessionStorage.getItem('wearon.console.token'))).toBe(TOKEN);
    await page.reload(); // entered once: the tab keeps it
    await page.locator('#nav').waitFor();
    expect(await page.locator('#token-view').isHidden()).toBe(true);
  });

  it('finds an account with the keyboard and reads its statement page by page, with filters', async () => {
    await page.locator('#find-kind').focus();
    await page.keyboard.press('Tab');
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('find-id');
    await page.keyboard.type(USER);
    await page.keyboard.press('Enter');
    await text('#account-title', `Account user:${USER}`);
    const view = (await (await api(`/v1/accounts/user:${USER}`)).json()) as { balance: number; revision: number };
    await text('#account-totals', String(view.balance));
    await page.locator('#account-chart svg[role="img"]').waitFor();
    const rows = page.locator('#statement-table tbody tr');
    expect(await rows.count()).toBe(50);
    // newest first: the first line's balance is the account's balance, its revision the head
    expect(await rows.first().locator('td').nth(0).textContent()).toBe(String(view.revision));
    expect(await rows.first().locator('td').nth(4).textContent()).toBe(String(view.balance));
    expect(await unnamedControls(page)).toEqual([]);
    const order = await tabOrder(page);
    for (const control of await reachable(page)) expect(order, `Tab reaches ${control}`).toContain(control);
    await shot('account-statement');

    await page.locator('#st-next').click();
    await text('#st-page', 'Page 2');
    expect(await rows.count()).toBe(view.revision + 1 - 50);
    expect(await rows.last().locator('td').nth(0).textContent()).toBe('0');
    await page.locator('#st-prev').click();
    await text('#st-page', 'Page 1');

    await page.getByLabel('Refunded').check();
    await page.locator('#statement-form button[type="submit"]').click();
    // The unfiltered page already reads "revisions n–m": wait for the filtered rows themselves.
    await waitFor('the filtered statement (one refund)', async () => (await rows.count()) === 1);
    await text('#st-page', /revisions \d+–\d+/);
    expect(await rows.count()).toBe(1);
    expect(await rows.first().locator('td').nth(2).textContent()).toBe('Refunded');
    await shot('statement-filtered');
    await page.getByLabel('Refunded').uncheck();
    await page.locator('#statement-form button[type="submit"]').click();
    await page.waitForFunction(() => document.querySelectorAll('#statement-table tbody tr').length === 50);
  });

  it('exports the statement as CSV byte for byte what `wearon statement --format csv` prints', async () => {
    const [download] = await Promise.all([page.waitForEvent('download'), page.locator('#st-export').click()]);
    expect(download.suggestedFilename()).toBe(`statement-user_${USER}.csv`);
    const fromConsole = readFileSync((await download.path())!, 'utf8');
    const cli = await run(process.execPath, [path.join(ROOT, 'bin', 'wearon.mjs'), 'statement', `user:${USER}`, '--format', 'csv'], {
      cwd: ROOT,
      env: { ...process.env, DATA_DIR: service.dataDir, LOG_LEVEL: 'warn' },
    });
    expect(fromConsole).toBe(cli.stdout);
    expect(fromConsole.split('\n').length).toBeGreaterThan(60);
    await text('#statement-note', 'CSV exported');
  });

  it('opens a generation from the statement: timeline, result and the movements it caused', async () => {
    await page.locator('#statement-table a[href^="#/generations/"]').first().click();
    await text('#gen-title', 'Generation');
    await text('#gen-status', /completed|failed/);
    const types = await page.locator('#gen-timeline-table tbody tr td:nth-child(3)').allTextContents();
    expect(types[0]).toBe('GenerationRequested');
    expect(types).toEqual(expect.arrayContaining(['GenerationCharged', 'GenerationStarted']));
    await text('#gen-movements-table', 'CreditDeducted');
    const workers = await page.locator('#gen-timeline-table tbody tr td:nth-child(4)').allTextContents();
    expect(workers.every((w) => w.length > 0)).toBe(true);
    const completed = await page.locator('#gen-status').textContent();
    if (completed === 'completed') {
      const href = await page.getByRole('link', { name: 'Open the result image' }).getAttribute('href');
      const img = await fetch(href!);
      expect(img.status).toBe(200);
      expect(img.headers.get('content-type')).toBe('image/jpeg');
      await text('#gen-movements-table', 'CreditCaptured');
    } else {
      await text('#gen-movements-table', 'CreditRefunded');
    }
    await page.locator('#per-hour svg[role="img"]').waitFor();
    expect(await unnamedControls(page)).toEqual([]);
    await shot('generation');
  });

  it('verifies the ledger on request and shows the result', async () => {
    await page.getByRole('link', { name: 'Ledger health' }).click();
    await page.locator('#verify-run').click();
    await text('#verify-verdict', 'Ledger OK');
    await text('#verify-last', 'console');
    await text('#verify-status', 'Last verification finished');
    expect(await unnamedControls(page)).toEqual([]);
    await shot('ledger-health');
  });

  it('replays a projection and follows it to done', async () => {
    await page.getByRole('link', { name: 'Projections' }).click();
    await page.locator('#projections-table').waitFor();
    // keep every status line the page shows while the replay runs
    await page.evaluate(() => {
      const w = window as unknown as { seen: string[] };
      w.seen = [];
      new MutationObserver(() => w.seen.push(document.getElementById('replay-status')!.textContent ?? '')).observe(document.getElementById('replay-status')!, {
        childList: true,
        characterData: true,
        subtree: true,
      });
    });
    // Another process (this test) holds the projection's rebuild lock, as a CLI replay would: the console's replay
    // waits for it, shows itself running, and a second replay gets "already running".
    const other = openSqliteReadModel({ path: path.join(service.dataDir, 'readmodels.sqlite') });
    const lease = await other.acquire('credit-balances#rebuild');
    try {
      await page.getByRole('button', { name: 'Replay credit-balances' }).click();
      await text('#replay-status', /Replaying credit-balances \(started .+\) · waiting for the rebuild lock$/);
      expect(await page.locator('#replay-progress').isVisible()).toBe(true);
      expect(await page.getByRole('button', { name: 'Replay session-status' }).isDisabled()).toBe(true);
      const busy = await api('/v1/admin/projections/session-status/replay', { method: 'POST', headers: { 'x-wearon-console': '1' }, body: '{}' });
      expect(busy.status).toBe(409);
      await shot('projections-replay-running');
    } finally {
      await lease.release();
      await other.close();
    }
    await text('#replay-status', /Replay of credit-balances done: \d+ events in .+, swapped in at \d+\/\d+\./);
    expect(await page.getByRole('button', { name: 'Replay session-status' }).isDisabled()).toBe(false);
    const seen = await page.evaluate(() => (window as unknown as { seen: string[] }).seen);
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.at(-1)).toMatch(/done/);
    await page.locator('#lag-chart svg[role="img"]').waitFor();
    await text('#lag-short', 'History since'); // the process is younger than an hour, and the page says so
    expect(await unnamedControls(page)).toEqual([]);
    await shot('projections-replayed');
  });

  it('re-drives a dead letter and watches its generation complete', async () => {
    await page.getByRole('link', { name: 'Dead letters' }).click();
    await text('#dead-table', 'unsupported payload version');
    await text('#dead-table', 'old-worker-1');
    await page.locator('#dead-table summary').first().click(); // the raw payload, as pushed
    await text('#dead-table pre', '"channel":"b2c"');
    expect(await unnamedControls(page)).toEqual([]);
    await shot('dead-letters');
    const session = requested[requested.length - 1]!;
    await page.getByRole('button', { name: `Re-drive dead letter ${session}` }).click();
    await text('#dead-note', 'Re-driven');
    await text('#dead-list', 'No dead letters.');
    await page.locator('#dead-redriven-link').click();
    await text('#gen-title', session);
    await text('#gen-status', 'completed', 60_000);
    await text('#gen-movements-table', 'CreditCaptured', 30_000);
    await shot('redriven-generation-completed');
  });
});

describe.skipIf(!ready)('console in Chromium, loopback mode: another site cannot act through the operator\'s browser', () => {
  let service: RunningService;
  let attacker: ImageServer;
  let browser: Browser;

  beforeAll(async () => {
    service = await startService({}); // no API_TOKEN: loopback is the only access control
    attacker = await startImageServer();
    const target = `http://127.0.0.1:${service.port}`;
    // A page on another site (localhost vs 127.0.0.1: another host, so cross-site) trying every shape of request a
    // page can send without the service's consent.
    const html = `<!doctype html><title>attack</title>
<iframe name="a"></iframe><iframe name="b"></iframe><iframe name="c"></iframe>
<form id="f1" method="POST" action="${target}/v1/admin/verify" enctype="text/plain" target="a"><input name='{"x":"' value='"}'></form>
<form id="f2" method="POST" action="${target}/v1/accounts/user:victim/grants" target="b"><input name="amount" value="5"><input name="reason" value="purchase"><input name="reference" value="csrf"></form>
<form id="f3" method="POST" action="${target}/v1/admin/projections/credit-balances/replay" enctype="text/plain" target="c"><input name='{}' value=''></form>
<script>
(async () => {
  const r = {};
  const loaded = [...document.querySelectorAll('iframe')].map((f) => new Promise((ok) => f.addEventListener('load', ok, { once: true })));
  for (const f of document.forms) f.submit();
  await Promise.all(loaded);
  const t = ${JSON.stringify(target)};
  try { await fetch(t + '/v1/admin/projections/session-status/replay', { method: 'POST', mode: 'no-cors', headers: { 'content-type': 'text/plain' }, body: '{}' }); r.noCors = 'sent'; } catch (e) { r.noCors = 'error'; }
  try { r.preflighted = (await fetch(t + '/v1/admin/verify', { method: 'POST', headers: { 'content-type': 'application/json', 'x-wearon-console': '1' }, body: '{}' })).status; } catch (e) { r.preflighted = 'blocked'; }
  try { r.read = await (await fetch(t + '/v1/accounts/user:victim')).text(); } catch (e) { r.read = 'blocked'; }
  document.title = 'done ' + JSON.stringify(r);
})();
</script>`;
    attacker.route('/attack.html', (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(html);
    });
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    await attacker?.close();
    await service?.stop();
  });

  it('refuses forms and fetches from another site; the console on the same origin still works', async () => {
    const page = await browser.newPage();
    await page.goto(`http://localhost:${attacker.port}/attack.html`);
    await page.waitForFunction(() => document.title.startsWith('done '), undefined, { timeout: scaled(30_000) });
    const result = JSON.parse((await page.title()).slice(5)) as Record<string, unknown>;
    expect(result.preflighted).toBe('blocked'); // no CORS grant: the browser never sent it
    expect(result.read).toBe('blocked'); // nor may the page read a response
    await page.screenshot({ path: path.join(artifactsDir('console'), '90-cross-site-attempt.png') });
    const base = `http://127.0.0.1:${service.port}`;
    const state = async (p: string) => (await fetch(`${base}${p}`)).json() as Promise<Record<string, unknown>>;
    expect(await state('/v1/admin/verify')).toMatchObject({ running: null, last: null });
    expect(await state('/v1/admin/replay')).toMatchObject({ running: null, last: null });
    expect((await fetch(`${base}/v1/accounts/user:victim`)).status).toBe(404);

    // The same actions from the console itself go through.
    const own = await browser.newPage();
    await own.goto(`${base}/console/#/health`);
    await own.locator('#verify-run').click();
    await own.locator('#verify-verdict', { hasText: 'Ledger OK' }).waitFor({ timeout: scaled(30_000) });
    expect(await state('/v1/admin/verify')).toMatchObject({ last: { trigger: 'console', state: 'done' } });
  });
});
