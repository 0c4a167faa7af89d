// A memory-backed stand-in for the Supabase Storage REST paths the result store uses, on 127.0.0.1, driven by the
// real supabase-js client (`createClient(fake.url, fake.serviceRoleKey, ...)`):
//   POST /storage/v1/object/<bucket>/<path>        upload (raw body; `x-upsert: true` overwrites, else 409 Duplicate)
//   PUT  /storage/v1/object/<bucket>/<path>        update an existing object
//   POST /storage/v1/object/sign/<bucket>/<path>   {expiresIn} -> {signedURL: "/object/sign/<bucket>/<path>?token=<JWT>"}
//   GET  /storage/v1/object/sign/<bucket>/<path>?token=...  the bytes, with the stored content type
// Uploads and signing require `Authorization: Bearer <serviceRoleKey>`; signed GETs need only a valid token
// (HS256, payload {url, iat, exp}, like the real service). Error bodies follow the real shape
// `{statusCode, error, message}` with HTTP 400 for most client errors.
// NOT imitated: RLS policies and user JWTs (only the service-role key is accepted), multipart/FormData and TUS
// uploads, bucket management, list/move/copy/remove, image transforms, public URLs, file size / MIME limits of
// the bucket, cache headers, range requests, and the real token's exact claims.
import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import { listenOnLoopback, readBody, serveSafely } from './loopback.ts';

export interface StoredObject {
  bytes: Buffer;
  contentType: string;
  writes: number;
}

export interface FakeSupabaseStorage {
  /** SUPABASE_URL for supabase-js */
  url: string;
  serviceRoleKey: string;
  bucket: string;
  objects: Map<string, StoredObject>;
  requests: { method: string; path: string; upsert: string | undefined; auth: string | undefined }[];
  /** The next `count` storage API calls (not signed GETs) answer `status`, or hang when status is 'hang'. */
  failNext(count: number, status: number | 'hang'): void;
  /** Connections open on the server side. */
  openConnections(): number;
  close(): Promise<void>;
}

const b64u = (b: Buffer | string) => Buffer.from(b).toString('base64url');

export async function startFakeSupabaseStorage(options: { bucket?: string; serviceRoleKey?: string } = {}): Promise<FakeSupabaseStorage> {
  const bucket = options.bucket ?? 'virtual-tryon-images';
  const serviceRoleKey = options.serviceRoleKey ?? `service-role-${randomUUID()}`;
  const jwtSecret = randomUUID();
  const objects = new Map<string, StoredObject>();
  const requests: FakeSupabaseStorage['requests'] = [];
  const faults: (number | 'hang')[] = [];

  const sign = (payload: object) => {
    const head = b64u(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
    const body = b64u(JSON.stringify(payload));
    return `${head}.${body}.${createHmac('sha256', jwtSecret).update(`${head}.${body}`).digest('base64url')}`;
  };
  const verify = (token: string): { url?: string; exp?: number } | null => {
    const [head, body, sig] = token.split('.');
    if (!head || !body || !sig) return null;
    const expected = Buffer.from(createHmac('sha256', jwtSecret).update(`${head}.${body}`).digest('base64url'));
    const given = Buffer.from(sig);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return null;
    try {
      return JSON.parse(Buffer.from(body, 'base64url').toString()) as { url?: string; exp?: number };
    } catch {
      return null;
    }
  };

  const reply = (res: http.ServerResponse, status: number, body: unknown) => {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  };
  const fail = (res: http.ServerResponse, httpStatus: number, statusCode: string, error: string, message: string) =>
    reply(res, httpStatus, { statusCode, error, message });

  const server = http.createServer(serveSafely(async (req, res) => {
    const body = await readBody(req);
    if (!body) return; // the caller went away mid-request
    const u = new URL(req.url ?? '/', 'http://fake');
    const method = req.method ?? 'GET';
    const auth = req.headers.authorization;
    requests.push({ method, path: u.pathname, upsert: req.headers['x-upsert'] as string | undefined, auth });

    const m = /^\/storage\/v1\/object\/(sign\/)?([^/]+)\/(.+)$/.exec(u.pathname);
    if (!m) return fail(res, 404, '404', 'not_found', `no route ${method} ${u.pathname}`);
    const signed = Boolean(m[1]);
    const bucketName = decodeURIComponent(m[2]!);
    const objectPath = m[3]!.split('/').map(decodeURIComponent).join('/');
    const key = `${bucketName}/${objectPath}`;

    if (signed && method === 'GET') {
      const claims = verify(u.searchParams.get('token') ?? '');
      if (!claims) return fail(res, 400, '403', 'InvalidJWT', 'invalid signature');
      if (claims.url !== key) return fail(res, 400, '400', 'InvalidSignature', 'The url do not match the signature');
      if (typeof claims.exp !== 'number' || claims.exp < Math.floor(Date.now() / 1000)) return fail(res, 400, '400', 'InvalidJWT', 'jwt expired');
      const obj = objects.get(key);
      if (!obj) return fail(res, 400, '404', 'not_found', 'Object not found');
      res.writeHead(200, { 'content-type': obj.contentType, 'content-length': obj.bytes.length });
      res.end(obj.bytes);
      return;
    }

    const fault = faults.shift();
    if (fault === 'hang') return; // never answers; the client's timeout must fire
    if (fault !== undefined) return fail(res, fault, String(fault), 'injected', `injected failure ${fault}`);
    if (auth !== `Bearer ${serviceRoleKey}`) return fail(res, 400, '403', 'Unauthorized', 'invalid signature');
    if (bucketName !== bucket) return fail(res, 400, '404', 'Bucket not found', 'Bucket not found');

    if (signed && method === 'POST') {
      let expiresIn: unknown;
      try {
        expiresIn = (JSON.parse(body.toString()) as { expiresIn?: unknown }).expiresIn;
      } catch {
        /* handled below */
      }
      if (typeof expiresIn !== 'number' || !(expiresIn >= 1)) return fail(res, 400, '400', 'InvalidRequest', 'expiresIn must be a positive number');
      if (!objects.has(key)) return fail(res, 400, '404', 'not_found', 'Object not found');
      const now = Math.floor(Date.now() / 1000);
      const token = sign({ url: key, iat: now, exp: now + expiresIn });
      return reply(res, 200, { signedURL: `/object/sign/${key}?token=${token}` });
    }
    if (!signed && (method === 'POST' || method === 'PUT')) {
      const existing = objects.get(key);
      if (method === 'POST' && existing && req.headers['x-upsert'] !== 'true') return fail(res, 400, '409', 'Duplicate', 'The resource already exists');
      if (method === 'PUT' && !existing) return fail(res, 400, '404', 'not_found', 'Object not found');
      objects.set(key, { bytes: body, contentType: String(req.headers['content-type'] ?? 'application/octet-stream'), writes: (existing?.writes ?? 0) + 1 });
      return reply(res, 200, { Id: randomUUID(), Key: key });
    }
    return fail(res, 405, '405', 'method_not_allowed', `${method} not supported here`);
  }));
  const listening = await listenOnLoopback(server);
  const port = listening.port;
  return {
    url: `http://127.0.0.1:${port}`,
    serviceRoleKey,
    bucket,
    objects,
    requests,
    failNext: (count, status) => faults.push(...Array<number | 'hang'>(count).fill(status)),
    openConnections: listening.openConnections,
    close: () => listening.close(),
  };
}
