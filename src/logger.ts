// pino JSON logs. Secrets never reach the output: redaction paths cover headers, config and URL signatures. Emails
// never reach it either: every line is scrubbed of email-shaped text just before it is written (scrubEmails).
import pino, { type Logger } from 'pino';

export type { Logger };

const REDACT = [
  'authorization',
  'apiKey',
  'token',
  'password',
  'secret',
  '*.authorization',
  '*.apiKey',
  '*.token',
  '*.password',
  '*.secret',
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
  'config.OPENAI_API_KEY',
  'config.SUPABASE_SERVICE_ROLE_KEY',
  'config.API_TOKEN',
  'config.URL_SIGNING_SECRET',
  'config.DATABASE_URL',
  'config.REDIS_URL',
  'config.EVENTSTORE_URL',
  'shopper_email',
  'shopperEmail',
  '*.shopper_email',
  '*.shopperEmail',
];

/**
 * Email-shaped text: `local@domain` (or `local%40domain`, percent-encoded), each part a run of characters that are not
 * whitespace, quotes, brackets or separators. Deliberately wider than what `isEmail` accepts: a log line that might
 * hold an address loses it. The parts stop at JSON and URL punctuation so the text around keeps its shape.
 */
const EMAIL_IN_TEXT = /[^\s@"'`<>()[\]{},;:\\/?#&=]+(?:@|%40)[^\s@"'`<>()[\]{},;:\\/?#&=]+/giu;
export const EMAIL_MASK = '[email]';

function scrubValue(v: unknown): unknown {
  if (typeof v === 'string') return v.replace(EMAIL_IN_TEXT, EMAIL_MASK);
  if (Array.isArray(v)) return v.map(scrubValue);
  if (v !== null && typeof v === 'object') {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k.replace(EMAIL_IN_TEXT, EMAIL_MASK), scrubValue(x)]));
  }
  return v;
}

/**
 * One serialized log line without anything email-shaped, in any field, message, key, error or binding. Lines without
 * `@` (nearly all) pass untouched; the others are parsed, scrubbed value by value and serialized again, so the JSON
 * escapes stay intact.
 */
export function scrubEmails(line: string): string {
  if (!line.includes('@') && !/%40/i.test(line)) return line;
  const newline = line.endsWith('\n') ? '\n' : '';
  try {
    return JSON.stringify(scrubValue(JSON.parse(line))) + newline;
  } catch {
    return line.replace(EMAIL_IN_TEXT, EMAIL_MASK);
  }
}

/** Strips query strings that carry signatures or tokens (`token=`, `sig=`, `signature=`, `X-Amz-Signature=`) from URLs. */
export function redactUrl(url: string): string {
  return url.replace(/([?&](?:token|sig|signature|x-amz-signature|apikey|key)=)[^&#\s"]*/gi, '$1[REDACTED]');
}

export function createLogger(options: { level?: string; name?: string; destination?: number; stream?: NodeJS.WritableStream } = {}): Logger {
  return pino(
    {
    level: options.level ?? process.env.LOG_LEVEL ?? 'info',
    name: options.name ?? 'wearon',
    base: { service: 'wearon-worker' },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    redact: { paths: REDACT, censor: '[REDACTED]' },
    hooks: { streamWrite: scrubEmails },
    },
    options.stream ?? pino.destination({ fd: options.destination ?? 1, sync: true }),
  );
}

/** A logger that writes nothing (unit tests). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
