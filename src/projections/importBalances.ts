// Opening balances: every positive balance in the platform's credit tables becomes CreditsGranted(opening_balance) on
// an account stream that does not exist yet. Run it before the ledger takes over; an account already in the ledger is
// skipped (its balance is the ledger's), so a second run changes nothing.
import {
  WrongExpectedRevisionError,
  type EventStore,
  type NewEvent,
} from '../app/ports/eventStore.ts';
import { decideAccount, initialAccount } from '../domain/account.ts';
import type { CreditsGranted } from '../domain/events.ts';
import { accountEventId } from '../domain/stepIds.ts';
import { accountIdOf, accountStream, parseAccountId, type AccountRef } from '../domain/streams.ts';
import type { Logger } from '../logger.ts';
import type { ReadModel, Value } from './readModel.ts';

export interface ImportResult {
  imported: number;
  credits: number;
  /** the account already has a ledger stream */
  skippedExisting: number;
  /** zero balance: nothing to grant */
  skippedZero: number;
  failed: number;
}

interface Source {
  table: 'user_credits' | 'store_credits' | 'store_shopper_credits';
  sql: string;
  account: (r: Record<string, Value>) => AccountRef;
  /** stable per row: the reference (idempotency key) of the grant */
  key: (r: Record<string, Value>) => string;
}

const SOURCES: Source[] = [
  {
    table: 'user_credits',
    sql: 'SELECT user_id, balance FROM user_credits ORDER BY user_id',
    account: (r) => parseAccountId(`user:${r.user_id}`),
    key: (r) => String(r.user_id),
  },
  {
    table: 'store_credits',
    sql: 'SELECT store_id, balance FROM store_credits ORDER BY store_id',
    account: (r) => parseAccountId(`store:${r.store_id}`),
    key: (r) => String(r.store_id),
  },
  {
    table: 'store_shopper_credits',
    sql: 'SELECT id, store_id, shopper_email, shopper_hash, balance FROM store_shopper_credits ORDER BY id',
    // plain email -> hash here; it never reaches the ledger
    account: (r) => parseAccountId(`shopper:${r.store_id}:${r.shopper_email}`),
    key: (r) => String(r.id),
  },
];

export async function importBalances(
  store: EventStore,
  readModel: ReadModel,
  logger: Logger,
  onProgress?: (done: number, total: number) => void,
): Promise<ImportResult> {
  const res: ImportResult = { imported: 0, credits: 0, skippedExisting: 0, skippedZero: 0, failed: 0 };
  const work: { src: Source; row: Record<string, Value> }[] = [];
  for (const src of SOURCES) for (const row of await readModel.query(src.sql)) work.push({ src, row });
  let done = 0;
  const occurredAt = new Date().toISOString();
  for (const { src, row } of work) {
    try {
      const ref = src.account(row);
      if (src.table === 'store_shopper_credits' && row.shopper_hash == null) {
        // Lets the credit-balances projection find the platform row by (store_id, shopper_hash).
        await readModel.query('UPDATE store_shopper_credits SET shopper_hash = ? WHERE id = ?', [ref.id.split('.')[1]!, row.id!]);
      }
      const balance = Number(row.balance);
      const stream = accountStream(ref);
      if (!(balance > 0)) res.skippedZero++;
      else if ((await store.streamRevision(stream)) !== null) res.skippedExisting++;
      else {
        const reference = `opening_balance:${src.table}:${src.key(row)}`;
        // The account decider's rules hold for opening balances too (a whole amount within MAX_CREDITS).
        const decision = decideAccount(initialAccount(), { type: 'Grant', amount: balance, reason: 'opening_balance', reference });
        if (!decision.ok) throw new Error(`opening balance refused (${decision.code}): ${decision.message}`);
        const data = (decision.events[0] as CreditsGranted).data;
        const ev: NewEvent<CreditsGranted['data']> = {
          id: accountEventId(stream, { type: 'Grant', ...data }),
          type: 'CreditsGranted',
          data,
          metadata: { requestId: 'import-balances', causationId: reference, correlationId: reference, workerId: 'cli', occurredAt },
        };
        try {
          await store.append(stream, [ev], 'no_stream');
          res.imported++;
          res.credits += balance;
        } catch (err) {
          if (!(err instanceof WrongExpectedRevisionError)) throw err;
          res.skippedExisting++; // appeared meanwhile (another run, or the worker)
        }
      }
      logger.debug({ account: accountIdOf(ref), table: src.table }, 'import_balance_row');
    } catch (err) {
      res.failed++;
      logger.error({ err, table: src.table, key: src.key(row) }, 'import_balance_failed');
    }
    onProgress?.(++done, work.length);
  }
  return res;
}
