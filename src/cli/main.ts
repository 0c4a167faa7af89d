// The `wearon` command: dispatches to one subcommand per file in src/cli/commands.
import { ConfigError, loadConfig } from '../config.ts';
import { createLogger } from '../logger.ts';
import { UsageError, type CliCommand } from './command.ts';
import { projectCommand, serveCommand, workerCommand } from './commands/serve.ts';
import { balanceCommand, grantCommand, recoverCommand, revokeCommand, statementCommand, verifyCommand } from './commands/ledger.ts';
import { enqueueCommand } from './commands/enqueue.ts';
import { migrateCommand } from './commands/migrate.ts';
import { replayCommand } from './commands/replay.ts';
import { projectionsCommand } from './commands/projections.ts';
import { importBalancesCommand } from './commands/import-balances.ts';
import { storeCommand } from './commands/store.ts';

const COMMANDS: CliCommand[] = [
  serveCommand,
  workerCommand,
  projectCommand,
  migrateCommand,
  grantCommand,
  revokeCommand,
  balanceCommand,
  statementCommand,
  verifyCommand,
  recoverCommand,
  storeCommand,
  projectionsCommand,
  replayCommand,
  importBalancesCommand,
  enqueueCommand,
];

function help(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return ['usage: wearon <command> [options]', '', ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`)].join('\n');
}

async function main(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  if (!name || name === 'help' || name === '--help' || name === '-h') {
    console.log(help());
    return name ? 0 : 2;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) {
    console.error(`unknown command ${JSON.stringify(name)}\n\n${help()}`);
    return 2;
  }
  if (args.includes('--help')) {
    console.log(`usage: ${command.usage}\n\n${command.summary}`);
    return 0;
  }
  try {
    const config = loadConfig();
    // Long-running commands log JSON to stdout; one-shot commands print results there, so their logs go to stderr.
    const service = command.name === 'serve' || command.name === 'worker' || command.name === 'project';
    const logger = createLogger({ level: service ? config.LOG_LEVEL : (process.env.LOG_LEVEL ?? 'warn'), ...(service ? {} : { destination: 2 }) });
    return await command.run(args, {
      config,
      logger,
      out: (line) => process.stdout.write(`${line}\n`),
      err: (line) => process.stderr.write(`${line}\n`),
    });
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`${err.message}\nusage: ${command.usage}`);
      return 2;
    }
    if (err instanceof ConfigError) {
      console.error(err.message);
      return 2;
    }
    console.error(err);
    return 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
