// Store commands (billing facts, billing intents, uninstall) and the store view. The bridge's dispatcher, the CLI and
// HTTP call these; each is idempotent (facts by value, intents by (store, request_id), uninstall by state).
import { hashShopperEmail, storeStream } from '../domain/streams.ts';
import { decideStore, type StoreBilling, type StoreCommand } from '../domain/store.ts';
import type { IntentPool, SubscriptionTier } from '../domain/events.ts';
import { deterministicEventId } from '../domain/streams.ts';
import { STORE, commandMeta, type AggregateRepository } from './aggregates.ts';
import type { CommandContext } from './credits.ts';
import { PendingIndex } from './pending.ts';
import type { EventStore } from './ports/eventStore.ts';
import type { GenerationSaga } from './saga.ts';

export class StoreCommandRejected extends Error {
  override readonly name = 'StoreCommandRejected';
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

/** The event id of a store command: facts by their value, an intent by its request, uninstall/reinstall by reference. */
function stepOf(c: StoreCommand, revision: number): string {
  switch (c.type) {
    case 'RecordBilling':
      // the same facts recorded again after another change are a new event: the revision tells them apart
      return `billing:${revision}:${c.billing.billingMode}:${c.billing.subscriptionTier}:${c.billing.subscriptionStatus}:${c.billing.subscriptionId}`;
    case 'RecordIntent':
      return `intent:${revision}:${c.intent.requestId}`;
    case 'Uninstall':
      return `uninstall:${c.reference}`;
    case 'Reinstall':
      return `reinstall:${c.reference}`;
  }
}

async function applyStoreCommand(repo: AggregateRepository, storeId: string, command: StoreCommand, ctx: CommandContext) {
  const stream = storeStream(storeId);
  const r = await repo.handle(
    STORE,
    stream,
    ({ state, revision }) => {
      const d = decideStore(state, command);
      if (!d.ok) throw new StoreCommandRejected(d.code, d.message);
      return { events: d.events, ids: d.events.map(() => deterministicEventId(stream, stepOf(command, revision))), result: null };
    },
    commandMeta({ requestId: ctx.requestId, causationId: `${command.type}:${storeId}`, workerId: ctx.workerId, at: ctx.now ?? Date.now() }),
  );
  return { storeId, applied: r.appended, revision: r.revision };
}

/** The store's billing mode and subscription, as the platform's `stores` row has them. */
export function recordStoreBilling(repo: AggregateRepository, storeId: string, billing: StoreBilling, ctx: CommandContext) {
  return applyStoreCommand(repo, storeId, { type: 'RecordBilling', billing }, ctx);
}

export interface IntentInput {
  requestId: string;
  pool: IntentPool;
  /** the plain address (shopper pool): hashed here, it never enters the ledger */
  shopperEmail?: string | null;
  /** or its hash already (the bridge computes it in SQL, so the inbox holds no address either) */
  shopperHash?: string | null;
  paddleReference?: string | null;
  tier?: SubscriptionTier | null;
}

/** The pool the platform chose for (store, request_id): intake of that request's task charges it (domain/billing.ts). */
export function recordBillingIntent(repo: AggregateRepository, storeId: string, input: IntentInput, ctx: CommandContext) {
  const intent = {
    requestId: input.requestId,
    pool: input.pool,
    shopperHash: input.pool !== 'shopper' ? null : input.shopperEmail ? hashShopperEmail(input.shopperEmail) : (input.shopperHash ?? null),
    paddleReference: input.paddleReference ?? null,
    tier: input.tier ?? null,
  };
  return applyStoreCommand(repo, storeId, { type: 'RecordIntent', intent }, ctx);
}

export function reinstallStore(repo: AggregateRepository, storeId: string, reference: string, ctx: CommandContext) {
  return applyStoreCommand(repo, storeId, { type: 'Reinstall', reference }, ctx);
}

/**
 * Uninstall: recorded on the store's stream (later tasks are rejected `store_uninstalled`); then, given the log and a
 * saga (CLI, HTTP), every queued generation of the store or its shoppers that the log shows unfinished is ended
 * without running, its hold returned to the pool that paid. Running workers do the same for what they meet (their
 * pending index makes the store's unfinished generations due at once, and the saga checks at charge, claim and
 * wait), so a generation this pass misses, or an uninstall recorded without a saga (the bridge), ends the same way.
 */
export async function uninstallStore(
  deps: { repo: AggregateRepository; store?: EventStore; saga?: GenerationSaga },
  storeId: string,
  reference: string,
  ctx: CommandContext,
): Promise<{ storeId: string; applied: boolean; ended: Record<string, string> }> {
  const r = await applyStoreCommand(deps.repo, storeId, { type: 'Uninstall', reference }, ctx);
  const ended: Record<string, string> = {};
  if (!deps.store || !deps.saga) return { storeId, applied: r.applied, ended };
  const index = await PendingIndex.fromLog(deps.store);
  for (const sessionId of index.unfinishedOf(storeId)) ended[sessionId] = await deps.saga.cancelIfUninstalled(sessionId);
  return { storeId, applied: r.applied, ended };
}

export async function storeView(repo: AggregateRepository, storeId: string) {
  const { state, revision } = await repo.load(STORE, storeStream(storeId));
  return {
    store_id: storeId,
    stream: storeStream(storeId),
    exists: revision >= 0,
    revision,
    billing: state.billing,
    uninstalled_at: state.uninstalledAt,
    intents_remembered: Object.keys(state.intents).length,
  };
}

