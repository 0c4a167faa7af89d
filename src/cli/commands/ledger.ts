// Finance and ops commands on the ledger: grant, revoke, balance, statement, verify, recover.
import { accountView, CreditCommandRejected, grantCredits, revokeCredits, statement, statementCsv } from '../../app/credits.ts';
import type { EventStore } from '../../app/ports/eventStore.ts';
import { recoverDue } from '../../app/recover.ts';
import { verifyLedger } from '../../app/verify.ts';
import { createGeneration } from '../../compose/generation.ts';
import { createRepository, openEventStore, workerIdOf } from '../../compose/ledger.ts';
import { openReadModel } from '../../compose/readModel.ts';
import { openRedis } from '../../compose/redis.ts';
import { withScope } from '../../compose/scope.ts';
import { GRANT_REASONS, type GrantReason } from '../../domain/events.ts';
import { createMetrics } from '../../metrics.ts';
import { verifyReadModels, type Drift } from '../../projections/verifyReadModels.ts';
import { describeFailure } from '../../projections/projector.ts';
import { UsageError, parseArgs, type CliCommand, type CliContext } from '../command.ts';

function withStore<T>(ctx: CliContext, fn: (store: EventStore) => Promise<T>): Promise<T> {
  return withScope(ctx.logger, async (scope) => fn(scope.add(await openEventStore(ctx.config, ctx.logger))));
}

function positiveInt(v: string | true | undefined, name: string): number {
  const n = Number(v);
  if (typeof v !== 'string' || !Number.isSafeInteger(n) || n <= 0) throw new UsageError(`${name} must be a positive whole number`);
  return n;
}

function required(v: string | true | undefined, name: string): string {
  if (typeof v !== 'string' || !v.trim()) throw new UsageError(`--${name} is required`);
  return v;
}

const cliContext = (ctx: CliContext) => ({ requestId: `cli_${Date.now().toString(36)}`, workerId: workerIdOf(ctx.config) });

/** grant and revoke: parse `<account> <amount> --reason --reference`, apply, print the new balance. */
function creditCommand(
  name: 'grant' | 'revoke',
  summary: string,
  reasons: string,
  apply: typeof grantCredits | typeof revokeCredits,
): CliCommand {
  return {
    name,
    summary,
    usage: `wearon ${name} <account> <amount> --reason <${reasons}> --reference <REF>`,
    run: async (args, ctx) => {
      const { flags, positionals } = parseArgs(args);
      const [account, amountText] = positionals;
      if (!account || !amountText) throw new UsageError('account and amount are required');
      const reason = required(flags.reason, 'reason');
      if (name === 'grant' && !GRANT_REASONS.includes(reason as GrantReason)) throw new UsageError(`--reason must be one of ${GRANT_REASONS.join(', ')}`);
      const input = { amount: positiveInt(amountText, 'amount'), reason: reason as GrantReason, reference: required(flags.reference, 'reference') };
      return withStore(ctx, async (store) => {
        const repo = createRepository(store);
        try {
          const r = await apply(repo, account, input, cliContext(ctx));
          const view = await accountView(repo, r.account);
          ctx.out(`${r.applied ? `${name} applied` : `already applied (same reference)`}: ${r.account} balance ${view.balance}`);
          return 0;
        } catch (err) {
          if (err instanceof CreditCommandRejected) {
            ctx.err(`refused (${err.code}): ${err.message}`);
            return 1;
          }
          throw err;
        }
      });
    },
  };
}

export const grantCommand = creditCommand('grant', 'grant credits to an account (idempotent on --reference)', GRANT_REASONS.join('|'), grantCredits);
export const revokeCommand = creditCommand('revoke', 'revoke credits from an account (never below zero; idempotent on --reference)', 'text', revokeCredits);

export const balanceCommand: CliCommand = {
  name: 'balance',
  summary: 'show an account: balance, totals and open holds',
  usage: 'wearon balance <account>',
  run: async (args, ctx) => {
    const [account] = parseArgs(args).positionals;
    if (!account) throw new UsageError('account is required');
    return withStore(ctx, async (store) => {
      ctx.out(JSON.stringify(await accountView(createRepository(store), account), null, 2));
      return 0;
    });
  },
};

export const statementCommand: CliCommand = {
  name: 'statement',
  summary: 'every movement of an account with its running balance and generation',
  usage: 'wearon statement <account> [--format json|csv]',
  run: async (args, ctx) => {
    const { flags, positionals } = parseArgs(args);
    const [account] = positionals;
    if (!account) throw new UsageError('account is required');
    const format = flags.format ?? 'json';
    if (format !== 'json' && format !== 'csv') throw new UsageError('--format must be json or csv');
    return withStore(ctx, async (store) => {
      const s = await statement(store, account, { limit: Number.MAX_SAFE_INTEGER });
      if (format === 'csv') process.stdout.write(statementCsv(s.lines));
      else ctx.out(JSON.stringify(s, null, 2));
      return 0;
    });
  },
};

export const verifyCommand: CliCommand = {
  name: 'verify',
  summary: 're-fold every stream, check the ledger invariants and compare every read-model row with a fresh fold; exit 1 on any violation or drift',
  usage: 'wearon verify [--quiescent] [--settle-grace <seconds>] [--ledger-only] [--json]',
  run: async (args, ctx) => {
    const { flags } = parseArgs(args, ['quiescent', 'json', 'ledger-only']);
    const settleGraceMs = flags['settle-grace'] === undefined ? undefined : positiveInt(flags['settle-grace'], '--settle-grace') * 1000;
    return withStore(ctx, async (store) => {
      const started = Date.now();
      const { violations, summary } = await verifyLedger(store, {
        quiescent: flags.quiescent === true,
        ...(settleGraceMs !== undefined ? { settleGraceMs } : {}),
        onProgress: (n) => ctx.err(`verify: ${n} events read`),
      });
      const drifts = flags['ledger-only'] ? [] : await readModelDrifts(ctx, store);
      const ok = violations.length === 0 && drifts.length === 0;
      if (flags.json) ctx.out(JSON.stringify({ ok, summary, violations, drifts }, null, 2));
      else {
        ctx.out(`events ${summary.events}, accounts ${summary.accounts}, generations ${summary.generations} (${Object.entries(summary.byStatus).map(([k, v]) => `${k} ${v}`).join(', ')})`);
        ctx.out(`credits: granted ${summary.granted}, revoked ${summary.revoked}, deducted ${summary.deducted}, captured ${summary.captured}, refunded ${summary.refunded}, open holds ${summary.openHolds}`);
        if (summary.overage_charged) ctx.out(`overage (no credit moves): charged ${summary.overage_charged}, captured ${summary.overage_captured}, refund due ${summary.overage_refund_due}`);
        for (const v of violations) {
          const where = v.stream ? ` (${v.stream}${v.revision === undefined ? '' : ` @${v.revision}`} ${v.event_type})` : '';
          ctx.out(`VIOLATION invariant ${v.invariant} ${v.subject}: ${v.message}${where}`);
        }
        for (const d of drifts) {
          if (d.kind === 'behind') {
            ctx.out(`BEHIND ${d.projection}: checkpoint ${d.actual ?? 'none'}, head ${d.expected}, ${d.behind} event(s) behind${d.failure ? `; ${describeFailure(d.projection, d.failure)}` : ''}`);
            continue;
          }
          const subject = d.account ?? d.session ?? d.key;
          ctx.out(`DRIFT ${d.projection} ${d.table} ${subject}: ${d.kind}${d.column ? ` ${d.column} expected ${JSON.stringify(d.expected)} actual ${JSON.stringify(d.actual)}` : ''}`);
        }
        ctx.out(violations.length === 0 ? `ledger OK (${Date.now() - started} ms)` : `${violations.length} violation(s)`);
        if (!flags['ledger-only']) ctx.out(drifts.length === 0 ? 'read models OK' : `${drifts.length} read-model drift(s)`);
      }
      return ok ? 0 : 1;
    });
  },
};

/** Every read-model row compared with a fresh fold of the events (the projectors should be caught up). */
function readModelDrifts(ctx: CliContext, store: EventStore): Promise<Drift[]> {
  return withScope(ctx.logger, async (scope) => verifyReadModels(store, scope.add(await openReadModel(ctx.config, ctx.logger)), ctx.logger));
}

export const recoverCommand: CliCommand = {
  name: 'recover',
  summary: 'run the saga recovery pass now: drive every unfinished generation that is due',
  usage: 'wearon recover',
  run: (args, ctx) => {
    parseArgs(args);
    return withScope(ctx.logger, async (scope) => {
      const metrics = createMetrics();
      const store = scope.add(await openEventStore(ctx.config, ctx.logger, metrics));
      // Redis only for the upstream budget shared with the workers; the queue is never opened.
      const redis = ctx.config.REDIS_URL ? scope.add(openRedis(ctx.config.REDIS_URL, ctx.logger, 'wearon-recover')) : undefined;
      const { saga } = await createGeneration(ctx.config, { store, workerId: workerIdOf(ctx.config), logger: ctx.logger, metrics, redis });
      await recoverDue(
        { store, saga, logger: ctx.logger },
        {
          onStart: (due, unfinished) => ctx.err(`recover: ${due} generation(s) due of ${unfinished} unfinished`),
          onDriven: (done, due, id, outcome) => ctx.err(`recover: [${done}/${due}] ${id}: ${outcome?.kind ?? 'error'}`),
        },
      );
      return 0;
    });
  },
};
