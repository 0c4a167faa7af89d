// Jobs (src/app/jobs.ts): one running job per kind with a clear answer when one runs, progress with rate and ETA per
// phase, the last finished job kept, failures and cancellation recorded.
import { describe, expect, it } from 'vitest';
import { Jobs, type JobControl } from '../../src/app/jobs.ts';

/** A job body the test drives step by step. */
function controllable<R>() {
  let ctl!: JobControl;
  let finish!: (r: R) => void;
  let fail!: (e: Error) => void;
  let ready!: () => void;
  const started = new Promise<void>((r) => (ready = r));
  const run = (c: JobControl) => {
    ctl = c;
    ready();
    return new Promise<R>((res, rej) => {
      finish = res;
      fail = rej;
      c.signal.addEventListener('abort', () => rej(new Error('aborted')));
    });
  };
  return { run, started, ctl: () => ctl, finish: (r: R) => finish(r), fail: (e: Error) => fail(e) };
}

describe('Jobs', () => {
  it('runs one job per kind and answers a second start with the running one', async () => {
    const jobs = new Jobs();
    const a = controllable<string>();
    const first = jobs.start('replay', { subject: 'credit-balances', trigger: 'console' }, a.run);
    expect(first.started).toBe(true);
    await a.started;
    const second = jobs.start('replay', { subject: 'session-status', trigger: 'console' }, async () => 'never');
    expect(second).toMatchObject({ started: false, running: { subject: 'credit-balances', state: 'running' } });
    // another kind is independent
    expect(jobs.start('verify', { trigger: 'schedule' }, async () => 'ok').started).toBe(true);
    a.finish('swapped');
    await jobs.settled('replay');
    expect(jobs.view('replay')).toMatchObject({ running: null, last: { state: 'done', result: 'swapped', subject: 'credit-balances' } });
    expect(jobs.start('replay', { trigger: 'console' }, async () => 'again').started).toBe(true);
  });

  it('reports progress, rate and ETA for the current phase', async () => {
    const jobs = new Jobs();
    const a = controllable<number>();
    jobs.start('replay', { trigger: 'console' }, a.run);
    await a.started;
    a.ctl().phase('replaying', 'events');
    a.ctl().progress(0, 1000);
    await new Promise((r) => setTimeout(r, 300)); // time passing is the input here (a rate needs elapsed time), not a wait
    a.ctl().progress(400);
    const v = jobs.view('replay').running!;
    expect(v).toMatchObject({ phase: 'replaying', progress: { done: 400, total: 1000, unit: 'events' } });
    expect(v.rate).toBeGreaterThan(0);
    expect(v.eta_ms).toBeCloseTo(((1000 - 400) / v.rate!) * 1000, -2);
    a.ctl().phase('swapping');
    expect(jobs.view('replay').running!.phase).toBe('swapping');
    a.finish(1);
    await jobs.settled('replay');
    expect(jobs.view('replay').last).toMatchObject({ state: 'done', phase: 'done', eta_ms: null, rate: null });
  });

  it('records a failure with its message, and stop() cancels what runs', async () => {
    const failures: string[] = [];
    const jobs = new Jobs((kind) => failures.push(kind));
    const a = controllable<void>();
    jobs.start('verify', { trigger: 'console' }, a.run);
    await a.started;
    a.fail(new Error('store closed'));
    await jobs.settled('verify');
    expect(jobs.view('verify').last).toMatchObject({ state: 'failed', error: 'store closed' });
    expect(failures).toEqual(['verify']);
    const b = controllable<void>();
    jobs.start('verify', { trigger: 'console' }, b.run);
    await b.started;
    await jobs.stop();
    expect(jobs.view('verify')).toMatchObject({ running: null, last: { state: 'cancelled' } });
    expect(failures).toEqual(['verify']); // a cancellation is not a failure
  });
});
