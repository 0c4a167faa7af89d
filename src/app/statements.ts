// Statement pages that stay fast on long account streams. A running balance needs the balance before the page; instead
// of re-folding the stream from revision 0 on every call (credits.ts `statement`, the CLI's one-shot export), the
// reader keeps, per stream, a summary of every complete block of BLOCK (64) revisions: opening and closing balance, time
// range, event types. Blocks never change once complete (the log is append-only), so they are cached for good.
//
// A block's opening balance is known from either end: block 0 opens at 0, and the account's folded state (snapshot,
// O(1)) gives the balance after the head. So the first page is O(page) in both orders, paging on from there stays
// O(page), and a jump into the unread middle reads the blocks between it and the nearer known end once. Filters by date
// and movement type skip cached blocks that cannot match.
import { ACCOUNT_EVENT_TYPES } from '../domain/decode.ts';
import type { AccountEvent } from '../domain/events.ts';
import { accountIdOf, accountStream, parseAccountId } from '../domain/streams.ts';
import { ACCOUNT, type AggregateRepository } from './aggregates.ts';
import { balanceChange, statementLine, type StatementLine } from './credits.ts';
import type { EventStore, RecordedEvent } from './ports/eventStore.ts';

export const BLOCK = 64;
const STREAMS_CACHED = 256;

type MovementType = AccountEvent['type'];
const TYPE_BIT = new Map<string, number>(ACCOUNT_EVENT_TYPES.map((t, i) => [t, 1 << i]));

export interface StatementFilter {
  /** epoch ms, inclusive */
  since?: number;
  /** epoch ms, exclusive */
  until?: number;
  types?: readonly MovementType[];
}

export interface StatementQuery extends StatementFilter {
  /** asc: oldest first (the CLI's order); desc: newest first */
  order?: 'asc' | 'desc';
  /** first revision to consider, inclusive, in the scan direction (a page's `next_revision`) */
  from?: number;
  limit?: number;
}

export interface StatementPage {
  account: string;
  lines: StatementLine[];
  /** where the next page starts (pass as `from`), or null on the last page */
  next_revision: number | null;
  /** the stream's last revision when the page was read (null: no movements) */
  head_revision: number | null;
}

interface BlockSummary {
  opening: number;
  closing: number;
  low: number;
  high: number;
  /** occurredAt of the first and last event (epoch ms); min/max, since clocks of two workers may disagree */
  minAt: number;
  maxAt: number;
  lastAt: number;
  types: number;
}

export interface BalancePoint {
  /** epoch ms of the last event the point covers */
  at: number;
  revision: number;
  balance: number;
  /** lowest and highest balance reached since the previous point */
  low: number;
  high: number;
}

/** What a page needs of one stream: its head and the balance after it, read together. */
interface Head {
  stream: string;
  revision: number;
  balance: number;
  /** the partial block at the head, once read by this request (never cached: it grows) */
  tail?: BlockSummary;
}

const atOf = (r: RecordedEvent) => Date.parse(r.metadata.occurredAt);

function summarise(events: readonly RecordedEvent[], opening: number): BlockSummary {
  let balance = opening;
  const s: BlockSummary = { opening, closing: opening, low: Infinity, high: -Infinity, minAt: Infinity, maxAt: -Infinity, lastAt: 0, types: 0 };
  for (const r of events) {
    balance += balanceChange(r);
    const at = atOf(r);
    s.low = Math.min(s.low, balance);
    s.high = Math.max(s.high, balance);
    s.minAt = Math.min(s.minAt, at);
    s.maxAt = Math.max(s.maxAt, at);
    s.lastAt = at;
    s.types |= TYPE_BIT.get(r.type) ?? 0;
  }
  s.closing = balance;
  return s;
}

const sumDeltas = (events: readonly RecordedEvent[]) => events.reduce((a, r) => a + balanceChange(r), 0);

function typeMask(types: readonly string[] | undefined): number {
  if (!types || types.length === 0) return -1;
  return types.reduce((m, t) => m | (TYPE_BIT.get(t) ?? 0), 0);
}

export class StatementReader {
  /** stream -> summaries of its complete blocks, by block number (LRU over streams) */
  private readonly streams = new Map<string, (BlockSummary | undefined)[]>();

  constructor(private readonly repo: AggregateRepository) {}

  private get store(): EventStore {
    return this.repo.store;
  }

  private blocksOf(stream: string): (BlockSummary | undefined)[] {
    let blocks = this.streams.get(stream);
    if (blocks) this.streams.delete(stream);
    else blocks = [];
    this.streams.set(stream, blocks);
    if (this.streams.size > STREAMS_CACHED) this.streams.delete(this.streams.keys().next().value!);
    return blocks;
  }

  private async head(account: string): Promise<Head & { account: string }> {
    const ref = parseAccountId(account);
    const stream = accountStream(ref);
    const { state, revision } = await this.repo.load(ACCOUNT, stream);
    return { account: accountIdOf(ref), stream, revision, balance: state.balance };
  }

  /** Events of block `b`, up to the head. */
  private readBlock(h: Head, b: number): Promise<RecordedEvent[]> {
    const first = b * BLOCK;
    const count = Math.min(BLOCK, h.revision - first + 1);
    return this.store.readStream(h.stream, { fromRevision: first, maxCount: count });
  }

  /** Summarises a block read; a complete one is cached for good, the partial head block only for this request. */
  private remember(h: Head, blocks: (BlockSummary | undefined)[], b: number, events: readonly RecordedEvent[], opening: number): BlockSummary {
    const s = summarise(events, opening);
    if (events.length === BLOCK) blocks[b] = s;
    else h.tail = s;
    return s;
  }

  /**
   * Block `b`'s events and summary. Its opening balance comes from a neighbour when one is known; otherwise the blocks
   * between `b` and the nearer known end (block 0 opens at 0; the head closes at the account's balance) are read and
   * cached first.
   */
  private async block(h: Head, blocks: (BlockSummary | undefined)[], b: number): Promise<{ events: RecordedEvent[]; summary: BlockSummary }> {
    const last = Math.floor(h.revision / BLOCK);
    const known = (k: number) => blocks[k] ?? (k === last ? h.tail : undefined);
    let opening = b === 0 ? 0 : (known(b)?.opening ?? known(b - 1)?.closing);
    let closing = b === last ? h.balance : known(b + 1)?.opening;
    if (opening === undefined && closing === undefined) {
      let lo = b - 1;
      while (lo >= 0 && !known(lo)) lo--;
      let hi = b + 1;
      while (hi <= last && !known(hi)) hi++;
      // blocks to read on each side; with nothing known above, the walk starts at the head block
      if (b - lo - 1 <= (hi > last ? last - b : hi - b - 1)) {
        let c = lo >= 0 ? known(lo)!.closing : 0;
        for (let k = lo + 1; k < b; k++) c = this.remember(h, blocks, k, await this.readBlock(h, k), c).closing;
        opening = c;
      } else {
        let o = hi > last ? h.balance : known(hi)!.opening;
        for (let k = Math.min(hi, last + 1) - 1; k > b; k--) {
          const events = await this.readBlock(h, k);
          o -= sumDeltas(events);
          this.remember(h, blocks, k, events, o);
        }
        closing = o;
      }
    }
    const events = await this.readBlock(h, b);
    return { events, summary: this.remember(h, blocks, b, events, opening ?? closing! - sumDeltas(events)) };
  }

  /** One page of an account's statement, in either order, optionally filtered. */
  async page(account: string, q: StatementQuery = {}): Promise<StatementPage> {
    const h = await this.head(account);
    const empty = { account: h.account, lines: [], next_revision: null, head_revision: h.revision < 0 ? null : h.revision };
    if (h.revision < 0) return empty;
    const desc = q.order === 'desc';
    const limit = q.limit ?? 1000;
    const start = q.from === undefined ? (desc ? h.revision : 0) : desc ? Math.min(q.from, h.revision) : Math.max(0, q.from);
    if (start < 0 || start > h.revision) return empty;
    const mask = typeMask(q.types);
    const since = q.since ?? -Infinity;
    const until = q.until ?? Infinity;
    const mayMatch = (s: BlockSummary) => (s.types & mask) !== 0 && s.maxAt >= since && s.minAt < until;
    const blocks = this.blocksOf(h.stream);
    const last = Math.floor(h.revision / BLOCK);
    const lines: StatementLine[] = [];
    const step = desc ? -1 : 1;
    for (let b = Math.floor(start / BLOCK); b >= 0 && b <= last; b += step) {
      const known = blocks[b];
      if (known && !mayMatch(known)) continue;
      const { events, summary } = await this.block(h, blocks, b);
      let balance = summary.opening;
      const matching: StatementLine[] = [];
      for (const r of events) {
        balance += balanceChange(r);
        if (desc ? r.revision > start : r.revision < start) continue;
        if (!(TYPE_BIT.get(r.type)! & mask)) continue;
        const at = atOf(r);
        if (at < since || at >= until) continue;
        matching.push(statementLine(r, balance));
      }
      if (desc) matching.reverse();
      for (const line of matching) {
        if (lines.length === limit) return { ...empty, lines, next_revision: line.revision };
        lines.push(line);
      }
    }
    return { ...empty, lines };
  }

  /** Every matching line, oldest first, a block at a time (CSV export). */
  async *lines(account: string, filter: StatementFilter = {}): AsyncGenerator<StatementLine[]> {
    let from: number | null = 0;
    while (from !== null) {
      const p: StatementPage = await this.page(account, { ...filter, from, limit: BLOCK * 4 });
      if (p.lines.length) yield p.lines;
      from = p.next_revision;
    }
  }

  /**
   * The balance over the account's life, at most about `points` points: every event when the stream is short, else
   * one point per group of blocks with the lowest and highest balance inside it. Reads the whole stream once per
   * process (cached after).
   */
  async balanceSeries(account: string, points = 300): Promise<{ account: string; head_revision: number | null; exact: boolean; points: BalancePoint[] }> {
    const h = await this.head(account);
    if (h.revision < 0) return { account: h.account, head_revision: null, exact: true, points: [] };
    const blocks = this.blocksOf(h.stream);
    const last = Math.floor(h.revision / BLOCK);
    if (h.revision + 1 <= points) {
      const out: BalancePoint[] = [];
      for (let b = 0; b <= last; b++) {
        const { events, summary } = await this.block(h, blocks, b);
        let balance = summary.opening;
        for (const r of events) {
          balance += balanceChange(r);
          out.push({ at: atOf(r), revision: r.revision, balance, low: balance, high: balance });
        }
      }
      return { account: h.account, head_revision: h.revision, exact: true, points: out };
    }
    const summaries: BlockSummary[] = [];
    for (let b = 0; b <= last; b++) summaries.push(blocks[b] ?? (await this.block(h, blocks, b)).summary);
    const group = Math.ceil(summaries.length / points);
    const out: BalancePoint[] = [];
    for (let i = 0; i < summaries.length; i += group) {
      const g = summaries.slice(i, i + group);
      const end = g[g.length - 1]!;
      out.push({
        at: end.lastAt,
        revision: Math.min((i + g.length) * BLOCK - 1, h.revision),
        balance: end.closing,
        low: Math.min(...g.map((s) => s.low)),
        high: Math.max(...g.map((s) => s.high)),
      });
    }
    return { account: h.account, head_revision: h.revision, exact: false, points: out };
  }
}
