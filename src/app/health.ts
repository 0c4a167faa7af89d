// Readiness from cached probe results: probes run in the background with a timeout, so /health answers at once and
// never waits on a slow dependency (the original's BUG-29).
import type { Metrics } from '../metrics.ts';

export interface Probe {
  name: string;
  /** resolves when healthy; throws (or times out) when not; may return details */
  check: () => Promise<Record<string, unknown> | void>;
}

export interface CheckResult {
  ok: boolean;
  checked_at: string | null;
  latency_ms: number | null;
  error?: string;
  [detail: string]: unknown;
}

export class HealthMonitor {
  private readonly results = new Map<string, CheckResult>();
  private timer: NodeJS.Timeout | undefined;
  private readonly probes: Probe[] = [];

  constructor(
    private readonly options: { intervalMs?: number; timeoutMs?: number; metrics?: Metrics } = {},
  ) {}

  add(probe: Probe): void {
    this.probes.push(probe);
    this.results.set(probe.name, { ok: false, checked_at: null, latency_ms: null, error: 'not checked yet' });
  }

  async runOnce(): Promise<void> {
    const timeoutMs = this.options.timeoutMs ?? 1000;
    await Promise.all(
      this.probes.map(async (p) => {
        const started = performance.now();
        let timer: NodeJS.Timeout | undefined;
        try {
          const details = await Promise.race([
            p.check(),
            new Promise<never>((_, reject) => {
              timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
            }),
          ]);
          this.set(p.name, { ok: true, ...(details ?? {}) }, started);
        } catch (err) {
          this.set(p.name, { ok: false, error: (err as Error).message ?? String(err) }, started);
        } finally {
          clearTimeout(timer);
        }
      }),
    );
  }

  private set(name: string, r: { ok: boolean } & Record<string, unknown>, started: number) {
    this.results.set(name, { ...r, checked_at: new Date().toISOString(), latency_ms: Math.round(performance.now() - started) } as CheckResult);
    this.options.metrics?.healthCheck.set({ check: name }, r.ok ? 1 : 0);
  }

  start(): void {
    void this.runOnce();
    this.timer = setInterval(() => void this.runOnce(), this.options.intervalMs ?? 5000);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  snapshot(): { status: 'ok' | 'degraded'; checks: Record<string, CheckResult> } {
    const checks = Object.fromEntries(this.results);
    const ok = [...this.results.values()].every((r) => r.ok);
    return { status: ok ? 'ok' : 'degraded', checks };
  }
}
