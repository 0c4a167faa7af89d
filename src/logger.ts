// pino JSON logs. Secrets never reach the output: redaction paths cover headers, config and URL signatures.
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
];

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
    },
    options.stream ?? pino.destination({ fd: options.destination ?? 1, sync: true }),
  );
}

/** A logger that writes nothing (unit tests). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
