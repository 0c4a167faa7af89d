// At most one sharp job per core at a time. sharp runs on libuv's thread pool, which file and DNS work share: without
// a gate, image jobs fill the pool (file writes then queue behind them) and outnumber the cores (the event loop, and
// with it /health, then waits for a time slice).
import os from 'node:os';
import sharp from 'sharp';
import { yieldImageThreads } from './imageThreads.ts';

// One libvips thread per job: parallelism comes from running jobs side by side, not from splitting one.
sharp.concurrency(1);
// libvips' operation cache only pays for repeated identical operations, which a worker never does; off, it keeps the
// process's memory flat.
sharp.cache(false);

const limit = Math.max(1, os.availableParallelism());
let running = 0;
const waiting: Array<() => void> = [];

export async function withImageSlot<T>(job: () => Promise<T>): Promise<T> {
  if (running >= limit) await new Promise<void>((resolve) => waiting.push(resolve));
  else running += 1;
  try {
    return await job();
  } finally {
    yieldImageThreads(); // after the job: the threads it needed exist now
    const next = waiting.shift();
    if (next) next();
    else running -= 1;
  }
}
