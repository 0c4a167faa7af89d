// Invariants 1-3 of ledger.md, checked over the whole log by one streaming pass. Used by `wearon verify` and by the
// property tests. Pure: feed events in global order, then ask for the report.
import type { AccountEvent, GenerationEvent, LedgerEvent } from './events.ts';
import { ACCOUNT_EVENT_TYPES } from './events.ts';
import { accountFromStream, accountIdOf, sessionIdFromStream } from './streams.ts';

/** Where a violation shows: the stream and the event (when the caller passed event ids to `add`). */
export interface EventLocation {
  stream: string;
  event_type: string;
  event_id?: string;
  revision?: number;
}

export interface Violation extends Partial<EventLocation> {
  invariant: 1 | 2 | 3 | 4;
  /** account id or session id */
  subject: string;
  message: string;
}

interface HoldRecord {
  account: string;
  deductions: number;
  captures: number;
  refunds: number;
  /** the (first) deduction */
  at?: EventLocation;
}

export interface LedgerSummary {
  accounts: number;
  generations: number;
  events: number;
  granted: number;
  revoked: number;
  deducted: number;
  captured: number;
  refunded: number;
  openHolds: number;
  byStatus: Record<string, number>;
}

const accountTypes: ReadonlySet<string> = new Set(ACCOUNT_EVENT_TYPES);

export class LedgerAuditor {
  private readonly balances = new Map<string, number>();
  private readonly holds = new Map<string, HoldRecord>();
  private readonly generations = new Map<string, { status: string; account: string | null; lastAt: number; last?: EventLocation }>();
  private readonly violations: Violation[] = [];
  private readonly totals = { granted: 0, revoked: 0, deducted: 0, captured: 0, refunded: 0, events: 0 };
  /** the event being added: every violation found while adding it points at it */
  private current: EventLocation | undefined;

  constructor(private readonly maxViolations = 1000) {}

  private violate(v: Violation) {
    if (this.violations.length < this.maxViolations) this.violations.push({ ...this.current, ...v });
  }

  /**
   * `at`: the event's time (epoch ms), used to leave recent generations out of invariant 3 on a live ledger.
   * `ref`: the recorded event's id and revision, so violations name the event that shows them.
   */
  add(streamId: string, event: LedgerEvent, at = 0, ref?: { id: string; revision: number }): void {
    this.totals.events += 1;
    this.current = { stream: streamId, event_type: event.type, ...(ref ? { event_id: ref.id, revision: ref.revision } : {}) };
    if (accountTypes.has(event.type)) {
      const ref = accountFromStream(streamId);
      if (!ref) return this.violate({ invariant: 1, subject: streamId, message: `${event.type} outside a credit-account stream` });
      this.addAccountEvent(accountIdOf(ref), event as AccountEvent);
      return;
    }
    const sessionId = sessionIdFromStream(streamId);
    if (!sessionId) return;
    this.addGenerationEvent(sessionId, event as GenerationEvent, at);
  }

  private addAccountEvent(account: string, e: AccountEvent) {
    let balance = this.balances.get(account) ?? 0;
    switch (e.type) {
      case 'CreditsGranted':
        balance += e.data.amount;
        this.totals.granted += e.data.amount;
        break;
      case 'CreditsRevoked':
        balance -= e.data.amount;
        this.totals.revoked += e.data.amount;
        break;
      case 'CreditDeducted': {
        balance -= e.data.amount;
        this.totals.deducted += e.data.amount;
        const h = this.holds.get(e.data.generationId) ?? { account, deductions: 0, captures: 0, refunds: 0, ...(this.current ? { at: this.current } : {}) };
        h.deductions += 1;
        if (h.deductions > 1) this.violate({ invariant: 2, subject: e.data.generationId, message: `deducted ${h.deductions} times` });
        if (h.account !== account) this.violate({ invariant: 2, subject: e.data.generationId, message: `deducted from ${account} and ${h.account}` });
        const g = this.generations.get(e.data.generationId);
        if (g?.account && g.account !== account) {
          this.violate({ invariant: 2, subject: e.data.generationId, message: `deducted from ${account}, but the generation belongs to ${g.account}` });
        }
        this.holds.set(e.data.generationId, h);
        break;
      }
      case 'CreditCaptured':
      case 'CreditRefunded': {
        const h = this.holds.get(e.data.generationId);
        if (e.type === 'CreditCaptured') this.totals.captured += e.data.amount;
        else {
          this.totals.refunded += e.data.amount;
          balance += e.data.amount;
        }
        if (!h) {
          this.violate({ invariant: 2, subject: e.data.generationId, message: `${e.type} without a deduction` });
          break;
        }
        if (h.account !== account) this.violate({ invariant: 2, subject: e.data.generationId, message: `${e.type} on ${account}, held on ${h.account}` });
        if (e.type === 'CreditCaptured') h.captures += 1;
        else h.refunds += 1;
        if (h.captures + h.refunds > 1) {
          this.violate({ invariant: 2, subject: e.data.generationId, message: `settled ${h.captures + h.refunds} times (${h.captures} captures, ${h.refunds} refunds)` });
        }
        const g = this.generations.get(e.data.generationId);
        const terminal = g && (g.status === 'completed' || g.status === 'failed' || g.status === 'rejected');
        if (!terminal) this.violate({ invariant: 2, subject: e.data.generationId, message: `${e.type} before the generation was terminal` });
        else if (e.type === 'CreditCaptured' && g.status !== 'completed') {
          this.violate({ invariant: 2, subject: e.data.generationId, message: `captured although the generation ${g.status}` });
        } else if (e.type === 'CreditRefunded' && g.status === 'completed') {
          this.violate({ invariant: 2, subject: e.data.generationId, message: 'refunded although the generation completed' });
        }
        break;
      }
    }
    if (balance < 0) this.violate({ invariant: 1, subject: account, message: `balance ${balance} after ${e.type}` });
    this.balances.set(account, balance);
  }

  private addGenerationEvent(sessionId: string, e: GenerationEvent, at: number) {
    const g = this.generations.get(sessionId) ?? { status: 'none', account: null, lastAt: at };
    g.lastAt = at;
    if (this.current) g.last = this.current;
    if (g.status === 'completed' || g.status === 'failed' || g.status === 'rejected') {
      this.violate({ invariant: 2, subject: sessionId, message: `${e.type} after the generation was ${g.status}` });
    }
    switch (e.type) {
      case 'GenerationRequested':
        g.status = 'requested';
        g.account = e.data.account;
        break;
      case 'GenerationCharged':
      case 'GenerationReleased':
        g.status = 'charged';
        break;
      case 'GenerationStarted':
        g.status = 'started';
        break;
      case 'RetryScheduled':
        g.status = 'retry_scheduled';
        break;
      case 'GenerationCompleted':
        g.status = 'completed';
        break;
      case 'GenerationFailed':
        g.status = 'failed';
        break;
      case 'GenerationRejected':
        g.status = 'rejected';
        break;
    }
    this.generations.set(sessionId, g);
  }

  /**
   * `quiescent`: recovery has run with nothing in flight, so invariant 3 applies to every generation. On a live ledger
   * pass `settledBefore` (epoch ms): invariant 3 then applies to generations whose last event is older than that.
   */
  report(quiescent: boolean, settledBefore = Number.NEGATIVE_INFINITY): { violations: Violation[]; summary: LedgerSummary } {
    const cutoff = quiescent ? Number.POSITIVE_INFINITY : settledBefore;
    const settledLongAgo = (id: string) => (this.generations.get(id)?.lastAt ?? 0) < cutoff;
    const violations = [...this.violations];
    const byStatus: Record<string, number> = {};
    for (const g of this.generations.values()) byStatus[g.status] = (byStatus[g.status] ?? 0) + 1;
    let openHolds = 0;
    for (const [generationId, h] of this.holds) {
      const open = h.deductions - h.captures - h.refunds > 0;
      if (open) openHolds += 1;
      if (!settledLongAgo(generationId)) continue;
      const g = this.generations.get(generationId);
      if (open) violations.push({ ...h.at, invariant: 3, subject: generationId, message: `hold of ${h.account} still open (generation ${g?.status ?? 'unknown'})` });
    }
    if (cutoff > Number.NEGATIVE_INFINITY) {
      for (const [sessionId, g] of this.generations) {
        if (!settledLongAgo(sessionId)) continue;
        const h = this.holds.get(sessionId);
        if (g.status === 'completed' && !(h && h.captures === 1)) {
          violations.push({ ...g.last, invariant: 3, subject: sessionId, message: 'completed but not captured' });
        }
        if ((g.status === 'failed' || g.status === 'rejected') && h && h.captures > 0) {
          violations.push({ ...g.last, invariant: 3, subject: sessionId, message: `${g.status} but a charge was kept` });
        }
      }
      const t = this.totals;
      if (quiescent && t.deducted !== t.captured + t.refunded) {
        violations.push({ invariant: 3, subject: '*', message: `deducted ${t.deducted} != captured ${t.captured} + refunded ${t.refunded}` });
      }
    }
    return {
      violations,
      summary: {
        accounts: this.balances.size,
        generations: this.generations.size,
        events: this.totals.events,
        granted: this.totals.granted,
        revoked: this.totals.revoked,
        deducted: this.totals.deducted,
        captured: this.totals.captured,
        refunded: this.totals.refunded,
        openHolds,
        byStatus,
      },
    };
  }
}
