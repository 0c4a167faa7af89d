// /v1: HTTP intake and reads for the producer, finance and ops. Guarded by a bearer token (API_TOKEN, ../auth.ts);
// without one configured, only loopback clients are answered.
import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import { accountView, CreditCommandRejected, grantCredits, statement, statementCsv } from '../../app/credits.ts';
import type { AggregateRepository } from '../../app/aggregates.ts';
import { acceptGeneration, generationView } from '../../app/generations.ts';
import { requestFromTask } from '../../app/intake.ts';
import type { EventStore } from '../../app/ports/eventStore.ts';
import type { ResultStore } from '../../app/ports/pipeline.ts';
import type { GenerationSaga } from '../../app/saga.ts';
import { describeIssues, generationTaskPayloadSchema } from '../../contract.ts';
import { GRANT_REASONS } from '../../domain/events.ts';
import { SESSION_STATUS } from '../../domain/generation.ts';
import { InvalidAccountError } from '../../domain/streams.ts';
import type { Metrics } from '../../metrics.ts';
import { bearerAuth } from '../auth.ts';
import { HttpError } from '../errors.ts';

export interface V1Deps {
  store: EventStore;
  repo: AggregateRepository;
  saga: GenerationSaga;
  results: ResultStore;
  apiToken?: string;
  cost: number;
  workerId: string;
  signedUrlTtlSeconds: number;
  clock: () => number;
  metrics?: Metrics;
  /** hands an accepted generation to this process's worker, when it runs one */
  submit?: (sessionId: string) => void;
}

const grantBody = z.object({
  amount: z.number().int().positive(),
  reason: z.enum(GRANT_REASONS as [string, ...string[]]),
  reference: z.string().trim().min(1).max(200),
});

const statementQuery = z.object({
  format: z.enum(['json', 'csv']).default('json'),
  from: z.coerce.number().int().min(0).optional(),
  limit: z.coerce.number().int().min(1).max(10_000).default(1000),
});

function account(param: string): string {
  return decodeURIComponent(param);
}

function badAccount(err: unknown): never {
  if (err instanceof InvalidAccountError) throw new HttpError(400, 'invalid_account', err.message);
  throw err;
}

export function v1Routes(d: V1Deps): FastifyPluginAsync {
  return async (app) => {
    await app.register(bearerAuth(d.apiToken));

    app.post('/v1/generations', async (req, reply) => {
      const body = req.body;
      if (typeof body !== 'object' || body === null || Array.isArray(body)) {
        throw new HttpError(400, 'invalid_request', 'the body must be a JSON object');
      }
      const parsed = generationTaskPayloadSchema.safeParse(body);
      if (!parsed.success) {
        throw new HttpError(400, 'invalid_request', describeIssues(parsed.error), {
          fields: parsed.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })),
        });
      }
      const task = parsed.data;
      d.metrics?.tasksTaken.inc({ source: 'http' });
      const { created, status, rejection } = await acceptGeneration(d.saga, d.store, requestFromTask(task, d.cost, d.clock()));
      if (rejection?.code === 'insufficient_credits') {
        throw new HttpError(402, 'insufficient_credits', rejection.message ?? 'insufficient credits', { session_id: task.session_id });
      }
      if (status === 'charged') d.submit?.(task.session_id);
      return reply.code(202).send({ session_id: task.session_id, status: SESSION_STATUS[status], duplicate: !created, request_id: task.request_id });
    });

    app.get<{ Params: { sessionId: string } }>('/v1/generations/:sessionId', async (req) => {
      const view = await generationView(d.store, d.results, req.params.sessionId, { requestId: req.id, signedUrlTtlSeconds: d.signedUrlTtlSeconds });
      if (!view) throw new HttpError(404, 'not_found', `no generation ${req.params.sessionId}`);
      return view;
    });

    app.get<{ Params: { account: string } }>('/v1/accounts/:account', async (req) => {
      const view = await accountView(d.repo, account(req.params.account)).catch(badAccount);
      if (!view.exists) throw new HttpError(404, 'not_found', `account ${view.account} has no movements`);
      return view;
    });

    app.get<{ Params: { account: string } }>('/v1/accounts/:account/statement', async (req, reply) => {
      const q = statementQuery.safeParse(req.query);
      if (!q.success) throw new HttpError(400, 'invalid_request', describeIssues(q.error));
      const s = await statement(d.store, account(req.params.account), { fromRevision: q.data.from, limit: q.data.limit }).catch(badAccount);
      if (q.data.format === 'csv') {
        if (s.next_revision !== null) void reply.header('x-next-revision', String(s.next_revision));
        return reply.header('content-type', 'text/csv; charset=utf-8').send(statementCsv(s.lines));
      }
      return s;
    });

    app.post<{ Params: { account: string } }>('/v1/accounts/:account/grants', async (req, reply) => {
      const body = grantBody.safeParse(req.body);
      if (!body.success) {
        throw new HttpError(400, 'invalid_request', describeIssues(body.error), {
          fields: body.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })),
        });
      }
      try {
        const r = await grantCredits(d.repo, account(req.params.account), body.data as never, { requestId: req.id, workerId: d.workerId });
        const view = await accountView(d.repo, r.account);
        return reply.code(r.applied ? 201 : 200).send({ applied: r.applied, account: view });
      } catch (err) {
        if (err instanceof CreditCommandRejected) throw new HttpError(422, err.code, err.message);
        return badAccount(err);
      }
    });
  };
}
