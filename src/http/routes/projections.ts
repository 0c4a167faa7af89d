// GET /v1/projections: checkpoint, head and lag per projection (ops dashboards, `wearon projections` over HTTP).
import type { FastifyPluginAsync } from 'fastify';
import type { EventStore } from '../../app/ports/eventStore.ts';
import { projectionStatus } from '../../projections/projector.ts';
import type { ReadModel } from '../../projections/readModel.ts';
import { bearerAuth } from '../auth.ts';

export interface ProjectionsRouteDeps {
  store: EventStore;
  readModel: ReadModel;
  apiToken?: string;
}

export function projectionsRoutes(deps: ProjectionsRouteDeps): FastifyPluginAsync {
  return async (app) => {
    await app.register(bearerAuth(deps.apiToken));
    app.get('/v1/projections', async () => ({ projections: await projectionStatus(deps.store, deps.readModel) }));
  };
}
