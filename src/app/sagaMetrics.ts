// The saga's metrics, observed from what it appended (never counted inline): generation outcomes, stage timings,
// upstream cost, credits moved by generations, and the runs in flight.
import type { LedgerEvent } from '../domain/events.ts';
import { isAccountEvent } from '../domain/decode.ts';
import { assertNever } from '../domain/exhaustive.ts';
import { accountMovement, type MovementKind } from '../domain/movement.ts';
import type { Metrics } from '../metrics.ts';

export interface AppendContext {
  /** b2b, b2c, or `unknown` for an invalid task */
  channel: string;
  /** who generated (a run's outcome), else `none` */
  provider: string;
}

export interface SagaObserver {
  /** an event the saga appended (a decision that appends nothing is not observed) */
  appended(event: LedgerEvent, context: AppendContext): void;
  /** a run started (+1) or ended (-1) in this process */
  running(delta: 1 | -1): void;
}

/** Overage movements move no credit: they are counted per generation, apart from wearon_credits_total. */
const OVERAGE_OUTCOME: Record<MovementKind, string | null> = {
  granted: null,
  revoked: null,
  deducted: null,
  captured: null,
  refunded: null,
  overage_charged: 'charged',
  overage_captured: 'captured',
  overage_refund_due: 'refund_due',
  transferred: null,
};

export function sagaMetrics(m: Metrics): SagaObserver {
  const outcome = (name: string, c: AppendContext, errorCode: string) =>
    m.generations.inc({ outcome: name, channel: c.channel, provider: c.provider, error_code: errorCode });
  return {
    running: (delta) => m.inFlight.inc(delta),
    appended(e, c) {
      if (isAccountEvent(e)) {
        const movement = accountMovement(e);
        const overage = OVERAGE_OUTCOME[movement.kind];
        if (overage) m.overage.inc({ outcome: overage });
        else m.credits.inc({ movement: movement.kind }, movement.credits);
        return;
      }
      switch (e.type) {
        case 'GenerationRequested':
        case 'GenerationCharged':
        case 'GenerationStarted':
        case 'GenerationReleased':
          return;
        case 'RetryScheduled':
          return outcome('retry_scheduled', c, 'rate_limited');
        case 'GenerationCompleted': {
          const t = e.data.timings;
          m.stageSeconds.observe({ stage: 'download' }, t.downloadMs / 1000);
          m.stageSeconds.observe({ stage: 'resize' }, t.resizeMs / 1000);
          m.stageSeconds.observe({ stage: 'generate' }, t.generateMs / 1000);
          m.stageSeconds.observe({ stage: 'upload' }, t.uploadMs / 1000);
          m.stageSeconds.observe({ stage: 'queue_to_done' }, t.totalMs / 1000);
          if (e.data.costUsd) m.costUsd.inc({ provider: c.provider }, e.data.costUsd);
          return outcome('completed', c, 'none');
        }
        case 'GenerationFailed':
          return outcome('failed', c, e.data.code);
        case 'GenerationRejected':
          return outcome('rejected', c, e.data.code);
        case 'StoreBillingRecorded':
        case 'BillingIntentRecorded':
        case 'StoreUninstalled':
        case 'StoreReinstalled':
        case 'TransferRequested':
        case 'TransferCompleted':
        case 'TransferRejected':
          return;
        default:
          return assertNever(e, 'generation event');
      }
    },
  };
}
