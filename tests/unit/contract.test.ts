import { describe, expect, it } from 'vitest';
import {
  MAX_IMAGES,
  MAX_PROMPT_CHARS,
  accountOfTask,
  buildProducerTask,
  parseTaskPayload,
  serializeProducerTask,
  snakeCaseKey,
  uuidv7,
} from '../../src/contract.ts';
import { InvalidAccountError, hashShopperEmail, isEmail, parseAccountId } from '../../src/domain/streams.ts';

const STORE = '7d1f3c2a-5b7e-4c1d-9a0b-2e4f6a8c0d11';
const USER = '0b9e8c1d-2f3a-4b5c-8d7e-6f5a4b3c2d1e';
const SESSION = '0193a5f2-7c4b-7d21-9e3f-5a6b7c8d9e0f';

// Exactly what the platform's pushGenerationTask() writes: toSnakeCase + JSON.stringify, undefined keys omitted.
const b2c = {
  task_id: 'c6d1e2f3-4a5b-4c6d-8e7f-901a2b3c4d5e',
  channel: 'b2c',
  user_id: USER,
  session_id: SESSION,
  image_urls: [
    'https://abc.supabase.co/storage/v1/object/sign/virtual-tryon-images/uploads/u/model.jpg?token=eyJ',
    'https://abc.supabase.co/storage/v1/object/sign/virtual-tryon-images/uploads/u/outfit.jpg?token=eyJ',
  ],
  prompt: 'Create a realistic virtual try-on image.',
  request_id: 'req_3f0c6a8e-1b2d-4e5f-8a9b-0c1d2e3f4a5b',
  version: 1,
  created_at: '2026-02-17T10:11:12.345Z',
};
const b2bAbsorb = { ...b2c, channel: 'b2b', store_id: STORE, user_id: undefined, request_id: 'client-req-42' };
const b2bResell = { ...b2bAbsorb, shopper_email: '  Shopper@Example.COM ' };
const text = (o: unknown) => JSON.stringify(o);

describe('parseTaskPayload: producer payloads', () => {
  it('accepts a B2C payload and charges the user', () => {
    const r = parseTaskPayload(text(b2c));
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.task).toEqual(b2c);
    expect(accountOfTask(r.task)).toBe(`user:${USER}`);
  });

  it('accepts a B2B absorb payload (no user_id key) and charges the store', () => {
    const raw = text(b2bAbsorb);
    expect(raw).not.toContain('user_id');
    const r = parseTaskPayload(raw);
    expect(r.ok && accountOfTask(r.task)).toBe(`store:${STORE}`);
  });

  it('accepts a B2B resell payload and charges the shopper under a hashed email', () => {
    const r = parseTaskPayload(text(b2bResell));
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.task.shopper_email).toBe('Shopper@Example.COM');
    const account = accountOfTask(r.task);
    expect(account).toBe(`shopper:${STORE}.${hashShopperEmail('shopper@example.com')}`);
    expect(account).not.toContain('@');
  });

  it('coerces a numeric-string version and defaults a missing or null version to 1', () => {
    for (const version of ['1', undefined, null]) {
      const r = parseTaskPayload(text({ ...b2c, version }));
      expect(r.ok && r.task.version).toBe(1);
    }
  });

  it('ignores unknown keys', () => {
    const r = parseTaskPayload(text({ ...b2c, billing_mode: 'resell', extra: { nested: true } }));
    expect(r.ok).toBe(true);
    if (r.ok) expect(Object.keys(r.task)).not.toContain('billing_mode');
  });

  it('treats null and empty other-owner ids (a Python model_dump) as absent', () => {
    const r = parseTaskPayload(text({ ...b2c, store_id: null, shopper_email: null }));
    expect(r.ok).toBe(true);
    const r2 = parseTaskPayload(text({ ...b2bAbsorb, user_id: '' }));
    expect(r2.ok).toBe(true);
  });

  it('allows an empty prompt (the worker substitutes its default)', () => {
    expect(parseTaskPayload(text({ ...b2c, prompt: '' })).ok).toBe(true);
  });
});

describe('parseTaskPayload: refusals', () => {
  it('refuses invalid JSON without a partial', () => {
    const r = parseTaskPayload('{"task_id": "x", ');
    expect(r).toMatchObject({ ok: false });
    if (r.ok) return;
    expect(r.reason).toMatch(/^invalid JSON/);
    expect(r.partial).toBeUndefined();
  });

  it.each([
    ['[1,2]', 'array'],
    ['null', 'null'],
    ['"a string"', 'string'],
    ['42', 'number'],
  ])('refuses non-object JSON %s', (raw, kind) => {
    const r = parseTaskPayload(raw);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toContain(kind);
  });

  it('refuses a b2c payload without user_id and keeps a partial for GenerationRejected', () => {
    const { user_id: _, ...noUser } = b2c;
    const r = parseTaskPayload(text(noUser));
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.reason).toContain('user_id: required for channel b2c');
    expect(r.partial).toEqual({
      session_id: SESSION,
      channel: 'b2c',
      task_id: b2c.task_id,
      request_id: b2c.request_id,
    });
  });

  it('refuses a b2b payload without store_id', () => {
    const r = parseTaskPayload(text({ ...b2bAbsorb, store_id: undefined }));
    expect(!r.ok && r.reason).toContain('store_id: required for channel b2b');
  });

  it('refuses a payload naming both owners (who pays would be ambiguous)', () => {
    const r = parseTaskPayload(text({ ...b2bAbsorb, user_id: USER }));
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.reason).toContain('user_id: not allowed for channel b2b');
    expect(r.partial).toMatchObject({ session_id: SESSION, channel: 'b2b', store_id: STORE, account: `store:${STORE}` });
  });

  it('overage_charge_id: b2b absorb only (never with a shopper, never b2c)', () => {
    const ok = parseTaskPayload(text({ ...b2bAbsorb, overage_charge_id: ' sub_01h ' }));
    expect(ok.ok && ok.task.overage_charge_id).toBe('sub_01h');
    const resell = parseTaskPayload(text({ ...b2bResell, overage_charge_id: 'sub_01h' }));
    expect(!resell.ok && resell.reason).toMatch(/overage_charge_id: not allowed with shopper_email/);
    const b2cOverage = parseTaskPayload(text({ ...b2c, overage_charge_id: 'sub_01h' }));
    expect(!b2cOverage.ok && b2cOverage.reason).toMatch(/overage_charge_id: only for channel b2b/);
  });

  it('refuses shopper_email on b2c', () => {
    const r = parseTaskPayload(text({ ...b2c, shopper_email: 'a@b.c' }));
    expect(!r.ok && r.reason).toContain('shopper_email');
  });

  it('uses one rule for emails, the same as shopper accounts (name@domain.tld, like the platform)', () => {
    for (const email of ['@', 'a@', '@b.c', 'a@b', 'a b@c.d', 'a@b@c.d', `${'x'.repeat(310)}@example.com`]) {
      const r = parseTaskPayload(text({ ...b2bResell, shopper_email: email }));
      expect(!r.ok && r.reason, email).toContain('shopper_email: must be an email address');
      expect(isEmail(email), email).toBe(false);
      expect(() => parseAccountId(`shopper:${STORE}:${email}`), email).toThrow(InvalidAccountError);
    }
    for (const email of ['a@b.co', ' Ann.Lee+tag@Example.COM ', '100%real@example.com']) {
      expect(parseTaskPayload(text({ ...b2bResell, shopper_email: email })).ok, email).toBe(true);
      expect(isEmail(email), email).toBe(true);
      expect(parseAccountId(`shopper:${STORE}:${email}`).id).toBe(`${STORE}.${hashShopperEmail(email)}`);
    }
  });

  it('refuses a version it does not understand, with a clear reason', () => {
    const r = parseTaskPayload(text({ ...b2c, version: 2 }));
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.reason).toContain('unsupported payload version 2; this worker understands 1');
    expect(r.partial?.account).toBe(`user:${USER}`);
  });

  it('refuses a non-numeric version string', () => {
    expect(parseTaskPayload(text({ ...b2c, version: 'v1' })).ok).toBe(false);
  });

  it('enforces the upstream bounds (BUG-26)', () => {
    const many = Array.from({ length: MAX_IMAGES + 1 }, (_, i) => `https://cdn.example.com/${i}.jpg`);
    const r1 = parseTaskPayload(text({ ...b2c, image_urls: many }));
    expect(!r1.ok && r1.reason).toContain(`at most ${MAX_IMAGES} images`);
    expect(parseTaskPayload(text({ ...b2c, image_urls: many.slice(0, MAX_IMAGES) })).ok).toBe(true);
    const r2 = parseTaskPayload(text({ ...b2c, prompt: 'x'.repeat(MAX_PROMPT_CHARS + 1) }));
    expect(!r2.ok && r2.reason).toContain('prompt');
    expect(parseTaskPayload(text({ ...b2c, prompt: 'x'.repeat(MAX_PROMPT_CHARS) })).ok).toBe(true);
  });

  it('refuses empty image lists and non-http(s) URLs', () => {
    expect(parseTaskPayload(text({ ...b2c, image_urls: [] })).ok).toBe(false);
    for (const url of ['file:///etc/passwd', 'ftp://x/y.jpg', 'not a url', '/relative.jpg', 'gopher://h/']) {
      const r = parseTaskPayload(text({ ...b2c, image_urls: [url] }));
      expect(!r.ok && r.reason).toContain('image_urls.0: must be an absolute http(s) URL');
    }
  });

  it('refuses session ids that could steer a storage path, without a partial', () => {
    const r = parseTaskPayload(text({ ...b2c, session_id: '../../etc' }));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.partial).toBeUndefined();
  });

  it('gives no partial when the channel is unknown', () => {
    const r = parseTaskPayload(text({ ...b2c, channel: 'b2x' }));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.partial).toBeUndefined();
  });

  it('refuses user and store ids that are not the platform\'s UUIDs, naming the field, and records no account for them', () => {
    for (const id of ['u-1', 'store-1', '12345', USER.toUpperCase(), `${USER}0`, `{${USER}}`, USER.replace(/-/g, '')]) {
      const b2cBad = parseTaskPayload(text({ ...b2c, user_id: id }));
      expect(!b2cBad.ok && b2cBad.reason, id).toBe('invalid payload: user_id: must be a UUID in lowercase canonical form (the platform id)');
      if (!b2cBad.ok) expect(b2cBad.partial).toEqual({ session_id: SESSION, channel: 'b2c', task_id: b2c.task_id, request_id: b2c.request_id });
      const b2bBad = parseTaskPayload(text({ ...b2bAbsorb, store_id: id }));
      expect(!b2bBad.ok && b2bBad.reason, id).toContain('store_id: must be a UUID');
      if (!b2bBad.ok) expect(b2bBad.partial?.account).toBeUndefined();
    }
  });

  it('refuses owner ids with path or separator characters', () => {
    const r = parseTaskPayload(text({ ...b2c, user_id: 'a/b' }));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.partial?.user_id).toBeUndefined();
  });

  it('refuses an unparseable created_at', () => {
    expect(parseTaskPayload(text({ ...b2c, created_at: 'yesterday' })).ok).toBe(false);
  });
});

describe('producer builder', () => {
  it('builds payloads that the worker accepts, in the platform snake_case form', () => {
    const now = new Date('2026-03-01T00:00:00.000Z');
    const t = buildProducerTask({ storeId: STORE, shopperEmail: 's@x.io', imageUrls: ['https://a.example/1.jpg'], now });
    const raw = serializeProducerTask(t);
    expect(Object.keys(JSON.parse(raw)).sort()).toEqual(
      ['channel', 'created_at', 'image_urls', 'prompt', 'request_id', 'session_id', 'shopper_email', 'store_id', 'task_id', 'version'],
    );
    const r = parseTaskPayload(raw);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.task.channel).toBe('b2b');
    expect(r.task.request_id).toMatch(/^req_[0-9a-f-]{36}$/);
    expect(r.task.task_id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(r.task.session_id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(r.task.created_at).toBe('2026-03-01T00:00:00.000Z');
  });

  it('uuidv7 sorts by time', () => {
    const a = uuidv7(1_700_000_000_000);
    const b = uuidv7(1_700_000_000_001);
    expect(a < b).toBe(true);
    expect(a.slice(0, 13).replace('-', '')).toBe((1_700_000_000_000).toString(16).padStart(12, '0'));
  });

  it('transforms keys like the platform toSnakeCase', () => {
    expect(snakeCaseKey('imageUrls')).toBe('image_urls');
    expect(snakeCaseKey('shopperEmail')).toBe('shopper_email');
    expect(snakeCaseKey('HTTPServer')).toBe('http_server');
    expect(snakeCaseKey('version2Id')).toBe('version2_id');
  });

  it('refuses ambiguous owners', () => {
    expect(() => buildProducerTask({ imageUrls: ['https://a/1.jpg'] })).toThrow();
    expect(() => buildProducerTask({ userId: USER, storeId: STORE, imageUrls: ['https://a/1.jpg'] })).toThrow();
    expect(() => buildProducerTask({ userId: USER, shopperEmail: 'a@b.c', imageUrls: ['https://a/1.jpg'] })).toThrow();
  });
});
