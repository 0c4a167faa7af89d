// Generates the provisioned Grafana dashboards (monitoring/grafana/dashboards/*.json): `node monitoring/grafana/generate-dashboards.mjs`.
// Edit the queries here, regenerate, commit both. Every metric name must exist in src/metrics.ts (checked by
// tests/integration/monitoring-metrics.test.ts).
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
const PROM = { type: 'prometheus', uid: 'prometheus' };
const LOKI = { type: 'loki', uid: 'loki' };
let id = 0;
function panel(type, title, targets, { w = 12, h = 8, unit, thresholds, ds = PROM, extra = {}, description } = {}) {
  return {
    id: ++id, type, title, ...(description ? { description } : {}), datasource: ds,
    gridPos: { w, h, x: 0, y: 0 },
    targets: targets.map(([expr, legend], i) => ({ refId: String.fromCharCode(65 + i), datasource: ds, expr, ...(legend ? { legendFormat: legend } : {}), ...(type === 'stat' ? { instant: true } : {}) })),
    fieldConfig: { defaults: { ...(unit ? { unit } : {}), ...(thresholds ? { thresholds: { mode: 'absolute', steps: thresholds } } : {}) }, overrides: [] },
    options: type === 'stat' ? { reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false }, colorMode: 'background', graphMode: 'none' } : type === 'logs' ? { showTime: true, wrapLogMessage: true, sortOrder: 'Descending' } : { legend: { displayMode: 'list', placement: 'bottom' }, tooltip: { mode: 'multi' } },
    ...extra,
  };
}
const green = (v, warn, crit) => [{ color: 'green', value: null }, ...(warn !== undefined ? [{ color: 'orange', value: warn }] : []), ...(crit !== undefined ? [{ color: 'red', value: crit }] : [])];
function layout(panels) {
  let x = 0, y = 0, rowH = 0;
  for (const p of panels) {
    if (x + p.gridPos.w > 24) { x = 0; y += rowH; rowH = 0; }
    p.gridPos.x = x; p.gridPos.y = y; x += p.gridPos.w; rowH = Math.max(rowH, p.gridPos.h);
  }
  return panels;
}
function dashboard(uid, title, description, panels, refresh = '30s') {
  return { uid, title, description, tags: ['wearon'], timezone: 'utc', editable: false, graphTooltip: 1, schemaVersion: 39, version: 1, refresh,
    time: { from: 'now-6h', to: 'now' }, templating: { list: [] }, annotations: { list: [] }, panels: layout(panels) };
}
const stat = (title, expr, o = {}) => panel('stat', title, [[expr]], { w: 4, h: 4, ...o });
const ts = (title, targets, o = {}) => panel('timeseries', title, targets, o);

const dashboards = {
  'wearon-pipeline': dashboard('wearon-pipeline', 'WearOn / Generation pipeline', 'Intake, generation outcomes, stage latency, upstream (OpenAI) behaviour.', [
    stat('Completed (24h)', 'sum(increase(wearon_generations_total{outcome="completed"}[24h]))', { unit: 'short' }),
    stat('Failure ratio (15m)', 'sum(rate(wearon_generations_total{outcome="failed"}[15m])) / sum(rate(wearon_generations_total{outcome=~"completed|failed"}[15m]))', { unit: 'percentunit', thresholds: green(0, 0.05, 0.1) }),
    stat('p95 queue to done (15m)', 'histogram_quantile(0.95, sum by (le) (rate(wearon_generation_stage_seconds_bucket{stage="queue_to_done"}[15m])))', { unit: 's', thresholds: green(0, 30, 45) }),
    stat('Waiting in queue', 'max(wearon_queue_depth{queue="waiting"})', { thresholds: green(0, 50, 200) }),
    stat('In flight', 'sum(wearon_generations_in_flight)'),
    stat('Dead letters (list)', 'max(wearon_queue_depth{queue="dead_letter"})', { thresholds: green(0, 1) }),
    ts('Generations by outcome (per minute)', [['sum by (outcome) (rate(wearon_generations_total[5m])) * 60', '{{outcome}}']], { unit: 'short' }),
    ts('Failures by error code (per hour)', [['sum by (error_code) (increase(wearon_generations_total{outcome=~"failed|rejected"}[1h]))', '{{error_code}}']], { unit: 'short' }),
    ts('Queue depth', [['max by (queue) (wearon_queue_depth)', '{{queue}}']], { unit: 'short' }),
    ts('Tasks taken (per minute)', [['sum by (source) (rate(wearon_tasks_received_total[5m])) * 60', '{{source}}'], ['sum(rate(wearon_dead_letter_total[5m])) * 60', 'dead-lettered']], { unit: 'short' }),
    ts('Stage latency p95', [['histogram_quantile(0.95, sum by (le, stage) (rate(wearon_generation_stage_seconds_bucket[5m])))', '{{stage}}']], { unit: 's' }),
    ts('Queue to done p50 / p95 (target 45 s)', [['histogram_quantile(0.5, sum by (le) (rate(wearon_generation_stage_seconds_bucket{stage="queue_to_done"}[5m])))', 'p50'], ['histogram_quantile(0.95, sum by (le) (rate(wearon_generation_stage_seconds_bucket{stage="queue_to_done"}[5m])))', 'p95']], { unit: 's', thresholds: green(0, 45) }),
    ts('OpenAI responses by status (per minute)', [['sum by (status) (rate(wearon_openai_requests_total[5m])) * 60', '{{status}}']], { unit: 'short' }),
    ts('Rate limiter wait p95', [['histogram_quantile(0.95, sum by (le) (rate(wearon_ratelimit_wait_seconds_bucket[5m])))', 'p95 wait']], { unit: 's' }),
    ts('Upstream cost (USD per hour)', [['sum by (provider) (increase(wearon_generation_cost_usd_total[1h]))', '{{provider}}']], { unit: 'currencyUSD' }),
    ts('Generations in flight per worker', [['wearon_generations_in_flight', '{{instance}}']], { unit: 'short' }),
    panel('logs', 'Worker errors and warnings', [['{service="worker"} | json | level=~"error|warn|fatal"']], { w: 24, h: 10, ds: LOKI }),
  ]),
  'wearon-ledger': dashboard('wearon-ledger', 'WearOn / Credit ledger', 'Credit movements, open holds, ledger verification, event store and projections.', [
    stat('Deducted (24h)', 'sum(increase(wearon_credits_total{movement="deducted"}[24h]))'),
    stat('Captured (24h)', 'sum(increase(wearon_credits_total{movement="captured"}[24h]))'),
    stat('Refunded (24h)', 'sum(increase(wearon_credits_total{movement="refunded"}[24h]))'),
    stat('Open holds', 'max(wearon_credit_open_holds)', { description: 'Credits deducted for generations not yet captured or refunded (credits, not holds; reported by the credit-balances projector).' }),
    stat('Verify violations', 'max(wearon_ledger_verify_violations)', { thresholds: green(0, 1) }),
    stat('Since last verify', 'time() - max(wearon_ledger_verify_last_run_timestamp_seconds > 0)', { unit: 's', thresholds: green(0, 93600) }),
    ts('Credit movements (per hour)', [['sum by (movement) (increase(wearon_credits_total[1h]))', '{{movement}}']], { unit: 'short' }),
    ts('Open holds', [['max(wearon_credit_open_holds)', 'credits held']], { unit: 'short' }),
    ts('Deducted minus settled (24h window)', [['sum(increase(wearon_credits_total{movement="deducted"}[24h])) - sum(increase(wearon_credits_total{movement=~"captured|refunded"}[24h]))', 'deducted - (captured + refunded)']], { unit: 'short', description: 'Should track the open holds; a steady gap that holds do not explain means credits leak: run wearon verify.' }),
    ts('Ledger append latency', [['histogram_quantile(0.5, sum by (le, store) (rate(wearon_ledger_append_seconds_bucket[5m])))', 'p50 {{store}}'], ['histogram_quantile(0.99, sum by (le, store) (rate(wearon_ledger_append_seconds_bucket[5m])))', 'p99 {{store}}']], { unit: 's' }),
    ts('Append conflicts (retried, per minute)', [['sum(rate(wearon_ledger_append_conflicts_total[5m])) * 60', 'conflicts']], { unit: 'short' }),
    ts('Projection lag (events)', [['max by (projection) (wearon_projection_lag_events)', '{{projection}}']], { unit: 'short', thresholds: green(0, 500) }),
    ts('Projection throughput (events/s)', [['sum by (projection) (rate(wearon_projection_events_total[5m]))', '{{projection}}']], { unit: 'short' }),
    ts('Projection delay, append to read model p99 (target 50 ms)', [['histogram_quantile(0.99, sum by (le, projection) (rate(wearon_projection_delay_seconds_bucket[5m])))', '{{projection}}']], { unit: 's', thresholds: green(0, 0.05), description: 'What the web app waits for a status or balance to change (Supabase Realtime adds its own delay).' }),
    ts('Projections stuck at an event', [['max by (projection) (wearon_projection_stuck)', '{{projection}}']], { unit: 'short', thresholds: green(0, 1), description: '1 while a projector cannot apply an event: `wearon projections` names it (docs/operations.md, "A projection is stuck").' }),
    ts('Verify violations', [['max(wearon_ledger_verify_violations)', 'violations']], { unit: 'short' }),
    ts('Event store subscription drops (resumed, per hour)', [['sum by (instance) (increase(wearon_eventstore_resubscribes_total[1h]))', '{{instance}}']], { unit: 'short', description: 'KurrentDB catch-up subscriptions resumed after a drop; a steady rate means an unstable connection to the event store.' }),
  ]),
  'wearon-http': dashboard('wearon-http', 'WearOn / HTTP', 'Requests, errors and latency of the service API (behind nginx), readiness and process health.', [
    stat('Workers up', 'sum(up{job="wearon"})', { thresholds: [{ color: 'red', value: null }, { color: 'green', value: 1 }] }),
    stat('Requests/s', 'sum(rate(wearon_http_requests_total[5m]))', { unit: 'reqps' }),
    stat('5xx ratio (5m)', 'sum(rate(wearon_http_requests_total{status=~"5.."}[5m])) / sum(rate(wearon_http_requests_total[5m]))', { unit: 'percentunit', thresholds: green(0, 0.01, 0.05) }),
    stat('Failing readiness checks', 'count(wearon_health_check_up == 0) or vector(0)', { thresholds: green(0, 1) }),
    stat('Event loop lag p99', 'max(wearon_nodejs_eventloop_lag_p99_seconds)', { unit: 's', thresholds: green(0, 0.1, 0.5) }),
    stat('Resident memory (max)', 'max(wearon_process_resident_memory_bytes)', { unit: 'bytes' }),
    ts('Requests by route and status (per second)', [['sum by (route, status) (rate(wearon_http_requests_total[5m]))', '{{route}} {{status}}']], { unit: 'reqps' }),
    ts('Latency p95 by route', [['histogram_quantile(0.95, sum by (le, route) (rate(wearon_http_request_duration_seconds_bucket[5m])))', '{{route}}']], { unit: 's' }),
    ts('4xx / 5xx (per second)', [['sum by (status) (rate(wearon_http_requests_total{status=~"4..|5.."}[5m]))', '{{status}}']], { unit: 'reqps' }),
    ts('Readiness checks (1 ok, 0 failing)', [['min by (check) (wearon_health_check_up)', '{{check}}']], { unit: 'short' }),
    ts('CPU per worker', [['rate(wearon_process_cpu_seconds_total[5m])', '{{instance}}']], { unit: 'percentunit' }),
    ts('Heap used per worker', [['sum by (instance) (wearon_nodejs_heap_size_used_bytes)', '{{instance}}']], { unit: 'bytes' }),
    panel('logs', 'nginx: rejected and failed requests', [['{service="nginx"} | json | status >= 400']], { w: 24, h: 10, ds: LOKI }),
  ]),
  'wearon-size-rec': dashboard('wearon-size-rec', 'WearOn / Size recommendation', 'POST /estimate-body: outcomes, latency against the 3 s target, pose model queue and inference.', [
    stat('Requests (24h)', 'sum(increase(wearon_size_rec_requests_total[24h]))'),
    stat('OK ratio (1h)', 'sum(rate(wearon_size_rec_requests_total{outcome="ok"}[1h])) / sum(rate(wearon_size_rec_requests_total[1h]))', { unit: 'percentunit' }),
    stat('p95 latency (15m)', 'histogram_quantile(0.95, sum by (le) (rate(wearon_size_rec_duration_seconds_bucket[15m])))', { unit: 's', thresholds: green(0, 2, 3) }),
    stat('Pose queue', 'max(wearon_pose_queue_depth)', { thresholds: green(0, 8, 16) }),
    stat('Pose model ready', 'min(wearon_health_check_up{check="pose"})', { thresholds: [{ color: 'red', value: null }, { color: 'green', value: 1 }] }),
    stat('Overloaded (1h)', 'sum(increase(wearon_size_rec_requests_total{outcome="overloaded"}[1h]))', { thresholds: green(0, 1) }),
    ts('Requests by outcome (per minute)', [['sum by (outcome) (rate(wearon_size_rec_requests_total[5m])) * 60', '{{outcome}}']], { unit: 'short' }),
    ts('Latency p50 / p95 (target 3 s)', [['histogram_quantile(0.5, sum by (le) (rate(wearon_size_rec_duration_seconds_bucket[5m])))', 'p50'], ['histogram_quantile(0.95, sum by (le) (rate(wearon_size_rec_duration_seconds_bucket[5m])))', 'p95']], { unit: 's', thresholds: green(0, 3) }),
    ts('Pose inference p50 / p95', [['histogram_quantile(0.5, sum by (le) (rate(wearon_pose_inference_seconds_bucket[5m])))', 'p50'], ['histogram_quantile(0.95, sum by (le) (rate(wearon_pose_inference_seconds_bucket[5m])))', 'p95']], { unit: 's' }),
    ts('Pose queue depth', [['max by (instance) (wearon_pose_queue_depth)', '{{instance}}']], { unit: 'short' }),
  ]),
  'wearon-host': dashboard('wearon-host', 'WearOn / Host', 'The VPS: CPU, memory, disk, network (node-exporter) and scrape targets.', [
    stat('CPU busy', '100 * (1 - avg(rate(node_cpu_seconds_total{mode="idle"}[5m])))', { unit: 'percent', thresholds: green(0, 70, 90) }),
    stat('Memory used', '100 * (1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes)', { unit: 'percent', thresholds: green(0, 80, 90) }),
    stat('Root disk free', '100 * node_filesystem_avail_bytes{mountpoint="/",fstype!~"tmpfs|overlay|squashfs"} / node_filesystem_size_bytes{mountpoint="/",fstype!~"tmpfs|overlay|squashfs"}', { unit: 'percent', thresholds: [{ color: 'red', value: null }, { color: 'orange', value: 5 }, { color: 'green', value: 10 }] }),
    stat('Load (1m) per core', 'node_load1 / count(node_cpu_seconds_total{mode="idle"})', { thresholds: green(0, 1, 2) }),
    stat('Uptime', 'time() - node_boot_time_seconds', { unit: 's' }),
    stat('Targets down', 'count(up == 0) or vector(0)', { thresholds: green(0, 1) }),
    ts('CPU by mode', [['sum by (mode) (rate(node_cpu_seconds_total{mode!="idle"}[5m])) / scalar(count(node_cpu_seconds_total{mode="idle"}))', '{{mode}}']], { unit: 'percentunit' }),
    ts('Memory', [['node_memory_MemTotal_bytes - node_memory_MemAvailable_bytes', 'used'], ['node_memory_MemAvailable_bytes', 'available'], ['node_memory_SwapTotal_bytes - node_memory_SwapFree_bytes', 'swap used']], { unit: 'bytes' }),
    ts('Disk space free', [['node_filesystem_avail_bytes{fstype!~"tmpfs|overlay|squashfs"}', '{{mountpoint}}']], { unit: 'bytes' }),
    ts('Disk I/O', [['sum by (device) (rate(node_disk_read_bytes_total[5m]))', 'read {{device}}'], ['sum by (device) (rate(node_disk_written_bytes_total[5m]))', 'write {{device}}']], { unit: 'Bps' }),
    ts('Network', [['sum by (device) (rate(node_network_receive_bytes_total{device!~"lo|veth.*|br-.*|docker.*"}[5m]))', 'in {{device}}'], ['sum by (device) (rate(node_network_transmit_bytes_total{device!~"lo|veth.*|br-.*|docker.*"}[5m]))', 'out {{device}}']], { unit: 'Bps' }),
    ts('Scrape targets up', [['up', '{{job}} {{instance}}']], { unit: 'short' }),
  ], '1m'),
};
// DASHBOARDS_OUT: write elsewhere (the test compares a fresh run with the committed files).
const outDir = process.env.DASHBOARDS_OUT ?? fileURLToPath(new URL('./dashboards/', import.meta.url));
for (const [name, d] of Object.entries(dashboards)) writeFileSync(path.join(outDir, `${name}.json`), JSON.stringify(d, null, 2) + '\n');
