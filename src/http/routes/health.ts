// /health (readiness, from cached probes), /health/live (the process answers), /metrics (Prometheus).
import type { FastifyPluginAsync } from 'fastify';
import type { HealthMonitor } from '../../app/health.ts';
import { renderMetrics, type ForeignMetrics, type Metrics } from '../../metrics.ts';

export function healthRoutes(deps: {
  health: HealthMonitor;
  metrics: Metrics;
  startedAt: number;
  /** metrics other threads collect (the projection thread's), merged into /metrics; one that fails is left out */
  threadMetrics?: () => Promise<ForeignMetrics>;
}): FastifyPluginAsync {
  return async (app) => {
    app.get('/health', async (_req, reply) => {
      const snap = deps.health.snapshot();
      return reply.code(snap.status === 'ok' ? 200 : 503).send({ ...snap, uptime_s: Math.round((Date.now() - deps.startedAt) / 1000) });
    });
    app.get('/health/live', async () => ({ status: 'ok' }));
    app.get('/metrics', async (req, reply) => {
      const foreign = [];
      if (deps.threadMetrics) {
        try {
          foreign.push(await deps.threadMetrics());
        } catch (err) {
          req.log.warn({ err }, 'thread_metrics_unavailable'); // e.g. the thread is restarting: the rest still scrapes
        }
      }
      const body = await renderMetrics(deps.metrics.registry, foreign);
      return reply.header('content-type', deps.metrics.registry.contentType).send(body);
    });
  };
}
