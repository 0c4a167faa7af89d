// `wearon recover`: one recovery pass on demand. Folds the log into the pending index and drives every generation that
// is due, one by one, through the saga. It takes nothing from the queue: intake belongs to the worker alone.
import type { Logger } from '../logger.ts';
import { PendingIndex } from './pending.ts';
import type { EventStore } from './ports/eventStore.ts';
import type { DriveOutcome, GenerationSaga } from './saga.ts';

export interface RecoverProgress {
  /** once, before driving: how many are due of how many unfinished */
  onStart?(due: number, unfinished: number): void;
  /** after each: its outcome, or undefined when the drive failed (logged; the next pass tries again) */
  onDriven?(done: number, due: number, sessionId: string, outcome: DriveOutcome | undefined): void;
}

export async function recoverDue(
  deps: { store: EventStore; saga: GenerationSaga; logger: Logger; now?: number },
  progress: RecoverProgress = {},
): Promise<{ due: number; unfinished: number }> {
  const index = await PendingIndex.fromLog(deps.store);
  // No grace: nothing else is driving these (a generation in another worker's hands keeps its live lease).
  const due = index.due(deps.now ?? Date.now(), true);
  progress.onStart?.(due.length, index.size);
  let done = 0;
  for (const id of due) {
    let outcome: DriveOutcome | undefined;
    try {
      outcome = await deps.saga.drive(id);
    } catch (err) {
      deps.logger.error({ err, session_id: id }, 'generation_drive_failed');
    }
    progress.onDriven?.(++done, due.length, id, outcome);
  }
  return { due: due.length, unfinished: index.size };
}
