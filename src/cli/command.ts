// The shape of one `wearon` subcommand. Each lives in src/cli/commands/<name>.ts and is listed in src/cli/main.ts.
import type { Config } from '../config.ts';
import type { Logger } from '../logger.ts';

export interface CliContext {
  config: Config;
  logger: Logger;
  /** stdout, one line per call */
  out: (line: string) => void;
  /** stderr, for progress and diagnostics */
  err: (line: string) => void;
}

export interface CliCommand {
  name: string;
  summary: string;
  usage: string;
  /** Returns the process exit code. */
  run(args: string[], ctx: CliContext): Promise<number>;
}

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** Minimal flag parser: `--name value`, `--name=value`, `--flag`; the rest are positionals. */
export function parseArgs(args: string[], booleanFlags: readonly string[] = []) {
  const flags: Record<string, string | true> = {};
  const positionals: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (!a.startsWith('--')) {
      positionals.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    if (eq > 0) flags[a.slice(2, eq)] = a.slice(eq + 1);
    else if (booleanFlags.includes(a.slice(2)) || i + 1 >= args.length || args[i + 1]!.startsWith('--')) flags[a.slice(2)] = true;
    else flags[a.slice(2)] = args[++i]!;
  }
  return { flags, positionals };
}
