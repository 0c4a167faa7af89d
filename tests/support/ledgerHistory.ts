// Valid ledger histories for projection tests: a small simulator of accounts and generations driven by random
// actions (fast-check), producing events in the order the saga would append them (interleaved across sessions).
import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import type { EventStore, NewEvent } from '../../src/app/ports/eventStore.ts';
import { accountStream, deterministicEventId, generationStream, parseAccountId, storeOfAccount, storeStream } from '../../src/domain/streams.ts';

export interface HistoryEvent {
  stream: string;
  type: string;
  data: Record<string, unknown>;
}

export type Action =
  | { a: 'grant'; acc: number; amount: number }
  | { a: 'revoke'; acc: number; amount: number }
  /** a Shopify shopper purchase: store pool -> that store's shopper, both legs (the transfer process's account events) */
  | { a: 'transfer'; acc: number; amount: number }
  | { a: 'request'; acc: number; b2b: boolean }
  | { a: 'advance'; s: number; choice: number };

export const actionArb: fc.Arbitrary<Action> = fc.oneof(
  fc.record({ a: fc.constant('grant' as const), acc: fc.nat(5), amount: fc.integer({ min: 1, max: 5 }) }),
  fc.record({ a: fc.constant('revoke' as const), acc: fc.nat(5), amount: fc.integer({ min: 1, max: 3 }) }),
  fc.record({ a: fc.constant('transfer' as const), acc: fc.nat(1), amount: fc.integer({ min: 1, max: 3 }) }),
  fc.record({ a: fc.constant('request' as const), acc: fc.nat(5), b2b: fc.boolean() }),
  fc.record({ a: fc.constant('advance' as const), s: fc.nat(40), choice: fc.nat(9) }),
  fc.record({ a: fc.constant('advance' as const), s: fc.nat(40), choice: fc.nat(9) }),
);

interface Session {
  id: string;
  account: string;
  step: 'requested' | 'charged' | 'started' | 'retry' | 'completed' | 'failed' | 'rejected' | 'settled';
  deducted: boolean;
  /** charged as an overage (B2B store pool short, subscription allowing it): no credit moves */
  overage: boolean;
  attempt: number;
}

/** Six accounts: two users, two stores, two shoppers (uuids so the Postgres platform tables accept them). */
export function makeAccounts(seed = randomUUID()): string[] {
  const id = (i: number) => `${seed.slice(0, 8)}-0000-4000-8000-${String(i).padStart(12, '0')}`;
  const hash = (i: number) => String(i).repeat(32).slice(0, 32);
  return [`user:${id(1)}`, `user:${id(2)}`, `store:${id(3)}`, `store:${id(4)}`, `shopper:${id(3)}.${hash(1)}`, `shopper:${id(4)}.${hash(2)}`];
}

export function simulate(actions: readonly Action[], accounts = makeAccounts()): HistoryEvent[] {
  const out: HistoryEvent[] = [];
  const balance = new Map<string, number>(accounts.map((a) => [a, 0]));
  const sessions: Session[] = [];
  let n = 0;
  const acct = (a: string, type: string, data: Record<string, unknown>) => out.push({ stream: accountStream(a), type, data });
  const gen = (s: Session, type: string, data: Record<string, unknown>) => out.push({ stream: generationStream(s.id), type, data });
  for (const act of actions) {
    if (act.a === 'grant') {
      const a = accounts[act.acc % accounts.length]!;
      balance.set(a, balance.get(a)! + act.amount);
      acct(a, 'CreditsGranted', { amount: act.amount, reason: 'purchase', reference: `order-${n++}` });
    } else if (act.a === 'revoke') {
      const a = accounts[act.acc % accounts.length]!;
      if (balance.get(a)! < act.amount) continue;
      balance.set(a, balance.get(a)! - act.amount);
      acct(a, 'CreditsRevoked', { amount: act.amount, reason: 'adjustment', reference: `fix-${n++}` });
    } else if (act.a === 'transfer') {
      const [store, shopper] = [accounts[2 + act.acc]!, accounts[4 + act.acc]!];
      if (balance.get(store)! < act.amount) {
        // the store buys what it lacks first, so a transfer always happens (they are rare otherwise)
        const lack = act.amount - balance.get(store)!;
        balance.set(store, act.amount);
        acct(store, 'CreditsGranted', { amount: lack, reason: 'subscription', reference: `order-${n++}` });
      }
      const transferId = `order-${n++}`;
      balance.set(store, balance.get(store)! - act.amount);
      balance.set(shopper, balance.get(shopper)! + act.amount);
      acct(store, 'CreditsTransferredOut', { amount: act.amount, transferId, to: shopper });
      acct(shopper, 'CreditsGranted', { amount: act.amount, reason: 'transfer_in', reference: `transfer:${transferId}` });
    } else if (act.a === 'request') {
      const account = accounts.filter((a) => a.startsWith('user:') !== act.b2b)[act.acc % 4 % (act.b2b ? 4 : 2)]!;
      const s: Session = { id: randomUUID(), account, step: 'requested', deducted: false, overage: false, attempt: 0 };
      if (act.acc === 5) {
        // an invalid request rejected before any GenerationRequested (carries channel and account)
        gen(s, 'GenerationRejected', { code: 'invalid_request', message: 'bad payload', channel: act.b2b ? 'b2b' : 'b2c', account });
        continue;
      }
      sessions.push(s);
      // The store's billing facts and intents live on its own stream: projections of money and sessions ignore them.
      const storeId = storeOfAccount(parseAccountId(account));
      if (storeId && act.acc % 2 === 0) {
        out.push({ stream: storeStream(storeId), type: 'BillingIntentRecorded', data: { requestId: `req-${s.id.slice(0, 8)}`, pool: 'store', shopperHash: null, paddleReference: null, tier: null } });
      }
      gen(s, 'GenerationRequested', {
        sessionId: s.id,
        taskId: s.id,
        channel: account.startsWith('user:') ? 'b2c' : 'b2b',
        account,
        imageUrls: act.b2b ? ['https://img/m.jpg'] : ['https://img/m.jpg', 'https://img/o.jpg'],
        prompt: 'dress the model',
        requestId: `req-${s.id.slice(0, 8)}`,
        payloadVersion: 1,
        requestedAt: new Date(Date.UTC(2026, 0, 1, 0, 0, n++)).toISOString(),
        cost: 1,
      });
    } else {
      const s = sessions.length ? sessions[act.s % sessions.length]! : undefined;
      if (!s) continue;
      const c = act.choice;
      switch (s.step) {
        case 'requested':
          if (balance.get(s.account)! >= 1 && c < 8) {
            balance.set(s.account, balance.get(s.account)! - 1);
            s.deducted = true;
            acct(s.account, 'CreditDeducted', { generationId: s.id, amount: 1, requestId: `req-${s.id.slice(0, 8)}` });
            gen(s, 'GenerationCharged', { amount: 1 });
            s.step = 'charged';
          } else if (s.account.startsWith('store:') && c < 4) {
            s.overage = true;
            acct(s.account, 'OverageCharged', { generationId: s.id, amount: 1, requestId: `req-${s.id.slice(0, 8)}`, tier: 'growth', paddleReference: c === 0 ? null : 'sub_1' });
            gen(s, 'GenerationCharged', { amount: 1 });
            s.step = 'charged';
          } else {
            gen(s, 'GenerationRejected', c === 9 ? { code: 'invalid_request', message: 'bad' } : { code: 'insufficient_credits', message: 'no credit' });
            s.step = 'rejected';
          }
          break;
        case 'charged':
        case 'retry':
          gen(s, 'GenerationStarted', { attempt: ++s.attempt, workerId: 'w1', leaseUntil: '2026-01-01T01:00:00.000Z' });
          s.step = 'started';
          break;
        case 'started':
          if (c < 5) {
            gen(s, 'GenerationCompleted', {
              resultPath: `results/${s.id}.jpg`,
              resultUrl: c === 0 ? undefined : `https://cdn/${s.id}.jpg?sig=x`,
              contentType: 'image/jpeg',
              provider: 'openai',
              usage: c === 1 ? null : { inputTokens: 100 + c, outputTokens: 200 + c, textInputTokens: 1, imageInputTokens: 2, textOutputTokens: 3, imageOutputTokens: 4 },
              costUsd: c === 1 ? null : 0.0123456789 * c,
              timings: { downloadMs: 1, resizeMs: 2, generateMs: 3, uploadMs: 4, totalMs: 1000 + c * 17.4 },
            });
            s.step = 'completed';
          } else if (c === 7 && s.attempt < 3) {
            gen(s, 'GenerationReleased', { attempt: s.attempt, workerId: 'w1', reason: 'shutdown' });
            s.step = 'retry';
          } else if (c < 7 && s.attempt < 3) {
            gen(s, 'RetryScheduled', { attempt: s.attempt, notBefore: '2026-01-01T00:10:00.000Z', reason: 'rate_limited' });
            s.step = 'retry';
          } else {
            gen(s, 'GenerationFailed', { code: 'upstream_error', message: 'boom', userMessage: 'Generation failed, credit refunded' });
            s.step = 'failed';
          }
          break;
        case 'completed':
          if (s.deducted) acct(s.account, 'CreditCaptured', { generationId: s.id, amount: 1 });
          if (s.overage) acct(s.account, 'OverageCaptured', { generationId: s.id, amount: 1 });
          s.step = 'settled';
          break;
        case 'failed':
        case 'rejected':
          if (s.deducted) {
            balance.set(s.account, balance.get(s.account)! + 1);
            acct(s.account, 'CreditRefunded', { generationId: s.id, amount: 1, reason: s.step });
          }
          if (s.overage) acct(s.account, 'OverageRefundDue', { generationId: s.id, amount: 1, reason: s.step, paddleReference: 'sub_1' });
          s.step = 'settled';
          break;
        default:
          break;
      }
    }
  }
  return out;
}

/** Appends the history through the port, one event per append (as the saga does). */
export async function appendHistory(store: EventStore, events: readonly HistoryEvent[], offset = 0): Promise<void> {
  let i = offset;
  for (const e of events) {
    const id = deterministicEventId(e.stream, `${e.type}`, i);
    const ev: NewEvent = {
      id,
      type: e.type,
      data: e.data,
      metadata: {
        requestId: 'test',
        causationId: id,
        correlationId: e.stream,
        workerId: 'w1',
        occurredAt: new Date(Date.UTC(2026, 0, 1, 1, 0, 0, i)).toISOString(),
      },
    };
    i++;
    await store.append(e.stream, [ev], 'any');
  }
}

/** A fixed, busy history: 30 sessions over 6 accounts, each taken to its end. */
export function busyHistory(): HistoryEvent[] {
  const actions: Action[] = [];
  for (let i = 0; i < 6; i++) actions.push({ a: 'grant', acc: i, amount: 5 });
  for (let i = 0; i < 30; i++) actions.push({ a: 'request', acc: i % 5, b2b: i % 2 === 0 });
  for (let round = 0; round < 6; round++) for (let s = 0; s < 30; s++) actions.push({ a: 'advance', s, choice: (s * 7 + round) % 9 });
  return simulate(actions);
}
