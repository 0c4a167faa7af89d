// Adapter selection from config, and the adapters chained as the saga will use them:
// local image server -> createInputImages -> generator -> result store -> signed URL served by /files.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import sharp from 'sharp';
import { createPipelineAdapters } from '../../src/compose/pipeline.ts';
import { loadConfig } from '../../src/config.ts';
import { resultPath } from '../../src/domain/resultPath.ts';
import { filesRoutes } from '../../src/http/routes/files.ts';
import { createHttpServer } from '../../src/http/server.ts';
import { createLogger } from '../../src/logger.ts';
import { createMetrics } from '../../src/metrics.ts';
import { startFakeOpenAI, type FakeOpenAI } from '../support/fakeOpenAI.ts';
import { startFakeSupabaseStorage, type FakeSupabaseStorage } from '../support/fakeSupabaseStorage.ts';
import { startImageServer, type ImageServer } from '../support/imageServer.ts';
import { noisyJpeg, solid } from '../support/images.ts';

let dir: string;
let images: ImageServer;
let openai: FakeOpenAI;
let storage: FakeSupabaseStorage;
const logger = createLogger({ level: 'silent' });
const ctx = { requestId: 'req-p' };

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'wearon-pipeline-'));
  images = await startImageServer();
  images.serve('/person.jpg', await noisyJpeg(1600, 1250), 'image/jpeg');
  images.serve('/shirt.png', await solid(400, 500, '#00aa00', 'png'), 'image/png');
  openai = await startFakeOpenAI();
  storage = await startFakeSupabaseStorage();
});
afterAll(async () => {
  await Promise.all([images.close(), openai.close(), storage.close()]);
  await rm(dir, { recursive: true, force: true });
});

describe('createPipelineAdapters', () => {
  it('offline defaults: preview generator and local signed storage served by /files', async () => {
    const config = loadConfig({ DATA_DIR: dir, PORT: '8123', IMAGE_FETCH_ALLOW_HOSTS: '127.0.0.1' });
    const metrics = createMetrics({ defaults: false });
    const a = await createPipelineAdapters(config, { logger, metrics });
    expect([a.generator.provider, a.resultStore.kind]).toEqual(['preview', 'local']);

    const prepared = await a.inputImages.prepare([images.url('/person.jpg'), images.url('/shirt.png')], ctx);
    const out = await a.generator.generate({ images: prepared.images, prompt: '' }, ctx);
    const key = resultPath('b2c', { kind: 'user', id: 'u1' }, 'sess-p');
    await a.resultStore.put(key, out.bytes, out.contentType, ctx);
    const url = await a.resultStore.signedUrl(key, config.SIGNED_URL_TTL_SECONDS, ctx);
    expect(url.startsWith('http://localhost:8123/files/generated/u1/sess-p.jpg?expires=')).toBe(true);

    const app = createHttpServer({ logger, metrics });
    await app.register(filesRoutes({ store: a.localStore! }));
    const res = await app.inject({ method: 'GET', url: url.replace('http://localhost:8123', '') });
    await app.close();
    expect(res.statusCode).toBe(200);
    expect((await sharp(res.rawPayload).metadata()).height).toBe(1536);
  });

  it('with keys: OpenAI (through OPENAI_BASE_URL) and Supabase Storage', async () => {
    const config = loadConfig({
      DATA_DIR: dir,
      IMAGE_FETCH_ALLOW_HOSTS: '127.0.0.1',
      OPENAI_API_KEY: 'sk-wired',
      OPENAI_BASE_URL: openai.baseURL,
      SUPABASE_URL: storage.url,
      SUPABASE_SERVICE_ROLE_KEY: storage.serviceRoleKey,
    });
    const a = await createPipelineAdapters(config, { logger, metrics: createMetrics({ defaults: false }) });
    expect([a.generator.provider, a.resultStore.kind, a.localStore]).toEqual(['openai', 'supabase', null]);
    const prepared = await a.inputImages.prepare([images.url('/person.jpg'), images.url('/shirt.png')], ctx);
    const out = await a.generator.generate({ images: prepared.images, prompt: 'x' }, ctx);
    expect(openai.requests.at(-1)!.fields).toMatchObject({ model: 'gpt-image-1.5', quality: 'medium', size: '1024x1536', output_format: 'jpeg' });
    const key = resultPath('b2b', { kind: 'store', id: 'st' }, 'sess-q');
    await a.resultStore.put(key, out.bytes, out.contentType, ctx);
    const res = await fetch(await a.resultStore.signedUrl(key, 60, ctx));
    expect(Buffer.from(await res.arrayBuffer()).equals(openai.defaultImage)).toBe(true);
  });
});
