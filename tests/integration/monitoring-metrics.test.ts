// Every metric name a dashboard or an alert rule queries exists in the service's metric catalogue (src/metrics.ts),
// or is declared external (Prometheus' `up`/`ALERTS`, node-exporter). Dashboards that query nothing and rules on
// metrics nobody exports were the original's failure (reference §8.3).
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createMetrics } from '../../src/metrics.ts';
import { ROOT, run, tempDir } from '../support/stack.ts';
import { EXTERNAL_METRICS, exportedTypes, metricNamesIn, monitoringUsage, unknownNames } from '../support/monitoring.ts';

describe('metric names used by monitoring/', () => {
  it('extracts metric names from PromQL, not functions, labels or keywords', () => {
    expect(metricNamesIn('sum by (le, stage) (rate(wearon_generation_stage_seconds_bucket{stage="queue_to_done"}[5m]))').sort()).toEqual([
      'wearon_generation_stage_seconds_bucket',
    ]);
    expect(metricNamesIn('max(x_total) > 0 and on() (sum(increase(y_total[10m])) or vector(0)) == 0').sort()).toEqual(['x_total', 'y_total']);
    expect(metricNamesIn('a / b < 0.10 and time() - c > 26 * 3600 offset 5m').sort()).toEqual(['a', 'b', 'c']);
    expect(metricNamesIn('label_join(ALERTS{alertstate="firing"}, "dst", "", "alertname")')).toEqual(['ALERTS']);
    expect(metricNamesIn('node_filesystem_avail_bytes > 40e9')).toEqual(['node_filesystem_avail_bytes']);
  });

  it('finds the rules, the Grafana bridge rule and all five dashboards', () => {
    const usage = monitoringUsage();
    const sources = new Set(usage.map((u) => u.source.split(':')[0]));
    for (const d of ['wearon-pipeline.json', 'wearon-ledger.json', 'wearon-http.json', 'wearon-size-rec.json', 'wearon-host.json']) {
      expect(sources).toContain(d);
    }
    expect(sources).toContain('rules/wearon.yml');
    expect(sources).toContain('grafana alerting/rules.yml');
    for (const u of usage) expect(u.names.length, `${u.source}: ${u.expr}`).toBeGreaterThan(0);
  });

  it('every queried name is exported by createMetrics() or declared external', async () => {
    const types = exportedTypes(await createMetrics().registry.metrics());
    // The comparison itself: a histogram's series resolve to it, an unknown name does not.
    expect(unknownNames(['wearon_bogus_total', 'wearon_http_request_duration_seconds_bucket', 'wearon_credits_total_count'], types)).toEqual([
      'wearon_bogus_total',
      'wearon_credits_total_count',
    ]);
    const usage = monitoringUsage();
    const used = new Set(usage.flatMap((u) => u.names));
    const missing = unknownNames(used, types);
    const where = missing.map((n) => `${n} (in ${usage.filter((u) => u.names.includes(n)).map((u) => u.source).join(', ')})`);
    expect(where).toEqual([]);
    // Declared externals are really used (the list does not rot into a blanket allow-list).
    for (const ext of EXTERNAL_METRICS) expect(used, ext).toContain(ext);
  });

  it('covers the ledger movements the credit dashboard must show', () => {
    const ledger = monitoringUsage().filter((u) => u.source.startsWith('wearon-ledger.json'));
    const exprs = ledger.map((u) => u.expr).join('\n');
    for (const movement of ['deducted', 'captured', 'refunded']) expect(exprs).toContain(`movement="${movement}"`);
    expect(ledger.some((u) => u.names.includes('wearon_credit_open_holds'))).toBe(true);
  });

  it('lists service metrics no dashboard or rule shows yet (informational)', async () => {
    const types = exportedTypes(await createMetrics({ defaults: false }).registry.metrics());
    const used = new Set(monitoringUsage().flatMap((u) => u.names.map((n) => n.replace(/_(bucket|sum|count)$/, ''))));
    const unshown = [...types.keys()].filter((n) => !used.has(n));
    if (unshown.length > 0) console.warn(`service metrics on no dashboard: ${unshown.join(', ')}`);
    expect(types.size).toBeGreaterThan(20);
  });
});

describe('dashboards are generated', () => {
  it('the committed JSON is what monitoring/grafana/generate-dashboards.mjs produces', async () => {
    const out = tempDir('dash');
    const { code, out: log } = await run(process.execPath, [path.join(ROOT, 'monitoring', 'grafana', 'generate-dashboards.mjs')], {
      env: { ...process.env, DASHBOARDS_OUT: out },
    });
    expect(log).toBe('');
    expect(code).toBe(0);
    const committed = path.join(ROOT, 'monitoring', 'grafana', 'dashboards');
    expect(readdirSync(out).sort()).toEqual(readdirSync(committed).sort());
    for (const f of readdirSync(out)) expect(readFileSync(path.join(out, f), 'utf8'), f).toBe(readFileSync(path.join(committed, f), 'utf8'));
  });
});
