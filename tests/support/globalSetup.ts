// One temp root per test run (tests/support/stack.ts tempDir creates under it), removed when the run ends:
// CI machines are reused, and forked test workers may not get to run exit handlers.
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export default function setup(): () => void {
  const root = mkdtempSync(path.join(os.tmpdir(), 'wearon-test-'));
  chmodSync(root, 0o755); // nginx workers (user nobody) in the stack tests read files below it
  process.env.WEARON_TEST_TMP = root;
  return () => rmSync(root, { recursive: true, force: true });
}
