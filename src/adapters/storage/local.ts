// ResultStore on the local filesystem under DATA_DIR/results/<path>, served by this service at HMAC-signed URLs
// that expire: PUBLIC_BASE_URL/files/<path>?expires=<unix seconds>&sig=<base64url HMAC-SHA256(path \n expires)>.
// Writes are atomic (temp file + fsync + rename), so a reader never sees half an image and a re-run overwrites.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { PipelineError, type CallContext, type ResultStore } from '../../app/ports/pipeline.ts';

export const SIGNING_KEY_FILE = 'url-signing.key';
const SEGMENT = /^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,254}$/;

export class InvalidStoragePathError extends Error {
  override readonly name = 'InvalidStoragePathError';
}

/** Throws unless `p` is a relative path of plain segments (no `..`, no empty or dot-leading segments). */
export function assertStoragePath(p: string): string {
  const segments = p.split('/');
  if (p.length > 1024 || segments.length > 16 || !segments.every((s) => SEGMENT.test(s))) {
    throw new InvalidStoragePathError(`invalid storage path ${JSON.stringify(p)}`);
  }
  return p;
}

/**
 * The HMAC key for local signed URLs: the configured one, else the one stored in DATA_DIR (created once,
 * mode 0600), so that URLs stay valid across restarts.
 */
export async function loadOrCreateSigningSecret(dataDir: string, configured?: string): Promise<string> {
  if (configured) return configured;
  const file = path.join(dataDir, SIGNING_KEY_FILE);
  await fs.mkdir(dataDir, { recursive: true });
  try {
    await fs.writeFile(file, randomBytes(32).toString('hex') + '\n', { flag: 'wx', mode: 0o600 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  const secret = (await fs.readFile(file, 'utf8')).trim();
  if (secret.length < 32) throw new Error(`${file} holds no usable key; delete it to generate a new one`);
  return secret;
}

export function signPath(secret: string, storagePath: string, expires: number): string {
  return createHmac('sha256', secret).update(`${storagePath}\n${expires}`).digest('base64url');
}

export type SignatureCheck = 'ok' | 'invalid' | 'expired';

export function verifySignedPath(secret: string, storagePath: string, expires: unknown, sig: unknown, nowSeconds = Math.floor(Date.now() / 1000)): SignatureCheck {
  if (typeof expires !== 'string' || !/^\d{1,12}$/.test(expires) || typeof sig !== 'string') return 'invalid';
  const expected = Buffer.from(signPath(secret, storagePath, Number(expires)));
  const given = Buffer.from(sig);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return 'invalid';
  return Number(expires) < nowSeconds ? 'expired' : 'ok';
}

export const CONTENT_TYPES: Record<string, string> = {
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.png': 'image/png',
  '.webp': 'image/webp',
};

export interface LocalResultStoreOptions {
  dataDir: string;
  /** e.g. `http://127.0.0.1:8000` (no trailing slash needed) */
  publicBaseUrl: string;
  secret: string;
  now?: () => number;
}

export interface LocalResultStore extends ResultStore {
  readonly root: string;
  /** Absolute file path of a storage path (validated). */
  filePath(storagePath: string): string;
  verify(storagePath: string, expires: unknown, sig: unknown): SignatureCheck;
}

export function createLocalResultStore(opts: LocalResultStoreOptions): LocalResultStore {
  const root = path.resolve(opts.dataDir, 'results');
  const base = opts.publicBaseUrl.replace(/\/+$/, '');
  const now = opts.now ?? Date.now;

  const filePath = (storagePath: string) => {
    const full = path.resolve(root, assertStoragePath(storagePath));
    if (!full.startsWith(root + path.sep)) throw new InvalidStoragePathError(`path escapes the store: ${storagePath}`);
    return full;
  };

  return {
    kind: 'local',
    root,
    filePath,
    verify: (p, expires, sig) => verifySignedPath(opts.secret, p, expires, sig, Math.floor(now() / 1000)),

    async put(storagePath: string, bytes: Buffer, _contentType: string, _ctx: CallContext): Promise<void> {
      let target: string;
      try {
        target = filePath(storagePath);
      } catch (err) {
        throw new PipelineError('storage_failed', (err as Error).message, { cause: err });
      }
      const tmp = `${target}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
      try {
        await fs.mkdir(path.dirname(target), { recursive: true });
        const fh = await fs.open(tmp, 'w', 0o644);
        try {
          await fh.writeFile(bytes);
          await fh.sync(); // the completion event that follows must not point at a file a crash could lose
        } finally {
          await fh.close();
        }
        await fs.rename(tmp, target);
      } catch (err) {
        await fs.rm(tmp, { force: true }).catch(() => undefined);
        throw new PipelineError('storage_failed', `local write failed: ${(err as NodeJS.ErrnoException).code ?? 'error'}`, { cause: err });
      }
    },

    async signedUrl(storagePath: string, ttlSeconds: number): Promise<string> {
      assertStoragePath(storagePath);
      const expires = Math.floor(now() / 1000) + ttlSeconds;
      const encoded = storagePath.split('/').map(encodeURIComponent).join('/');
      return `${base}/files/${encoded}?expires=${expires}&sig=${signPath(opts.secret, storagePath, expires)}`;
    },
  };
}
