// Image threads yield the CPU to the event loop. libvips computes pixels on threads of its own ("libvips worker",
// created and retired on demand). On a saturated machine they share time slices equally with the event loop (HTTP,
// /health, leases, the queue) and the projection thread, which then wait for a slice whenever they wake: /health p99
// 22-36 ms under the pipeline bench's load on 2 cores, 13-21 ms with the image threads at nice 10, at the same
// generations/s (docs/pipeline-adapters.md, "Throughput"). On Linux the nice value belongs to each thread, and
// raising it on a thread of one's own process needs no privilege; image threads still take every idle cycle.
import { readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import type { Logger } from '../../logger.ts';

/** The name libvips gives its threads. */
const IMAGE_THREAD_NAME = 'libvips worker';
/** Threads are looked at at most this often (a look reads the names of a few dozen threads in /proc/self/task). */
const LOOK_INTERVAL_MS = 250;

let settings: { nice: number; logger?: Logger | undefined } = { nice: 10 };
/** Image threads already lowered. Linux hands out thread ids in sequence up to pid_max before reusing one, so an id
 * that is still listed is still that thread. Other threads are looked at again each time: a thread just started may
 * not carry its name yet. */
const lowered = new Set<string>();
let lastLook = -Infinity;

/** How many nice steps image threads run below the process (0: leave them alone), and where to report that lowering
 * their priority failed. */
export function configureImageThreads(s: { nice: number; logger?: Logger | undefined }): void {
  settings = s;
  lowered.clear();
  lastLook = -Infinity;
}

/** Lowers the priority of the image threads started since the last look (Linux; elsewhere nothing to do). */
export function yieldImageThreads(now = performance.now()): void {
  if (settings.nice === 0 || process.platform !== 'linux' || now - lastLook < LOOK_INTERVAL_MS) return;
  lastLook = now;
  try {
    const nice = Math.min(19, os.getPriority(process.pid) + settings.nice); // relative to the process (its main thread)
    const tids = readdirSync('/proc/self/task');
    const listed = new Set(tids);
    for (const tid of lowered) if (!listed.has(tid)) lowered.delete(tid);
    for (const tid of tids) {
      if (lowered.has(tid) || threadName(tid) !== IMAGE_THREAD_NAME) continue;
      renice(Number(tid), nice);
      lowered.add(tid);
    }
  } catch (err) {
    // Not worth failing image work for: report it once and stop trying.
    if (settings.logger) settings.logger.warn({ err, nice: settings.nice }, 'image_thread_priority_unavailable');
    else process.emitWarning(`image threads keep their priority: ${(err as Error).message}`);
    settings = { ...settings, nice: 0 };
  }
}

/** The thread's name, or undefined when it has ended meanwhile. */
function threadName(tid: string): string | undefined {
  try {
    return readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trimEnd();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

function renice(tid: number, nice: number): void {
  try {
    os.setPriority(tid, nice);
  } catch (err) {
    if ((err as { info?: { code?: string } }).info?.code === 'ESRCH') return; // ended meanwhile
    throw err;
  }
}
