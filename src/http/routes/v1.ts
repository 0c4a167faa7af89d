// /v1: HTTP intake and reads for the producer, finance and ops. Guarded by a bearer token (API_TOKEN, ../auth.ts);
// without one configured, only loopback clients are answered.
import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import { accountView, CreditCommandRejected, grantCredits, statementCsv } from '../../app/credits.ts';
import type { AggregateRepository } from '../../app/aggregates.ts';
import { acceptGeneration, generationView } from '../../app/generations.ts';
import { requestFromTask } from '../../app/intake.ts';
import type { EventStore } from '../../app/ports/eventStore.ts';
import type { ResultStore } from '../../app/ports/pipeline.ts';
import type { GenerationSaga } from '../../app/saga.ts';
import type { StatementReader } from '../../app/statements.ts';
import { StoreCommandRejected, storeView, uninstallStore } from '../../app/stores.ts';
import { describeIssues, generationTaskPayloadSchema } from '../../contract.ts';
import { MAX_CREDITS } from '../../domain/account.ts';
import { GRANT_REASONS } from '../../domain/events.ts';
import { SESSION_STATUS } from '../../domain/generation.ts';
import { InvalidAccountError } from '../../domain/streams.ts';
import type { Metrics } from '../../metrics.ts';
import { bearerAuth } from '../auth.ts';
import { HttpError } from '../errors.ts';
import { filterOf, parseQuery, statementPageSchema } from '../statementQuery.ts';

export interface V1Deps {
  store: EventStore;
  repo: AggregateRepository;
  statements: StatementReader;
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
  amount: z.number().int().positive().max(MAX_CREDITS),
  reason: z.enum(GRANT_REASONS as [string, ...string[]]),
  reference: z.string().trim().min(1).max(200),
});

const uninstallBody = z.object({ reference: z.string().trim().min(1).max(200) });

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
      // No pool may pay (domain/billing.ts): a resell task without a shopper, an uninstalled store.
      if (rejection?.code === 'shopper_required' || rejection?.code === 'store_uninstalled') {
        throw new HttpError(422, rejection.code, rejection.message, { session_id: task.session_id });
      }
      if (status === 'charged') d.submit?.(task.session_id);
      return reply.code(202).send({ session_id: task.session_id, status: SESSION_STATUS[status], duplicate: !created, request_id: task.request_id });
    });

    app.get<{ Params: { sessionId: string } }>('/v1/generations/:sessionId', async (req) => {
      const view = await generationView(d.store, d.results, req.params.sessionId, { requestId: req.id, signedUrlTtlSeconds: d.signedUrlTtlSeconds });
      if (!view) throw new HttpError(404, 'not_found', `no generation ${req.params.sessionId}`);
      return view;
    });

    // `:account` arrives percent-decoded by the router; decoding it again would misread a `%` in an email.
    app.get<{ Params: { account: string } }>('/v1/accounts/:account', async (req) => {
      const view = await accountView(d.repo, req.params.account).catch(badAccount);
      if (!view.exists) throw new HttpError(404, 'not_found', `account ${view.account} has no movements`);
      return view;
    });

    app.get<{ Params: { account: string } }>('/v1/accounts/:account/statement', async (req, reply) => {
      const q = parseQuery(statementPageSchema, req.query);
      const s = await d.statements
        .page(req.params.account, { ...filterOf(q), order: q.order, limit: q.limit, ...(q.from !== undefined ? { from: q.from } : {}) })
        .catch(badAccount);
      if (q.format === 'csv') {
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
        const r = await grantCredits(d.repo, req.params.account, body.data as never, { requestId: req.id, workerId: d.workerId });
        const view = await accountView(d.repo, r.account);
        return reply.code(r.applied ? 201 : 200).send({ applied: r.applied, account: view });
      } catch (err) {
        // A reference reused with another amount conflicts with the recorded grant (409); other refusals are 422.
        if (err instanceof CreditCommandRejected) throw new HttpError(err.code === 'reference_conflict' ? 409 : 422, err.code, err.message);
        return badAccount(err);
      }
    });

    // A store's billing facts in the ledger (mode, subscription, uninstalled).
    app.get<{ Params: { storeId: string } }>('/v1/stores/:storeId', async (req) => storeView(d.repo, req.params.storeId).catch(badAccount));

    // Uninstall (the bridge records it from the platform; this is the operator's entry): later tasks of the store are
    // rejected, its queued generations end failed with their holds returned. Idempotent; `ended` lists what it ended.
    app.post<{ Params: { storeId: string } }>('/v1/stores/:storeId/uninstall', async (req) => {
      const body = uninstallBody.safeParse(req.body);
      if (!body.success) throw new HttpError(400, 'invalid_request', describeIssues(body.error));
      try {
        const r = await uninstallStore({ repo: d.repo, store: d.store, saga: d.saga }, req.params.storeId, body.data.reference, { requestId: req.id, workerId: d.workerId });
        return { applied: r.applied, ended: r.ended, store: await storeView(d.repo, req.params.storeId) };
      } catch (err) {
        if (err instanceof StoreCommandRejected) throw new HttpError(422, err.code, err.message);
        return badAccount(err);
      }
    });
  };
}
