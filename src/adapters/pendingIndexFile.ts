// The worker's pending index cached in a file (atomic replace), so a restart does not re-read the whole log.
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { PendingSnapshot } from '../app/pending.ts';
import type { PendingSnapshotStore } from '../app/worker.ts';

export function pendingIndexFile(file: string): PendingSnapshotStore {
  return {
    load: async () => {
      try {
        return JSON.parse(await readFile(file, 'utf8')) as PendingSnapshot;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
        throw err;
      }
    },
    save: async (snapshot) => {
      await mkdir(path.dirname(file), { recursive: true });
      const tmp = `${file}.${process.pid}.tmp`;
      await writeFile(tmp, JSON.stringify(snapshot));
      await rename(tmp, file);
    },
  };
}
