import { describe, expect, it } from 'vitest';
import { createProgress, formatDuration } from '../../src/cli/progress.ts';

function sink(isTTY: boolean) {
  const writes: string[] = [];
  return { writes, stream: { isTTY, columns: 100, write: (s: string) => writes.push(s) } };
}

describe('progress', () => {
  it('draws a redrawn bar with rate and ETA on a terminal', () => {
    let now = 0;
    const s = sink(true);
    const p = createProgress('replay x', { total: 1000, stream: s.stream, now: () => now });
    now = 1000;
    p.update(250);
    expect(s.writes.at(-1)).toMatch(/^\r\x1b\[2Kreplay x \[#+\.+\] 250\/1,000 ev \(25\.0%\) 250 ev\/s ETA 0:03$/);
    p.finish('done');
    expect(s.writes.slice(-2)).toEqual(['\n', 'replay x: done\n']);
  });

  it('prints plain lines (throttled, every 10%) when not a terminal', () => {
    let now = 0;
    const s = sink(false);
    const p = createProgress('import', { total: 100, unit: 'rows', stream: s.stream, now: () => now });
    for (let i = 1; i <= 100; i++) {
      now += 10;
      p.update(i);
    }
    expect(s.writes.length).toBeGreaterThanOrEqual(10);
    expect(s.writes.length).toBeLessThanOrEqual(12);
    expect(s.writes.at(-1)).toBe('import: 100/100 rows (100.0%) 100 rows/s ETA 0:00\n');
  });

  it('formats durations', () => {
    expect(formatDuration(65_000)).toBe('1:05');
    expect(formatDuration(3_725_000)).toBe('1:02:05');
    expect(formatDuration(NaN)).toBe('--:--');
  });
});
