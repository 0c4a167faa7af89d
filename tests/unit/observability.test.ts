// Logs never carry secrets; readiness answers from cached probes even when a dependency hangs.
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { HealthMonitor } from '../../src/app/health.ts';
import { createLogger, redactUrl } from '../../src/logger.ts';
import { createMetrics } from '../../src/metrics.ts';

function capture() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      lines.push(String(chunk));
      done();
    },
  });
  return { lines, stream };
}

describe('logging', () => {
  it('writes JSON lines with the request id and redacts keys, tokens and passwords', () => {
    const { lines, stream } = capture();
    const log = createLogger({ stream, level: 'info' });
    log.child({ request_id: 'req_1' }).info(
      { apiKey: 'sk-live-123', headers: { authorization: 'Bearer t0k3n' }, config: { OPENAI_API_KEY: 'sk-x', SUPABASE_SERVICE_ROLE_KEY: 'srk' }, db: { password: 'pw' } },
      'hello',
    );
    const line = JSON.parse(lines[0]!);
    expect(line).toMatchObject({ level: 'info', request_id: 'req_1', msg: 'hello', service: 'wearon-worker' });
    const text = lines.join('');
    for (const secret of ['sk-live-123', 't0k3n', 'sk-x', 'srk', '"pw"']) expect(text).not.toContain(secret);
    expect(text).toContain('[REDACTED]');
  });

  it('strips signatures and tokens from URLs', () => {
    expect(redactUrl('https://x.supabase.co/storage/v1/object/sign/b/p.jpg?token=abc.def&x=1')).toBe(
      'https://x.supabase.co/storage/v1/object/sign/b/p.jpg?token=[REDACTED]&x=1',
    );
    expect(redactUrl('http://h/files/a.jpg?expires=9&sig=deadbeef')).toBe('http://h/files/a.jpg?expires=9&sig=[REDACTED]');
  });
});

describe('readiness', () => {
  it('answers at once from the last probe results, names the failing check, and times out a hanging probe', async () => {
    const metrics = createMetrics({ defaults: false });
    const health = new HealthMonitor({ timeoutMs: 50, metrics });
    health.add({ name: 'ledger', check: async () => ({ store: 'sqlite' }) });
    health.add({ name: 'redis', check: () => new Promise(() => {}) });
    expect(health.snapshot().status).toBe('degraded'); // nothing checked yet
    await health.runOnce();
    const snap = health.snapshot();
    expect(snap.status).toBe('degraded');
    expect(snap.checks.ledger).toMatchObject({ ok: true, store: 'sqlite' });
    expect(snap.checks.redis).toMatchObject({ ok: false, error: 'timed out after 50 ms' });
    const gauge = await metrics.healthCheck.get();
    expect(Object.fromEntries(gauge.values.map((v) => [v.labels.check, v.value]))).toEqual({ ledger: 1, redis: 0 });
  });
});
