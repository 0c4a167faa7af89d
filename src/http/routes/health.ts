// /health (readiness, from cached probes), /health/live (the process answers), /metrics (Prometheus).
import type { FastifyPluginAsync } from 'fastify';
import type { HealthMonitor } from '../../app/health.ts';
import type { Metrics } from '../../metrics.ts';

export function healthRoutes(deps: { health: HealthMonitor; metrics: Metrics; startedAt: number }): FastifyPluginAsync {
  return async (app) => {
    app.get('/health', async (_req, reply) => {
      const snap = deps.health.snapshot();
      return reply.code(snap.status === 'ok' ? 200 : 503).send({ ...snap, uptime_s: Math.round((Date.now() - deps.startedAt) / 1000) });
    });
    app.get('/health/live', async () => ({ status: 'ok' }));
    app.get('/metrics', async (_req, reply) => {
      const body = await deps.metrics.registry.metrics();
      return reply.header('content-type', deps.metrics.registry.contentType).send(body);
    });
  };
}
