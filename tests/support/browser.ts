// Debian's Chromium driven by playwright-core, for the console's browser tests. Absent browser: the tests skip with a
// printed reason, except under CI=true, where absence fails (scripts/install-test-tools.sh installs `chromium`).
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { ROOT } from './stack.ts';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** Flags that work on this machine class (no network but the registries; root): no sandbox, no background calls. */
const FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

export function chromiumAvailable(): boolean {
  if (existsSync(CHROMIUM)) return true;
  const reason = `Chromium not found at ${CHROMIUM} (Debian package chromium)`;
  if (process.env.CI === 'true') throw new Error(`${reason}; CI=true requires it`);
  console.warn(`SKIP: ${reason}; scripts/install-test-tools.sh installs it (or set CHROMIUM_PATH)`);
  return false;
}

/** A headless Chromium with a fresh temporary profile (playwright creates and removes it per launch). */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS });
}

/** Where screenshots go for a reviewer: artifacts/<name>/ at the repository root (gitignored). */
export function artifactsDir(name: string): string {
  const dir = path.join(ROOT, 'artifacts', name);
  mkdirSync(dir, { recursive: true });
  return dir;
}
