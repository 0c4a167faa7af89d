// `wearon enqueue`: pushes producer-shaped tasks onto the Redis queue, exactly as the platform does (LPUSH of the
// snake_case JSON), for manual runs, the end-to-end tests and the crash script.
import { CURRENT_PAYLOAD_VERSION, accountOfTask, buildProducerTask, parseTaskPayload, serializeProducerTask, type BuildTaskOptions } from '../../contract.ts';
import { openRedis } from '../../compose/redis.ts';
import { withScope } from '../../compose/scope.ts';
import { UsageError, parseArgs, type CliCommand } from '../command.ts';

export interface EnqueueOptions extends Omit<BuildTaskOptions, 'requestId'> {
  /** how many payloads; with a sessionId, all of them carry it (duplicate deliveries of one generation) */
  count?: number;
}

/**
 * The raw queue elements for `o` (one per count), validated with the worker's own contract. Pure apart from fresh ids.
 * Throws UsageError with the contract's reason when the result would be refused by the worker.
 */
export function buildEnqueuePayloads(o: EnqueueOptions): string[] {
  if (Boolean(o.userId) === Boolean(o.storeId)) throw new UsageError('give exactly one of --user <id> (b2c) or --store <id> (b2b)');
  if (o.shopperEmail && !o.storeId) throw new UsageError('--shopper-email needs --store (b2b resell)');
  if (o.imageUrls.length === 0) throw new UsageError('at least one --image URL is required');
  const count = o.count ?? 1;
  if (!Number.isInteger(count) || count < 1 || count > 100_000) throw new UsageError('--count must be an integer from 1 to 100000');
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const raw = serializeProducerTask(
      buildProducerTask({
        imageUrls: o.imageUrls,
        ...(o.userId ? { userId: o.userId } : {}),
        ...(o.storeId ? { storeId: o.storeId } : {}),
        ...(o.shopperEmail ? { shopperEmail: o.shopperEmail } : {}),
        ...(o.prompt !== undefined ? { prompt: o.prompt } : {}),
        ...(o.sessionId ? { sessionId: o.sessionId } : {}),
        ...(o.now ? { now: o.now } : {}),
      }),
    );
    const check = parseTaskPayload(raw);
    if (!check.ok) throw new UsageError(check.reason);
    out.push(raw);
  }
  return out;
}

/** Takes every `--image X` / `--image=X` out of args (the shared parser keeps only the last of a repeated flag). */
function takeRepeated(args: string[], name: string): { values: string[]; rest: string[] } {
  const values: string[] = [];
  const rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === `--${name}`) {
      const v = args[i + 1];
      if (v === undefined || v.startsWith('--')) throw new UsageError(`--${name} needs a value`);
      values.push(v);
      i++;
    } else if (a.startsWith(`--${name}=`)) values.push(a.slice(name.length + 3));
    else rest.push(a);
  }
  return { values, rest };
}

const str = (v: string | true | undefined, flag: string): string | undefined => {
  if (v === true) throw new UsageError(`--${flag} needs a value`);
  return v;
};

export const enqueueCommand: CliCommand = {
  name: 'enqueue',
  summary: 'push generation tasks onto the Redis queue, as the platform producer does',
  usage: [
    'wearon enqueue (--user <id> | --store <id> [--shopper-email E]) --image URL [--image URL ...]',
    '               [--prompt P] [--session S] [--count N]',
    'wearon enqueue --raw TEXT      push TEXT unvalidated (to exercise the dead-letter path)',
    '',
    'Needs REDIS_URL; pushes to QUEUE_KEY. Prints one JSON line per task: session_id, task_id, request_id, account.',
    'With --session and --count N > 1, all N share the session id (duplicate deliveries of one generation).',
  ].join('\n'),

  async run(args, ctx) {
    let payloads: string[];
    try {
      const { values: images, rest } = takeRepeated(args, 'image');
      const { flags, positionals } = parseArgs(rest);
      if (positionals.length > 0) throw new UsageError(`unexpected argument ${positionals[0]}`);
      const known = new Set(['user', 'store', 'shopper-email', 'prompt', 'session', 'count', 'raw']);
      for (const f of Object.keys(flags)) if (!known.has(f)) throw new UsageError(`unknown option --${f}`);
      const raw = str(flags.raw, 'raw');
      if (raw !== undefined) {
        if (Object.keys(flags).length > 1 || images.length) throw new UsageError('--raw takes no other option');
        payloads = [raw];
      } else {
        const count = flags.count === undefined ? 1 : Number(str(flags.count, 'count'));
        payloads = buildEnqueuePayloads({
          imageUrls: images,
          count,
          ...optional('userId', str(flags.user, 'user')),
          ...optional('storeId', str(flags.store, 'store')),
          ...optional('shopperEmail', str(flags['shopper-email'], 'shopper-email')),
          ...optional('prompt', str(flags.prompt, 'prompt')),
          ...optional('sessionId', str(flags.session, 'session')),
        });
      }
    } catch (err) {
      if (err instanceof UsageError) {
        ctx.err(`wearon enqueue: ${err.message}`);
        ctx.err(enqueueCommand.usage);
        return 2;
      }
      throw err;
    }
    if (!ctx.config.REDIS_URL) {
      ctx.err('wearon enqueue: REDIS_URL is not set; the Redis intake is off');
      return 2;
    }
    const url = ctx.config.REDIS_URL;
    return withScope(ctx.logger, async (scope) => {
      const redis = scope.add(openRedis(url, ctx.logger, 'wearon-enqueue'));
      try {
        // LPUSH in batches: one round trip per 500 tasks, each element its own LPUSH argument (same order as single pushes)
        for (let i = 0; i < payloads.length; i += 500) await redis.lpush(ctx.config.QUEUE_KEY, ...payloads.slice(i, i + 500));
        for (const raw of payloads) ctx.out(describe(raw));
        ctx.err(`pushed ${payloads.length} task(s) onto ${ctx.config.QUEUE_KEY} (payload version ${CURRENT_PAYLOAD_VERSION})`);
        return 0;
      } catch (err) {
        ctx.err(`wearon enqueue: Redis error: ${(err as Error).message}`);
        return 1;
      }
    });
  },
};

function optional<K extends string>(key: K, v: string | undefined): Partial<Record<K, string>> {
  return v === undefined ? {} : ({ [key]: v } as Record<K, string>);
}

function describe(raw: string): string {
  const r = parseTaskPayload(raw);
  if (!r.ok) return JSON.stringify({ raw: raw.slice(0, 200), valid: false, reason: r.reason });
  const { session_id, task_id, request_id } = r.task;
  return JSON.stringify({ session_id, task_id, request_id, account: accountOfTask(r.task) });
}
