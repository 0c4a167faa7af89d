// GET /files/* : serves images of the local result store at signed URLs. Signature first (403 invalid_signature,
// so a forged expiry never reveals anything), then expiry (410 url_expired), then existence (404).
import { createReadStream, promises as fs } from 'node:fs';
import path from 'node:path';
import type { FastifyPluginAsync } from 'fastify';
import { HttpError } from '../errors.ts';
import { CONTENT_TYPES, InvalidStoragePathError, type LocalResultStore } from '../../adapters/storage/local.ts';

export interface FilesRouteDeps {
  store: Pick<LocalResultStore, 'filePath' | 'verify'>;
}

export function filesRoutes(deps: FilesRouteDeps): FastifyPluginAsync {
  return async (app) => {
    app.get<{ Params: { '*': string }; Querystring: { expires?: string; sig?: string } }>('/files/*', async (req, reply) => {
      const storagePath = req.params['*'];
      let file: string;
      try {
        file = deps.store.filePath(storagePath);
      } catch (err) {
        if (err instanceof InvalidStoragePathError) throw new HttpError(404, 'not_found', 'no such file');
        throw err;
      }
      const check = deps.store.verify(storagePath, req.query.expires, req.query.sig);
      if (check === 'invalid') throw new HttpError(403, 'invalid_signature', 'the URL signature is missing or invalid');
      if (check === 'expired') throw new HttpError(410, 'url_expired', 'the URL has expired');
      const type = CONTENT_TYPES[path.extname(file).toLowerCase()];
      let size: number;
      try {
        const st = await fs.stat(file);
        if (!st.isFile() || !type) throw new Error('not a served file');
        size = st.size;
      } catch {
        throw new HttpError(404, 'not_found', 'no such file');
      }
      const maxAge = Math.max(0, Number(req.query.expires) - Math.floor(Date.now() / 1000));
      return reply
        .header('content-type', type)
        .header('content-length', size)
        .header('cache-control', `private, max-age=${maxAge}`)
        .header('x-content-type-options', 'nosniff')
        .send(createReadStream(file));
    });
  };
}
