// Opening balances: every platform credit pool becomes CreditsGranted(opening_balance) on an account stream that does
// not exist yet, and the platform's totals (total_earned / total_purchased, total_spent) at that moment are recorded
// in opening_totals, so the totals the projection publishes continue from them instead of restarting at the balance.
// Paid sessions still in flight (deducted by the platform, not yet finished) are taken over: their generation is
// requested in the ledger and its hold re-created, so the worker runs it and charges it once. Run it while credit
// writes are frozen, before the bridge is installed (docs/platform-adoption.md). An account already in the ledger is
// skipped (its balance is the ledger's), so a second run picks up only accounts created since, and changes nothing
// else.
import {
  WrongExpectedRevisionError,
  type EventStore,
  type NewEvent,
} from '../app/ports/eventStore.ts';
import { ACCOUNT, GENERATION, commandMeta, type AggregateRepository } from '../app/aggregates.ts';
import { CHARGE_WINDOW_MS, decideAccount, initialAccount, type AccountCommand } from '../domain/account.ts';
import type { CreditsGranted, GenerationRequested } from '../domain/events.ts';
import { decideGeneration, type GenerationCommand } from '../domain/generation.ts';
import { accountEventId, generationEventId } from '../domain/stepIds.ts';
import { accountIdOf, accountStream, generationStream, hashShopperEmail, parseAccountId, type AccountRef } from '../domain/streams.ts';
import type { Logger } from '../logger.ts';
import { ownerColumns } from './projection.ts';
import type { ReadModel, Value } from './readModel.ts';
import { OPENING_TOTALS } from './schema.ts';

export interface ImportResult {
  imported: number;
  credits: number;
  /** the account already has a ledger stream */
  skippedExisting: number;
  /** zero balance and nothing in flight: nothing to grant (its opening totals are recorded) */
  skippedZero: number;
  /** paid sessions in flight taken over (requested in the ledger, hold re-created) */
  sessionsTakenOver: number;
  failed: number;
}

type Row = Record<string, Value>;

/**
 * The request id of every event the import appends (opening grants, re-created holds): they are the state at the
 * import, which the platform's own history already shows (credit-history keeps them out of the platform tables).
 */
export const IMPORT_REQUEST_ID = 'import-balances';

interface Source {
  table: 'user_credits' | 'store_credits' | 'store_shopper_credits';
  sql: string;
  account: (r: Row) => AccountRef;
  /** stable per row: the reference (idempotency key) of the grant */
  key: (r: Row) => string;
}

const SOURCES: Source[] = [
  {
    table: 'user_credits',
    sql: 'SELECT user_id, balance, total_earned AS earned, total_spent AS spent FROM user_credits ORDER BY user_id',
    account: (r) => parseAccountId(`user:${r.user_id}`),
    key: (r) => String(r.user_id),
  },
  {
    table: 'store_credits',
    sql: 'SELECT store_id, balance, total_purchased AS earned, total_spent AS spent FROM store_credits ORDER BY store_id',
    account: (r) => parseAccountId(`store:${r.store_id}`),
    key: (r) => String(r.store_id),
  },
  {
    table: 'store_shopper_credits',
    sql: 'SELECT id, store_id, shopper_email, shopper_hash, balance, total_purchased AS earned, total_spent AS spent FROM store_shopper_credits ORDER BY id',
    // plain email -> hash here; it never reaches the ledger
    account: (r) => parseAccountId(`shopper:${r.store_id}:${r.shopper_email}`),
    key: (r) => String(r.id),
  },
];

/** A paid session in flight at import: the platform deducted its credits and no worker has finished it. */
interface InFlight {
  account: string;
  request: GenerationRequested['data'];
}

// Within the charge window only: an older one could not be charged by the ledger any more (and the platform's cron
// fails B2C sessions after 10 minutes anyway). B2B: only sessions whose pool deduction row exists (an overage session
// took no credit).
const CHARGE_WINDOW_SQL = `now() - interval '${CHARGE_WINDOW_MS / 1000} seconds'`;
const IN_FLIGHT_B2C = `SELECT id::text AS id, user_id::text AS owner, NULL AS shopper_email, coalesce(credits_used, 1) AS cost,
    model_image_url, outfit_image_url, accessories::text AS accessories, prompt_system, NULL AS request_id, created_at
  FROM generation_sessions WHERE status IN ('queued', 'pending', 'processing') AND created_at > ${CHARGE_WINDOW_SQL} ORDER BY created_at`;
const IN_FLIGHT_B2B = `SELECT s.id::text AS id, s.store_id::text AS owner, s.shopper_email, s.credits_used AS cost,
    s.model_image_url, s.outfit_image_url, NULL AS accessories, s.prompt_system, s.request_id, s.created_at
  FROM store_generation_sessions s WHERE s.status IN ('queued', 'processing') AND s.created_at > ${CHARGE_WINDOW_SQL}
    AND EXISTS (SELECT 1 FROM store_credit_transactions t WHERE t.store_id = s.store_id AND t.request_id = s.request_id AND t.type = 'deduction')
  ORDER BY s.created_at`;

function inFlightOf(r: Row, channel: 'b2b' | 'b2c', acceptedAt: string): InFlight {
  const shopperEmail = r.shopper_email === null ? null : String(r.shopper_email);
  const account = channel === 'b2c' ? `user:${r.owner}` : shopperEmail ? `shopper:${r.owner}:${shopperEmail}` : `store:${r.owner}`;
  const accessories = r.accessories ? (JSON.parse(String(r.accessories)) as { url?: unknown }[]) : [];
  const imageUrls = [r.model_image_url, r.outfit_image_url, ...accessories.map((a) => a?.url)].filter((u): u is string => typeof u === 'string' && u !== '');
  const sessionId = String(r.id);
  return {
    account: accountIdOf(parseAccountId(account)),
    request: {
      sessionId,
      taskId: `import:${sessionId}`,
      channel,
      account: accountIdOf(parseAccountId(account)),
      imageUrls,
      prompt: String(r.prompt_system ?? ''),
      requestId: r.request_id ? String(r.request_id) : `import_${sessionId}`,
      payloadVersion: 1,
      requestedAt: new Date(String(r.created_at)).toISOString(),
      acceptedAt,
      cost: Number(r.cost),
      ...(shopperEmail ? { shopperHash: hashShopperEmail(shopperEmail) } : {}),
    },
  };
}

async function inFlightSessions(readModel: ReadModel, acceptedAt: string): Promise<InFlight[]> {
  // The embedded (SQLite) read model has no platform behind it: nothing can be in flight there.
  if (readModel.dialect !== 'postgres') return [];
  return [
    ...(await readModel.query(IN_FLIGHT_B2C)).map((r) => inFlightOf(r, 'b2c', acceptedAt)),
    ...(await readModel.query(IN_FLIGHT_B2B)).map((r) => inFlightOf(r, 'b2b', acceptedAt)),
  ];
}

/** The generation requested as it was queued, and its hold on the (just opened) account, both idempotent. */
async function takeOver(repo: AggregateRepository, s: InFlight, at: number): Promise<void> {
  const meta = commandMeta({ requestId: IMPORT_REQUEST_ID, causationId: `import:${s.request.sessionId}`, workerId: 'cli', at });
  const gStream = generationStream(s.request.sessionId);
  const request: GenerationCommand = { type: 'Request', data: s.request };
  await repo.handle(GENERATION, gStream, ({ state }) => {
    const d = decideGeneration(state, request);
    const events = d.ok ? d.events : [];
    return { events, ids: events.map((e) => generationEventId(gStream, request, state, e)), result: null };
  }, meta);
  const aStream = accountStream(s.account);
  const hold: AccountCommand = { type: 'Deduct', generationId: s.request.sessionId, amount: s.request.cost, requestId: s.request.requestId, acceptedAt: s.request.acceptedAt, now: at };
  await repo.handle(ACCOUNT, aStream, ({ state }) => {
    const d = decideAccount(state, hold);
    if (!d.ok) throw new Error(`hold of session ${s.request.sessionId} refused (${d.code}): ${d.message}`);
    return { events: d.events, ids: d.events.map(() => accountEventId(aStream, hold)), result: null };
  }, meta);
}

export async function importBalances(
  store: EventStore,
  readModel: ReadModel,
  logger: Logger,
  onProgress?: (done: number, total: number) => void,
  repo?: AggregateRepository,
): Promise<ImportResult> {
  const res: ImportResult = { imported: 0, credits: 0, skippedExisting: 0, skippedZero: 0, sessionsTakenOver: 0, failed: 0 };
  const work: { src: Source; row: Row }[] = [];
  for (const src of SOURCES) for (const row of await readModel.query(src.sql)) work.push({ src, row });
  const now = Date.now();
  const occurredAt = new Date(now).toISOString();
  const inFlight = repo ? await inFlightSessions(readModel, occurredAt) : [];
  const heldBy = new Map<string, InFlight[]>();
  for (const s of inFlight) heldBy.set(s.account, [...(heldBy.get(s.account) ?? []), s]);
  let done = 0;
  for (const { src, row } of work) {
    try {
      const ref = src.account(row);
      const account = accountIdOf(ref);
      if (src.table === 'store_shopper_credits' && row.shopper_hash == null) {
        // Lets the credit-balances projection find the platform row by (store_id, shopper_hash).
        await readModel.query('UPDATE store_shopper_credits SET shopper_hash = ? WHERE id = ?', [ref.id.split('.')[1]!, row.id!]);
      }
      const balance = Number(row.balance);
      const sessions = heldBy.get(account) ?? [];
      heldBy.delete(account);
      const held = sessions.reduce((a, s) => a + s.request.cost, 0);
      const stream = accountStream(ref);
      if ((await store.streamRevision(stream)) !== null) {
        res.skippedExisting++;
      } else {
        // The platform's totals as they stand; a null total (user_credits allows it) counts as the balance's share.
        const earned = row.earned === null ? balance + held : Number(row.earned);
        const spent = row.spent === null ? held : Number(row.spent);
        const owner = ownerColumns(ref);
        // What the ledger's own totals will not count: earned before the opening grant, spent before the holds.
        await readModel.query(
          `INSERT INTO ${OPENING_TOTALS.name} (account, kind, owner_id, shopper_hash, earned, spent, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (account) DO NOTHING`,
          [account, ref.kind, owner.owner_id, owner.shopper_hash, earned - (balance + held), spent - held, occurredAt],
        );
        if (!(balance + held > 0)) res.skippedZero++;
        else if (await openAccount(store, stream, balance + held, `opening_balance:${src.table}:${src.key(row)}`, occurredAt)) {
          res.imported++;
          res.credits += balance + held;
          for (const s of sessions) {
            await takeOver(repo!, s, now);
            res.sessionsTakenOver++;
          }
        } else res.skippedExisting++; // appeared meanwhile (another run, or the worker)
      }
      logger.debug({ account, table: src.table }, 'import_balance_row');
    } catch (err) {
      res.failed++;
      logger.error({ err, table: src.table, key: src.key(row) }, 'import_balance_failed');
    }
    onProgress?.(++done, work.length);
  }
  for (const [account, sessions] of heldBy) {
    // A session whose pool has no platform row (or failed above) cannot be taken over: its task runs as any new one.
    logger.warn({ account, sessions: sessions.map((s) => s.request.sessionId) }, 'import_in_flight_without_pool');
  }
  return res;
}

/** The opening grant on a stream that must not exist yet; false when it appeared meanwhile. */
async function openAccount(store: EventStore, stream: string, amount: number, reference: string, occurredAt: string): Promise<boolean> {
  // The account decider's rules hold for opening balances too (a whole amount within MAX_CREDITS).
  const decision = decideAccount(initialAccount(), { type: 'Grant', amount, reason: 'opening_balance', reference });
  if (!decision.ok) throw new Error(`opening balance refused (${decision.code}): ${decision.message}`);
  const data = (decision.events[0] as CreditsGranted).data;
  const ev: NewEvent<CreditsGranted['data']> = {
    id: accountEventId(stream, { type: 'Grant', ...data }),
    type: 'CreditsGranted',
    data,
    metadata: { requestId: IMPORT_REQUEST_ID, causationId: reference, correlationId: reference, workerId: 'cli', occurredAt },
  };
  try {
    await store.append(stream, [ev], 'no_stream');
    return true;
  } catch (err) {
    if (!(err instanceof WrongExpectedRevisionError)) throw err;
    return false;
  }
}
