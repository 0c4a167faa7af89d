// Progress for long-running commands: a redrawn bar with rate and ETA on a terminal, plain lines otherwise (logs, CI).
export interface Progress {
  /** `done` of `total` units so far (total may change, e.g. when the head moves) */
  update(done: number, total?: number): void;
  /** final line */
  finish(summary?: string): void;
}

export interface ProgressOptions {
  total?: number;
  unit?: string;
  /** where to draw; default process.stderr */
  stream?: { write(s: string): unknown; isTTY?: boolean; columns?: number };
  /** force the mode (tests) */
  tty?: boolean;
  /** plain mode: at most one line per this many ms (default 5000) */
  plainEveryMs?: number;
  now?: () => number;
}

export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '--:--';
  const s = Math.round(ms / 1000);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

export function createProgress(label: string, o: ProgressOptions = {}): Progress {
  const stream = o.stream ?? process.stderr;
  const tty = o.tty ?? Boolean(stream.isTTY);
  const now = o.now ?? Date.now;
  const unit = o.unit ?? 'ev';
  const start = now();
  let total = o.total ?? 0;
  let done = 0;
  let lastDraw = 0;
  let lastPct = -1;

  const line = () => {
    const elapsed = now() - start;
    const rate = elapsed > 0 ? (done / elapsed) * 1000 : 0;
    const pct = total > 0 ? Math.min(100, (done / total) * 100) : 0;
    const eta = rate > 0 && total > done ? ((total - done) / rate) * 1000 : total > 0 && done >= total ? 0 : NaN;
    return { pct, text: `${done.toLocaleString('en-US')}/${total.toLocaleString('en-US')} ${unit} (${pct.toFixed(1)}%) ${Math.round(rate).toLocaleString('en-US')} ${unit}/s ETA ${formatDuration(eta)}` };
  };

  const draw = (force: boolean) => {
    const t = now();
    const { pct, text } = line();
    if (tty) {
      if (!force && t - lastDraw < 100) return;
      const width = Math.max(10, Math.min(40, (stream.columns ?? 80) - text.length - label.length - 6));
      const filled = Math.round((pct / 100) * width);
      stream.write(`\r\x1b[2K${label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${text}`);
    } else {
      // a line every plainEveryMs, or at each 10% step, whichever comes first
      const step = Math.floor(pct / 10);
      if (!force && t - lastDraw < (o.plainEveryMs ?? 5000) && step === lastPct) return;
      lastPct = step;
      stream.write(`${label}: ${text}\n`);
    }
    lastDraw = t;
  };

  return {
    update(d, t) {
      done = d;
      if (t !== undefined) total = t;
      draw(false);
    },
    finish(summary) {
      draw(true);
      if (tty) stream.write('\n');
      if (summary) stream.write(`${label}: ${summary}\n`);
    },
  };
}
