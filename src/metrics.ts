// Every metric the service exports, in one place: dashboards and alert rules in monitoring/ are checked against
// this registry's output by tests/integration/monitoring-metrics.test.ts.
import { AggregatorRegistry, Counter, Gauge, Histogram, Registry, collectDefaultMetrics, type MetricObjectWithValues, type MetricValue } from 'prom-client';

const STAGE_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 45, 60, 120, 300];
const FAST_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

export function createMetrics(options: { defaults?: boolean } = {}) {
  const registry = new Registry();
  if (options.defaults !== false) collectDefaultMetrics({ register: registry, prefix: 'wearon_' });
  const r = [registry];
  return {
    registry,
    generations: new Counter({
      name: 'wearon_generations_total',
      help: 'Generations that reached an outcome (completed, failed, rejected, retry_scheduled)',
      labelNames: ['outcome', 'channel', 'provider', 'error_code'] as const,
      registers: r,
    }),
    stageSeconds: new Histogram({
      name: 'wearon_generation_stage_seconds',
      help: 'Duration of a generation stage: download, resize, generate, upload, queue_to_done',
      labelNames: ['stage'] as const,
      buckets: STAGE_BUCKETS,
      registers: r,
    }),
    inFlight: new Gauge({ name: 'wearon_generations_in_flight', help: 'Generations running in this process', registers: r }),
    queueDepth: new Gauge({
      name: 'wearon_queue_depth',
      help: 'Tasks in the Redis queue: waiting, processing, dead_letter',
      labelNames: ['queue'] as const,
      registers: r,
    }),
    tasksTaken: new Counter({ name: 'wearon_tasks_received_total', help: 'Tasks taken from intake', labelNames: ['source'] as const, registers: r }),
    deadLettered: new Counter({
      name: 'wearon_dead_letter_total',
      help: 'Tasks moved to the dead-letter list',
      labelNames: ['reason'] as const,
      registers: r,
    }),
    credits: new Counter({
      name: 'wearon_credits_total',
      help: 'Credits moved by the ledger: granted, revoked, deducted, captured, refunded',
      labelNames: ['movement'] as const,
      registers: r,
    }),
    overage: new Counter({
      name: 'wearon_overage_generations_total',
      help: 'B2B generations billed as overage (no credit moves): charged, captured (final), refund_due (failed: finance owes the store a refund)',
      labelNames: ['outcome'] as const,
      registers: r,
    }),
    openHolds: new Gauge({
      name: 'wearon_credit_open_holds',
      help: 'Credits held for generations not yet captured or refunded (from the credit-balances projection)',
      registers: r,
    }),
    appendSeconds: new Histogram({
      name: 'wearon_ledger_append_seconds',
      help: 'Latency of one durable append to the event store',
      labelNames: ['store'] as const,
      buckets: FAST_BUCKETS,
      registers: r,
    }),
    appendConflicts: new Counter({
      name: 'wearon_ledger_append_conflicts_total',
      help: 'Appends rejected by optimistic concurrency (retried by the saga)',
      registers: r,
    }),
    eventStoreResubscribes: new Counter({
      name: 'wearon_eventstore_resubscribes_total',
      help: 'Event store subscriptions resumed after a drop (EventStoreDB supervisor)',
      registers: r,
    }),
    verifyViolations: new Gauge({
      name: 'wearon_ledger_verify_violations',
      help: 'Invariant violations found by the last ledger verification',
      registers: r,
    }),
    verifyLastRun: new Gauge({
      name: 'wearon_ledger_verify_last_run_timestamp_seconds',
      help: 'When the ledger was last verified',
      registers: r,
    }),
    openaiRequests: new Counter({
      name: 'wearon_openai_requests_total',
      help: 'Requests to the image generation API by HTTP status (or error kind)',
      labelNames: ['status'] as const,
      registers: r,
    }),
    costUsd: new Counter({
      name: 'wearon_generation_cost_usd_total',
      help: 'Estimated upstream cost of completed generations',
      labelNames: ['provider'] as const,
      registers: r,
    }),
    rateLimitWaitSeconds: new Histogram({
      name: 'wearon_ratelimit_wait_seconds',
      help: 'Time spent waiting for the global upstream request budget',
      buckets: [0, 0.01, 0.1, 0.5, 1, 5, 10, 30, 60],
      registers: r,
    }),
    httpRequests: new Counter({
      name: 'wearon_http_requests_total',
      help: 'HTTP requests by route and status code',
      labelNames: ['method', 'route', 'status'] as const,
      registers: r,
    }),
    httpSeconds: new Histogram({
      name: 'wearon_http_request_duration_seconds',
      help: 'HTTP request latency by route',
      labelNames: ['method', 'route'] as const,
      buckets: FAST_BUCKETS,
      registers: r,
    }),
    healthCheck: new Gauge({
      name: 'wearon_health_check_up',
      help: 'Readiness probe result per check (1 ok, 0 failing)',
      labelNames: ['check'] as const,
      registers: r,
    }),
    projectionLag: new Gauge({
      name: 'wearon_projection_lag_events',
      help: 'Events in the log not yet applied by a projection',
      labelNames: ['projection'] as const,
      registers: r,
    }),
    projectionEvents: new Counter({
      name: 'wearon_projection_events_total',
      help: 'Events applied by a projection',
      labelNames: ['projection'] as const,
      registers: r,
    }),
    projectionDelay: new Histogram({
      name: 'wearon_projection_delay_seconds',
      help: "From an event's append to the commit of the read-model transaction that applied it (what the web app waits for)",
      labelNames: ['projection'] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: r,
    }),
    projectionStuck: new Gauge({
      name: 'wearon_projection_stuck',
      help: 'A projection stopped at an event it cannot apply (1) or not (0); `wearon projections` names the event',
      labelNames: ['projection'] as const,
      registers: r,
    }),
    sizeRecRequests: new Counter({
      name: 'wearon_size_rec_requests_total',
      help: 'Size recommendation requests by outcome (ok, bad_image, no_pose, overloaded, error)',
      labelNames: ['outcome'] as const,
      registers: r,
    }),
    sizeRecSeconds: new Histogram({
      name: 'wearon_size_rec_duration_seconds',
      help: 'Size recommendation latency, download to answer',
      buckets: STAGE_BUCKETS,
      registers: r,
    }),
    poseQueueDepth: new Gauge({ name: 'wearon_pose_queue_depth', help: 'Pose estimations waiting for the model', registers: r }),
    poseInferenceSeconds: new Histogram({
      name: 'wearon_pose_inference_seconds',
      help: 'BlazePose detector + landmark passes on one image',
      buckets: FAST_BUCKETS,
      registers: r,
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;

/** Metrics collected by another thread of this process (its registry's getMetricsAsJSON()). */
export type ForeignMetrics = MetricObjectWithValues<MetricValue<string>>[];

/** The registry's exposition text, with metrics from other threads merged in (a metric both have: values summed). */
export async function renderMetrics(registry: Registry, foreign: readonly ForeignMetrics[] = []): Promise<string> {
  if (foreign.length === 0) return registry.metrics();
  return AggregatorRegistry.aggregate([await registry.getMetricsAsJSON(), ...foreign]).metrics();
}
