// What the adversarial probe found at the HTTP surface (issue 11), on the real service composition (SQLite ledger,
// fastify on a loopback port, token mode): `%` in account ids (3), router-level errors in the one shape (5), CSV cells
// led by tab or CR (6), one rule for emails (7), platform ids are UUIDs (8), a grant reference reused with another
// amount (9).
import { randomUUID } from 'node:crypto';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openSqliteEventStore } from '../../src/adapters/eventstore/sqlite/sqliteEventStore.ts';
import { AggregateRepository } from '../../src/app/aggregates.ts';
import { grantCredits } from '../../src/app/credits.ts';
import { grantCommand, revokeCommand } from '../../src/cli/commands/ledger.ts';
import { loadConfig } from '../../src/config.ts';
import { buildProducerTask, serializeProducerTask } from '../../src/contract.ts';
import { evolveAccount, initialAccount } from '../../src/domain/account.ts';
import { accountStream, hashShopperEmail } from '../../src/domain/streams.ts';
import { silentLogger } from '../../src/logger.ts';
import { startService, type Service } from '../../src/compose/service.ts';
import { freePort, tempDir } from '../support/stack.ts';
import { scaled, waitFor } from '../support/deadlines.ts';

const logger = silentLogger();
const token = 'hardening-token-0123456789';
const auth = { authorization: `Bearer ${token}` };
const json = { ...auth, 'content-type': 'application/json' };

interface ErrorBody {
  error: { code: string; message: string; details?: unknown };
  request_id: string;
}

/** The one error shape, with the same request id in the body and the X-Request-Id header. */
async function expectErrorShape(r: Response, status: number, code: string): Promise<ErrorBody> {
  expect(r.status).toBe(status);
  const id = r.headers.get('x-request-id');
  expect(id).toMatch(/^[A-Za-z0-9._:-]{1,128}$/);
  expect(r.headers.get('content-type')).toMatch(/^application\/json/);
  const body = (await r.json()) as ErrorBody;
  expect(body).toMatchObject({ error: { code, message: expect.any(String) }, request_id: id });
  expect(Object.keys(body).sort()).toEqual(['error', 'request_id']);
  return body;
}

/** One raw HTTP exchange over a socket: what a client that bypasses fetch's URL normalisation sends. */
function rawRequest(port: number, text: string, timeoutMs = 10_000): Promise<string> {
  const deadlineMs = scaled(timeoutMs);
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => (socket.destroy(), reject(new Error(`no complete answer within ${deadlineMs} ms`))), deadlineMs);
    socket.on('data', (c) => chunks.push(c));
    socket.on('error', () => undefined); // the server may reset after answering; what it sent is in `chunks`
    socket.on('close', () => (clearTimeout(timer), resolve(Buffer.concat(chunks).toString('latin1'))));
    socket.write(text);
  });
}

function parseRaw(text: string): { status: number; headers: Record<string, string>; body: string } {
  const [head = '', ...rest] = text.split('\r\n\r\n');
  const [statusLine = '', ...lines] = head.split('\r\n');
  const headers = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
  return { status: Number(statusLine.split(' ')[1]), headers, body: rest.join('\r\n\r\n') };
}

describe('HTTP hardening (issue 11)', () => {
  let service: Service;
  let base: string;
  let port: number;
  let dataDir: string;
  const store = `${randomUUID()}`;

  beforeAll(async () => {
    port = await freePort();
    dataDir = tempDir('hardening');
    const config = loadConfig({ DATA_DIR: dataDir, HOST: '127.0.0.1', PORT: String(port), API_TOKEN: token, POSE_ENABLED: 'false' });
    service = await startService(config, { http: true, worker: false, projections: false }, logger);
    base = `http://127.0.0.1:${port}`;
  });
  afterAll(() => service?.stop());

  const grant = (account: string, body: Record<string, unknown>) =>
    fetch(`${base}/v1/accounts/${encodeURIComponent(account)}/grants`, { method: 'POST', headers: json, body: JSON.stringify(body) });
  const cli = async (command: typeof grantCommand, args: string[]) => {
    const out: string[] = [];
    const err: string[] = [];
    const code = await command.run(args, { config: loadConfig({ DATA_DIR: dataDir }), logger, out: (l) => out.push(l), err: (l) => err.push(l) });
    return { code, out, err };
  };

  describe('item 3: a % in an account id', () => {
    it('answers 400 invalid_account for a malformed id instead of 500', async () => {
      for (const path of ['user%3A%25', 'user:%25', 'store%3A%25zz', 'user%3A100%25']) {
        const body = await expectErrorShape(await fetch(`${base}/v1/accounts/${path}`, { headers: auth }), 400, 'invalid_account');
        expect(body.error.message).not.toContain('URI');
      }
      await expectErrorShape(await fetch(`${base}/v1/accounts/user%3A%25/statement`, { headers: auth }), 400, 'invalid_account');
      await expectErrorShape(await grant('user:%', { amount: 1, reason: 'purchase', reference: 'pct' }), 400, 'invalid_account');
    });

    it('handles a valid shopper id whose email holds a %, correctly encoded', async () => {
      const email = '100%real@example.com';
      const account = `shopper:${store}:${email}`;
      expect((await grant(account, { amount: 4, reason: 'purchase', reference: 'pct-1' })).status).toBe(201);
      const r = await fetch(`${base}/v1/accounts/${encodeURIComponent(account)}`, { headers: auth });
      expect(r.status).toBe(200);
      expect(await r.json()).toMatchObject({ account: `shopper:${store}.${hashShopperEmail(email)}`, balance: 4 });
      const st = await fetch(`${base}/v1/accounts/${encodeURIComponent(account)}/statement`, { headers: auth });
      expect(((await st.json()) as { lines: unknown[] }).lines).toHaveLength(1);
    });
  });

  describe('item 5: router-level errors have the one shape and X-Request-Id, and never echo the path', () => {
    it('a 10 KB id answers 414 in the API shape, without the id', async () => {
      const long = 'x'.repeat(10_000);
      for (const path of [`/v1/generations/${long}`, `/v1/accounts/user:${long}`]) {
        const r = await fetch(`${base}${path}`, { headers: { ...auth, 'x-request-id': 'req_long-1' } });
        const body = await expectErrorShape(r, 414, 'uri_too_long');
        expect(body.request_id).toBe('req_long-1');
        expect(JSON.stringify(body)).not.toContain('xxxxxxxxxx');
      }
    });

    it('a path that does not percent-decode answers 400 bad_url in the API shape, without the path', async () => {
      for (const path of ['/v1/generations/%ff%fe', '/files/%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd', '/v1/accounts/user:%E0%A4%A']) {
        const answer = parseRaw(await rawRequest(port, `GET ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nConnection: close\r\n\r\n`));
        expect(answer.status).toBe(400);
        expect(answer.headers['x-request-id']).toMatch(/^req_/);
        const body = JSON.parse(answer.body) as ErrorBody;
        expect(body).toEqual({ error: { code: 'bad_url', message: expect.any(String) }, request_id: answer.headers['x-request-id'] });
        expect(answer.body).not.toMatch(/%ff|%c0|%E0|passwd/i);
      }
    });

    it('an unknown route answers 404 without echoing the path', async () => {
      const marker = `probe-${randomUUID()}`;
      const body = await expectErrorShape(await fetch(`${base}/${marker}?q=${marker}`), 404, 'not_found');
      expect(JSON.stringify(body)).not.toContain(marker);
    });

    it('a malformed HTTP request answers 400 in the API shape with an X-Request-Id', async () => {
      const answer = parseRaw(await rawRequest(port, 'GET /health HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n'));
      expect(answer.status).toBe(400);
      expect(answer.headers['x-request-id']).toMatch(/^req_/);
      expect(JSON.parse(answer.body)).toEqual({ error: { code: 'bad_request', message: expect.any(String) }, request_id: answer.headers['x-request-id'] });
    });

    it('oversized headers answer 431 in the API shape', async () => {
      const answer = parseRaw(await rawRequest(port, `GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${'y'.repeat(20_000)}\r\n\r\n`));
      expect(answer.status).toBe(431);
      expect(JSON.parse(answer.body)).toEqual({ error: { code: 'headers_too_large', message: expect.any(String) }, request_id: answer.headers['x-request-id'] });
    });

    it('what held keeps holding: no token, no answer; a forged signed path is still refused', async () => {
      await expectErrorShape(await fetch(`${base}/v1/accounts/user:${randomUUID()}`), 401, 'unauthorized');
      const r = await fetch(`${base}/files/..%2f..%2fledger.sqlite?expires=9999999999&sig=00`);
      expect([403, 404]).toContain(r.status);
      await expectErrorShape(r, r.status, r.status === 403 ? 'invalid_signature' : 'not_found');
    });
  });

  describe('item 6: CSV statements defuse formula cells led by tab and CR, as =, +, -, @ are', () => {
    it('prefixes each such cell with a quote, via the CLI (which keeps references as typed) and the HTTP CSV', async () => {
      const account = `user:${randomUUID()}`;
      const refs = ['\t=HYPERLINK("http://evil.example")', '\r=1+2', '=SUM(A1)', '+1', '-1+2', '@cmd', 'plain'];
      for (const [i, reference] of refs.entries()) {
        expect((await cli(grantCommand, [account, String(i + 1), '--reason', 'purchase', '--reference', reference])).code).toBe(0);
      }
      expect((await cli(revokeCommand, [account, '1', '--reason', '\tcmd|/c calc', '--reference', 'rev-1'])).code).toBe(0);
      const r = await fetch(`${base}/v1/accounts/${account}/statement?format=csv`, { headers: auth });
      expect(r.status).toBe(200);
      const csv = await r.text();
      // every cell that starts with one of = + - @ TAB CR (after an optional opening quote) starts with ' instead
      const cells = csv.split('\n').slice(1, -1).flatMap((line) => parseCsvLine(line));
      const dangerous = cells.filter((c) => /^[=+\-@\t\r]/.test(c) && Number.isNaN(Number(c)));
      expect(dangerous).toEqual([]);
      expect(cells).toEqual(expect.arrayContaining(["'\t=HYPERLINK(\"http://evil.example\")", "'\r=1+2", "'=SUM(A1)", "'+1", "'-1+2", "'@cmd", 'plain', "'\tcmd|/c calc"]));
      // numbers stay numbers: the revocation's signed amount is -1, not '-1
      expect(cells).toContain('-1');
    });
  });

  describe('item 7: one rule for what an email is', () => {
    it('refuses shopper:<store>:@ and other non-emails as accounts (400), everywhere an account is named', async () => {
      for (const email of ['@', 'a@', '@b.c', 'a@b', 'a b@c.d', 'a@b@c.d']) {
        const account = `shopper:${store}:${email}`;
        await expectErrorShape(await fetch(`${base}/v1/accounts/${encodeURIComponent(account)}`, { headers: auth }), 400, 'invalid_account');
        await expectErrorShape(await grant(account, { amount: 1, reason: 'purchase', reference: `e-${email}` }), 400, 'invalid_account');
      }
      const task = JSON.parse(serializeProducerTask(buildProducerTask({ storeId: store, shopperEmail: 'x@y.z', imageUrls: ['https://a.example/1.jpg'] })));
      const r = await fetch(`${base}/v1/generations`, { method: 'POST', headers: json, body: JSON.stringify({ ...task, shopper_email: 'a@b' }) });
      const body = await expectErrorShape(r, 400, 'invalid_request');
      expect(body.error.details).toEqual({ fields: [{ path: 'shopper_email', message: 'must be an email address' }] });
    });
  });

  describe('item 8: the platform ids are UUIDs', () => {
    it('POST /v1/generations with a non-UUID user_id or store_id answers 400 naming the field, and charges nothing', async () => {
      const urls = ['https://a.example/m.jpg'];
      const cases = [
        { task: buildProducerTask({ userId: 'u-1', imageUrls: urls }), field: 'user_id', account: 'user:u-1' },
        { task: buildProducerTask({ storeId: 'store-1', imageUrls: urls }), field: 'store_id', account: 'store:store-1' },
        { task: buildProducerTask({ userId: randomUUID().toUpperCase(), imageUrls: urls }), field: 'user_id', account: null },
      ];
      for (const { task, field, account } of cases) {
        if (account) await grantCredits(new AggregateRepository(service.store), account, { amount: 5, reason: 'purchase', reference: 'g' }, { requestId: 't', workerId: 't' });
        const r = await fetch(`${base}/v1/generations`, { method: 'POST', headers: json, body: serializeProducerTask(task) });
        const body = await expectErrorShape(r, 400, 'invalid_request');
        expect(body.error.details).toEqual({ fields: [{ path: field, message: expect.stringContaining('UUID') }] });
        expect((await fetch(`${base}/v1/generations/${task.sessionId}`, { headers: auth })).status).toBe(404);
      }
      // a canonical UUID passes (402: no credits, so it was taken and charged against the right account)
      const ok = buildProducerTask({ userId: randomUUID(), imageUrls: urls });
      expect((await fetch(`${base}/v1/generations`, { method: 'POST', headers: json, body: serializeProducerTask(ok) })).status).toBe(402);
    });
  });

  describe('item 9: a grant reference reused with another amount', () => {
    it('answers 409 reference_conflict naming both amounts; the same amount stays an idempotent 200', async () => {
      const account = `store:${randomUUID()}`;
      expect((await grant(account, { amount: 5, reason: 'purchase', reference: 'order-9' })).status).toBe(201);
      const again = await grant(account, { amount: 5, reason: 'purchase', reference: 'order-9' });
      expect(again.status).toBe(200);
      expect(await again.json()).toMatchObject({ applied: false, account: { balance: 5 } });
      const body = await expectErrorShape(await grant(account, { amount: 7, reason: 'purchase', reference: 'order-9' }), 409, 'reference_conflict');
      expect(body.error.message).toBe('reference "order-9" was already used for a grant of 5 credits, not 7');
      const view = (await (await fetch(`${base}/v1/accounts/${account}`, { headers: auth })).json()) as { balance: number };
      expect(view.balance).toBe(5);
    });

    it('the CLI says so and exits non-zero, for grants and revocations', async () => {
      const account = `user:${randomUUID()}`;
      expect((await cli(grantCommand, [account, '5', '--reason', 'purchase', '--reference', 'cli-9'])).code).toBe(0);
      expect((await cli(grantCommand, [account, '5', '--reason', 'purchase', '--reference', 'cli-9'])).out).toEqual([
        `already applied (same reference): ${account} balance 5`,
      ]);
      const conflict = await cli(grantCommand, [account, '6', '--reason', 'purchase', '--reference', 'cli-9']);
      expect(conflict).toEqual({ code: 1, out: [], err: ['refused (reference_conflict): reference "cli-9" was already used for a grant of 5 credits, not 6'] });
      expect((await cli(revokeCommand, [account, '2', '--reason', 'x', '--reference', 'rev-9'])).code).toBe(0);
      const revoke = await cli(revokeCommand, [account, '1', '--reason', 'x', '--reference', 'rev-9']);
      expect(revoke).toEqual({ code: 1, out: [], err: ['refused (reference_conflict): reference "rev-9" was already used for a revocation of 2 credits, not 1'] });
    });

    it('an account snapshot folded before references kept their amounts is ignored, so a replay is not taken for a conflict', async () => {
      const dir = tempDir('snap');
      const ledger = openSqliteEventStore({ path: `${dir}/ledger.sqlite`, writer: 'inline' });
      try {
        const account = `user:${randomUUID()}`;
        const ctx = { requestId: 't', workerId: 't' };
        await grantCredits(new AggregateRepository(ledger), account, { amount: 5, reason: 'purchase', reference: 'old' }, ctx);
        // what the previous version wrote after folding that grant: the bare state, each reference mapped to 1
        const folded = evolveAccount(initialAccount(), { type: 'CreditsGranted', data: { amount: 5, reason: 'purchase', reference: 'old' } }, Date.now());
        ledger.writeSnapshot(accountStream(account), 0, { ...folded, references: { 'grant:old': 1 } });
        // written with the store's next commit: wait until it is there
        await waitFor('the legacy snapshot to be written', () => Boolean((ledger.readSnapshot(accountStream(account))?.state as { references?: unknown })?.references), 10_000);
        const r = await grantCredits(new AggregateRepository(ledger), account, { amount: 5, reason: 'purchase', reference: 'old' }, ctx);
        expect(r.applied).toBe(false);
      } finally {
        await ledger.close();
      }
    });
  });
});

/** RFC 4180 cells of one CSV line (quoted cells may hold commas, quotes and CR). */
function parseCsvLine(line: string): string[] {
  const cells: string[] = [];
  let i = 0;
  while (i <= line.length) {
    if (line[i] === '"') {
      let cell = '';
      i++;
      for (;;) {
        if (line[i] === '"' && line[i + 1] === '"') (cell += '"'), (i += 2);
        else if (line[i] === '"') break;
        else cell += line[i++];
      }
      cells.push(cell);
      i += 2; // closing quote and comma
    } else {
      const end = line.indexOf(',', i);
      cells.push(line.slice(i, end < 0 ? line.length : end));
      i = end < 0 ? line.length + 1 : end + 1;
    }
  }
  return cells;
}
