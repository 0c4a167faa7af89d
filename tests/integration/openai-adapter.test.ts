// The OpenAI adapter with the real SDK against the local images-edit stand-in.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import sharp from 'sharp';
import type { PreparedImage, RateLimiter } from '../../src/app/ports/pipeline.ts';
import { createOpenAIGenerator, DEFAULT_TRYON_PROMPT, retryAfterMs, type OpenAIGeneratorOptions } from '../../src/adapters/imagegen/openai.ts';
import { estimateCostUsd, normalizeUsage } from '../../src/adapters/imagegen/pricing.ts';
import { createMetrics } from '../../src/metrics.ts';
import { startFakeOpenAI, type FakeOpenAI } from '../support/fakeOpenAI.ts';
import { pipelineError } from '../support/assertions.ts';
import { waitFor } from '../support/deadlines.ts';

let fake: FakeOpenAI;
let images: PreparedImage[];
const ctx = { requestId: 'req-1' };

function generator(over: Partial<OpenAIGeneratorOptions> = {}) {
  const metrics = createMetrics({ defaults: false });
  const gen = createOpenAIGenerator({
    apiKey: 'sk-test',
    baseURL: fake.baseURL,
    model: 'gpt-image-1.5',
    quality: 'medium',
    size: '1024x1536',
    timeoutMs: 5_000,
    maxRetries: 2,
    backoffBaseMs: 10,
    backoffMaxMs: 20,
    metrics,
    ...over,
  });
  const statuses = async () =>
    Object.fromEntries((await metrics.openaiRequests.get()).values.map((v) => [String(v.labels.status), v.value]));
  return { gen, metrics, statuses };
}

beforeAll(async () => {
  fake = await startFakeOpenAI();
  const jpg = (c: string) => sharp({ create: { width: 40, height: 60, channels: 3, background: c } }).jpeg().toBuffer();
  images = [
    { filename: 'model.jpg', bytes: await jpg('#123456'), contentType: 'image/jpeg' },
    { filename: 'image_1.jpg', bytes: await jpg('#654321'), contentType: 'image/jpeg' },
  ];
});
afterEach(() => {
  fake.requests.length = 0;
});
afterAll(() => fake.close());

describe('openai adapter', () => {
  it('sends the edit request and returns JPEG bytes, usage and cost', async () => {
    const { gen, statuses } = generator();
    const out = await gen.generate({ images, prompt: '  dress her  ' }, ctx);
    expect(out.provider).toBe('openai');
    expect(out.contentType).toBe('image/jpeg');
    expect(out.bytes.equals(fake.defaultImage)).toBe(true);
    expect(out.usage).toEqual({
      inputTokens: 1500,
      outputTokens: 1600,
      textInputTokens: 100,
      imageInputTokens: 1400,
      textOutputTokens: 0,
      imageOutputTokens: 1600,
    });
    // (100*5 + 1400*8 + 1600*32) / 1e6
    expect(out.costUsd).toBeCloseTo(0.0629, 6);
    expect(fake.requests).toHaveLength(1);
    const req = fake.requests[0]!;
    expect(req.headers.authorization).toBe('Bearer sk-test');
    expect(req.fields).toMatchObject({ model: 'gpt-image-1.5', prompt: 'dress her', quality: 'medium', size: '1024x1536', output_format: 'jpeg', n: '1' });
    expect(req.files.map((f) => [f.field, f.filename, f.type])).toEqual([
      ['image[]', 'model.jpg', 'image/jpeg'],
      ['image[]', 'image_1.jpg', 'image/jpeg'],
    ]);
    expect(req.files[0]!.bytes.equals(images[0]!.bytes)).toBe(true);
    expect(await statuses()).toEqual({ '200': 1 });
  });

  it('uses the default prompt when the task has none', async () => {
    await generator().gen.generate({ images, prompt: '   ' }, ctx);
    expect(fake.requests[0]!.fields.prompt).toBe(DEFAULT_TRYON_PROMPT);
  });

  it('converts a PNG answer to JPEG (upstream ignoring output_format)', async () => {
    fake.script({ kind: 'success', image: await sharp({ create: { width: 8, height: 8, channels: 4, background: '#00ff0080' } }).png().toBuffer() });
    const out = await generator().gen.generate({ images, prompt: 'x' }, ctx);
    expect((await sharp(out.bytes).metadata()).format).toBe('jpeg');
  });

  it('retries a 500 and a dropped connection, then succeeds', async () => {
    fake.script({ kind: 'server_error' }, { kind: 'drop' });
    const { gen, statuses } = generator();
    const out = await gen.generate({ images, prompt: 'x' }, ctx);
    expect(out.bytes.equals(fake.defaultImage)).toBe(true);
    expect(fake.requests).toHaveLength(3);
    expect(await statuses()).toEqual({ '200': 1, '500': 1, network: 1 });
  });

  it('gives up after maxRetries 5xx with upstream_error', async () => {
    fake.script({ kind: 'server_error', status: 502 }, { kind: 'server_error', status: 503 });
    const err = await pipelineError(generator({ maxRetries: 1 }).gen.generate({ images, prompt: 'x' }, ctx));
    expect(err.code).toBe('upstream_error');
    expect(fake.requests).toHaveLength(2);
  });

  it('turns a 429 into rate_limited with retryAfterMs >= 10 s, without retrying in process', async () => {
    fake.script({ kind: 'rate_limit', retryAfter: '3' });
    const err = await pipelineError(generator().gen.generate({ images, prompt: 'x' }, ctx));
    expect(err.code).toBe('rate_limited');
    expect(err.options.retryAfterMs).toBe(10_000);
    expect(fake.requests).toHaveLength(1);

    fake.script({ kind: 'rate_limit', retryAfter: '42' });
    const longer = await pipelineError(generator().gen.generate({ images, prompt: 'x' }, ctx));
    expect(longer.options.retryAfterMs).toBe(42_000);
  });

  it('maps moderation_blocked and never leaks the upstream text to users (BUG-20)', async () => {
    fake.script({ kind: 'moderation' });
    const err = await pipelineError(generator().gen.generate({ images, prompt: 'x' }, ctx));
    expect(err.code).toBe('moderation_blocked');
    expect(err.userMessage).toMatch(/flagged by the safety filter/);
    expect(fake.requests).toHaveLength(1);

    fake.script({ kind: 'error', status: 400, body: { error: { message: 'Invalid size secret-detail', type: 'invalid_request_error', code: 'invalid_value' } } });
    const other = await pipelineError(generator().gen.generate({ images, prompt: 'x' }, ctx));
    expect(other.code).toBe('upstream_error');
    expect(other.userMessage).not.toContain('secret-detail');
    expect(other.message).not.toContain('secret-detail');
    expect(fake.requests).toHaveLength(2);
  });

  it('times out a stalled body (the SDK timer alone would wait forever)', async () => {
    fake.script({ kind: 'stall_body' });
    const { gen, statuses } = generator({ timeoutMs: 400 });
    const err = await pipelineError(gen.generate({ images, prompt: 'x' }, ctx));
    expect(err.code).toBe('upstream_timeout');
    expect(fake.requests).toHaveLength(1);
    expect((await statuses()).timeout).toBe(1);
  });

  it('times out late headers within the one deadline', async () => {
    fake.script({ kind: 'slow_headers', delayMs: 3_000 });
    const err = await pipelineError(generator({ timeoutMs: 300 }).gen.generate({ images, prompt: 'x' }, ctx));
    expect(err.code).toBe('upstream_timeout');
  });

  it("propagates the caller's abort", async () => {
    fake.script({ kind: 'slow_headers', delayMs: 3_000 });
    const ctl = new AbortController();
    const reason = new Error('shutdown');
    // Aborted once the stand-in holds the request: its scripted step is taken, so none is left over for the next test
    // (a fixed 50 ms could abort before the request arrived on a busy machine).
    const before = fake.requests.length;
    void waitFor('the stand-in to hold the request', () => fake.requests.length > before, 10_000).then(
      () => ctl.abort(reason),
      (err: unknown) => ctl.abort(err), // never arrived: the assertion below names it
    );
    const err = await generator().gen.generate({ images, prompt: 'x' }, { requestId: 'r', signal: ctl.signal }).catch((e: unknown) => e);
    expect(err).toBe(reason);
  });

  it('acquires the rate limiter before every upstream request and observes the wait', async () => {
    let calls = 0;
    const limiter: RateLimiter = {
      acquire: async () => {
        calls++;
        return 250;
      },
    };
    fake.script({ kind: 'server_error' });
    const { gen, metrics } = generator({ rateLimiter: limiter });
    await gen.generate({ images, prompt: 'x' }, ctx);
    expect(calls).toBe(2);
    const hist = await metrics.rateLimitWaitSeconds.get();
    expect(hist.values.find((v) => v.metricName === 'wearon_ratelimit_wait_seconds_sum')?.value).toBeCloseTo(0.5);
  });
});

describe('pricing', () => {
  it('attributes output to image tokens when output_tokens_details is missing (BUG-19)', () => {
    const usage = normalizeUsage({ input_tokens: 1000, output_tokens: 2000, input_tokens_details: { text_tokens: 200, image_tokens: 800 } });
    expect(usage).toMatchObject({ textOutputTokens: 0, imageOutputTokens: 2000, textInputTokens: 200, imageInputTokens: 800 });
    expect(estimateCostUsd(usage!, 'gpt-image-1.5')).toBeCloseTo((200 * 5 + 800 * 8 + 2000 * 32) / 1e6, 9);
    expect(normalizeUsage(null)).toBeNull();
  });

  it('prices unknown models like the default model', () => {
    const u = normalizeUsage({ input_tokens: 10, output_tokens: 10 })!;
    expect(estimateCostUsd(u, 'some-future-model')).toBe(estimateCostUsd(u, 'gpt-image-1.5'));
  });

  it('reads retry-after in seconds, ms and HTTP-date forms', () => {
    expect(retryAfterMs(new Headers({ 'retry-after': '7' }))).toBe(7000);
    expect(retryAfterMs(new Headers({ 'retry-after-ms': '1500', 'retry-after': '7' }))).toBe(1500);
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(retryAfterMs(new Headers({ 'retry-after': 'Thu, 01 Jan 2026 00:00:30 GMT' }), now)).toBe(30_000);
    expect(retryAfterMs(new Headers())).toBeUndefined();
  });
});
