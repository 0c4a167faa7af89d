// /v1/admin: what the console needs beyond the /v1 reads. Same token guard as /v1 (loopback only without API_TOKEN);
// nginx never routes /v1/admin (operators come through an SSH tunnel). State-changing endpoints (verify, replay,
// re-drive) also need the console header and a JSON body (browserGuard.ts).
import { Readable } from 'node:stream';
import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import { z } from 'zod';
import { statementCsv } from '../../app/credits.ts';
import type { JobView, StartResult } from '../../app/jobs.ts';
import type { LedgerHealth, VerifyResult } from '../../app/ledgerHealth.ts';
import type { EventStore } from '../../app/ports/eventStore.ts';
import { CannotRedriveError, type TaskQueue } from '../../app/ports/queue.ts';
import type { StatementReader } from '../../app/statements.ts';
import { accountIdOf, generationStream, InvalidAccountError, parseAccountId } from '../../domain/streams.ts';
import type { LagHistory } from '../../projections/lagHistory.ts';
import { generationsPerHour, movementsOfGeneration } from '../../projections/queries.ts';
import type { ReadModel } from '../../projections/readModel.ts';
import type { Replays } from '../../projections/replayJob.ts';
import { describeIssues } from '../../contract.ts';
import { requireConsoleRequest } from '../browserGuard.ts';
import { HttpError } from '../errors.ts';
import { filterOf, parseQuery, statementFilterSchema } from '../statementQuery.ts';
import { bearerAuth } from '../auth.ts';

export interface AdminDeps {
  store: EventStore;
  statements: StatementReader;
  ledgerHealth: LedgerHealth;
  apiToken?: string;
  /** present when this process runs the projections */
  projections?: { readModel: ReadModel; replays: Replays; lag: LagHistory };
  /** present when this process has the Redis intake */
  queue?: Pick<TaskQueue, 'listDeadLetters' | 'redriveDeadLetter'>;
}

/** Violations and drifts past this many are counted, not sent (the console polls this while a job runs). */
const SHOWN = 200;

const findBody = z.object({
  kind: z.enum(['user', 'store', 'shopper']),
  id: z.string().trim().min(1).max(128),
  shopper_email: z.string().trim().min(3).max(320).optional(),
});

function body<S extends z.ZodTypeAny>(schema: S, value: unknown): z.output<S> {
  const r = schema.safeParse(value ?? {});
  if (!r.success) throw new HttpError(400, 'invalid_request', describeIssues(r.error));
  return r.data;
}

function accountParam(text: string): string {
  try {
    return accountIdOf(parseAccountId(text));
  } catch (err) {
    if (err instanceof InvalidAccountError) throw new HttpError(400, 'invalid_account', err.message);
    throw err;
  }
}

function verifyView(job: JobView<VerifyResult> | null) {
  if (!job?.result) return job;
  const r = job.result;
  return {
    ...job,
    result: {
      ok: r.ok,
      summary: r.summary,
      violation_count: r.violations.length,
      violations: r.violations.slice(0, SHOWN),
      drift_count: r.drifts?.length ?? null,
      drifts: r.drifts?.slice(0, SHOWN) ?? null,
    },
  };
}

/** 202 with the new job, or 409 `already_running` naming the job that runs. */
function started<R>(reply: FastifyReply, r: StartResult<R>, view: (j: JobView<R>) => unknown = (j) => j) {
  if (r.started) return reply.code(202).send({ job: view(r.job) });
  throw new HttpError(409, 'already_running', `a ${r.running.kind} job is already running (started ${r.running.started_at})`, { job: view(r.running) });
}

function projectionsHere(d: AdminDeps): NonNullable<AdminDeps['projections']> {
  if (!d.projections) throw new HttpError(503, 'projections_not_running', 'this process does not run the projections (PROJECTIONS_ENABLED=false)');
  return d.projections;
}

export function adminRoutes(d: AdminDeps): FastifyPluginAsync {
  return async (app) => {
    await app.register(bearerAuth(d.apiToken));
    app.addHook('preHandler', async (req) => {
      if (req.method !== 'GET' && req.method !== 'HEAD') requireConsoleRequest(req);
    });

    // Resolves what an operator typed into an account id; a shopper's email is hashed here, so it never sits in a URL.
    app.post('/v1/admin/accounts/find', async (req) => {
      const b = body(findBody, req.body);
      if (b.kind === 'shopper' && !b.shopper_email) throw new HttpError(400, 'invalid_request', 'shopper_email: required for a shopper account');
      return { account: accountParam(b.kind === 'shopper' ? `shopper:${b.id}:${b.shopper_email}` : `${b.kind}:${b.id}`) };
    });

    app.get<{ Params: { account: string }; Querystring: { points?: string } }>('/v1/admin/accounts/:account/balance-series', async (req) => {
      const points = parseQuery(z.object({ points: z.coerce.number().int().min(10).max(2000).default(300) }), req.query).points;
      return d.statements.balanceSeries(accountParam(req.params.account), points);
    });

    // The whole statement as CSV, oldest first: byte for byte what `wearon statement --format csv` prints (filters
    // narrow the lines, never change them). Streamed a few blocks at a time.
    app.get<{ Params: { account: string } }>('/v1/admin/accounts/:account/statement.csv', async (req, reply) => {
      const account = accountParam(req.params.account);
      const filter = filterOf(parseQuery(statementFilterSchema, req.query));
      const lines = d.statements.lines(account, filter);
      async function* csv() {
        let header = true;
        for await (const page of lines) {
          const text = statementCsv(page);
          yield header ? text : text.slice(text.indexOf('\n') + 1);
          header = false;
        }
        if (header) yield statementCsv([]);
      }
      const name = `statement-${account.replace(/[^A-Za-z0-9_.-]+/g, '_')}.csv`;
      return reply
        .header('content-type', 'text/csv; charset=utf-8')
        .header('content-disposition', `attachment; filename="${name}"`)
        .header('cache-control', 'no-store')
        .send(Readable.from(csv()));
    });

    // Every event of a generation with its details (worker, attempt, cost, reasons) and the account movements it
    // caused. Input image URLs (signed, so credentials) and the prompt are reduced to their size.
    app.get<{ Params: { sessionId: string } }>('/v1/admin/generations/:sessionId/events', async (req) => {
      const events = await d.store.readStream(generationStream(req.params.sessionId), { maxCount: 1000 });
      if (events.length === 0) throw new HttpError(404, 'not_found', `no generation ${req.params.sessionId}`);
      const movements = d.projections ? await movementsOfGeneration(d.projections.readModel, req.params.sessionId) : null;
      return {
        session_id: req.params.sessionId,
        events: events.map((e) => {
          const { imageUrls, prompt, ...data } = e.data as Record<string, unknown>;
          return {
            revision: e.revision,
            type: e.type,
            at: e.metadata.occurredAt,
            worker_id: e.metadata.workerId,
            request_id: e.metadata.requestId,
            data: {
              ...data,
              ...(Array.isArray(imageUrls) ? { images: imageUrls.length } : {}),
              ...(typeof prompt === 'string' ? { prompt_chars: prompt.length } : {}),
            },
          };
        }),
        movements,
        movements_source: movements ? 'credit-balances projection (ledger_entries)' : 'projections do not run in this process',
      };
    });

    app.get('/v1/admin/verify', async () => {
      const v = d.ledgerHealth.view();
      return { running: verifyView(v.running), last: verifyView(v.last), read_models: Boolean(d.projections) };
    });

    app.post('/v1/admin/verify', async (_req, reply) => started(reply, d.ledgerHealth.verify('console', { readModels: true }), verifyView));

    app.get('/v1/admin/replay', async () => projectionsHere(d).replays.view());

    app.post<{ Params: { name: string } }>('/v1/admin/projections/:name/replay', async (req, reply) => {
      const p = projectionsHere(d);
      let r;
      try {
        r = p.replays.start(req.params.name, 'console');
      } catch (err) {
        throw new HttpError(404, 'unknown_projection', (err as Error).message);
      }
      return started(reply, r);
    });

    app.get('/v1/admin/charts/lag', async () => projectionsHere(d).lag.history());

    app.get<{ Querystring: { hours?: string } }>('/v1/admin/charts/generations', async (req) => {
      const hours = parseQuery(z.object({ hours: z.coerce.number().int().min(1).max(168).default(24) }), req.query).hours;
      return { hours: await generationsPerHour(projectionsHere(d).readModel, hours) };
    });

    const queue = () => {
      if (!d.queue) throw new HttpError(503, 'no_queue', 'this process has no Redis intake (REDIS_URL unset)');
      return d.queue;
    };

    app.get('/v1/admin/dead-letters', async (req) => {
      const q = parseQuery(z.object({ offset: z.coerce.number().int().min(0).default(0), limit: z.coerce.number().int().min(1).max(500).default(50) }), req.query);
      return queue().listDeadLetters(q);
    });

    app.post<{ Params: { id: string } }>('/v1/admin/dead-letters/:id/redrive', async (req) => {
      if (!/^[0-9a-f]{40}$/i.test(req.params.id)) throw new HttpError(400, 'invalid_request', 'a dead-letter id is 40 hex digits');
      try {
        if (!(await queue().redriveDeadLetter(req.params.id))) {
          throw new HttpError(404, 'not_found', 'no such dead letter (already re-driven or dropped)');
        }
      } catch (err) {
        if (err instanceof CannotRedriveError) throw new HttpError(422, 'cannot_redrive', err.message);
        throw err;
      }
      return { redriven: true };
    });
  };
}
