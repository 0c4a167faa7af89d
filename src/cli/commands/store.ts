// `wearon store`: a B2B store's billing facts in the ledger (show, record facts and intents, uninstall, reinstall).
// The bridge records the same from the platform's tables; these are for operators and for a platform without it.
import { recordBillingIntent, recordStoreBilling, reinstallStore, storeView, StoreCommandRejected, uninstallStore } from '../../app/stores.ts';
import { createGeneration } from '../../compose/generation.ts';
import { createRepository, openEventStore, workerIdOf } from '../../compose/ledger.ts';
import { withScope } from '../../compose/scope.ts';
import { BILLING_MODES, SUBSCRIPTION_TIERS, type BillingMode, type IntentPool, type SubscriptionTier } from '../../domain/events.ts';
import { createMetrics } from '../../metrics.ts';
import { UsageError, parseArgs, type CliCommand } from '../command.ts';

const USAGE = [
  'wearon store show <storeId>',
  'wearon store billing <storeId> --mode absorb|resell [--tier starter|growth|scale --status <S> --subscription-id <ID>]',
  'wearon store intent <storeId> --request <request_id> --pool store|shopper|overage [--shopper-email E] [--paddle-reference P] [--tier T]',
  'wearon store uninstall <storeId> --reference <REF>',
  'wearon store reinstall <storeId> --reference <REF>',
].join('\n       ');

const text = (v: string | true | undefined): string | null => (typeof v === 'string' && v.trim() ? v.trim() : null);
function oneOf<T extends string>(v: string | true | undefined, allowed: readonly T[], name: string, optional = false): T | null {
  const t = text(v);
  if (t === null && optional) return null;
  if (!allowed.includes(t as T)) throw new UsageError(`--${name} must be one of ${allowed.join(', ')}`);
  return t as T;
}

export const storeCommand: CliCommand = {
  name: 'store',
  summary: "a B2B store's billing facts: show, billing, intent, uninstall (ends its queued generations, refunds holds), reinstall",
  usage: USAGE,
  run: async (args, ctx) => {
    const { flags, positionals } = parseArgs(args);
    const [verb, storeId] = positionals;
    if (!verb || !storeId) throw new UsageError(`usage: ${USAGE}`);
    const cmd = { requestId: `cli_${Date.now().toString(36)}`, workerId: workerIdOf(ctx.config) };
    const reference = () => text(flags.reference) ?? (() => { throw new UsageError('--reference is required'); })();
    return withScope(ctx.logger, async (scope) => {
      const metrics = createMetrics();
      const store = scope.add(await openEventStore(ctx.config, ctx.logger, metrics));
      const repo = createRepository(store);
      try {
        switch (verb) {
          case 'show':
            break;
          case 'billing':
            await recordStoreBilling(
              repo,
              storeId,
              {
                billingMode: oneOf<BillingMode>(flags.mode, BILLING_MODES, 'mode')!,
                subscriptionTier: oneOf<SubscriptionTier>(flags.tier, SUBSCRIPTION_TIERS, 'tier', true),
                subscriptionStatus: text(flags.status),
                subscriptionId: text(flags['subscription-id']),
              },
              cmd,
            );
            break;
          case 'intent':
            await recordBillingIntent(
              repo,
              storeId,
              {
                requestId: text(flags.request) ?? (() => { throw new UsageError('--request is required'); })(),
                pool: oneOf<IntentPool>(flags.pool, ['store', 'shopper', 'overage'], 'pool')!,
                shopperEmail: text(flags['shopper-email']),
                paddleReference: text(flags['paddle-reference']),
                tier: oneOf<SubscriptionTier>(flags.tier, SUBSCRIPTION_TIERS, 'tier', true),
              },
              cmd,
            );
            break;
          case 'uninstall': {
            const ref = reference();
            const { saga } = await createGeneration(ctx.config, { store, workerId: cmd.workerId, logger: ctx.logger, metrics });
            const r = await uninstallStore({ repo, store, saga }, storeId, ref, cmd);
            ctx.err(`uninstall ${r.applied ? 'recorded' : 'already recorded'}; queued generations ended: ${JSON.stringify(r.ended)}`);
            break;
          }
          case 'reinstall':
            await reinstallStore(repo, storeId, reference(), cmd);
            break;
          default:
            throw new UsageError(`unknown verb ${JSON.stringify(verb)}; usage: ${USAGE}`);
        }
      } catch (err) {
        if (err instanceof StoreCommandRejected) {
          ctx.err(`refused (${err.code}): ${err.message}`);
          return 1;
        }
        throw err;
      }
      ctx.out(JSON.stringify(await storeView(repo, storeId), null, 2));
      return 0;
    });
  },
};
