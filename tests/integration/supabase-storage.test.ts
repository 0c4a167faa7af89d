// The Supabase result store with the real supabase-js client against the local Storage stand-in.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSupabaseResultStore } from '../../src/adapters/storage/supabase.ts';
import { resultPath } from '../../src/domain/resultPath.ts';
import { startFakeSupabaseStorage, type FakeSupabaseStorage } from '../support/fakeSupabaseStorage.ts';
import { pipelineError } from '../support/assertions.ts';

let fake: FakeSupabaseStorage;
const ctx = { requestId: 'req-s' };
const jpegA = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0xaa, 0xff, 0xd9]);
const jpegB = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0xbb, 0xbb, 0xff, 0xd9]);

const store = (over: Partial<Parameters<typeof createSupabaseResultStore>[0]> = {}) =>
  createSupabaseResultStore({ url: fake.url, serviceRoleKey: fake.serviceRoleKey, bucket: fake.bucket, backoffBaseMs: 5, ...over });

beforeAll(async () => {
  fake = await startFakeSupabaseStorage();
});
afterAll(() => fake.close());

describe('supabase result store', () => {
  it('uploads, re-uploads the same path (upsert) and signs a URL that serves the latest bytes', async () => {
    const s = store();
    const path = resultPath('b2c', { kind: 'user', id: 'user-42' }, 'sess-1');
    await s.put(path, jpegA, 'image/jpeg', ctx);
    await s.put(path, jpegB, 'image/jpeg', ctx); // a re-run must not fail on the existing object (BUG-3)
    const obj = fake.objects.get(`virtual-tryon-images/generated/user-42/sess-1.jpg`)!;
    expect(obj.writes).toBe(2);
    expect(obj.contentType).toBe('image/jpeg');
    const uploads = fake.requests.filter((r) => r.method === 'POST' && !r.path.includes('/sign/'));
    expect(uploads.every((r) => r.upsert === 'true' && r.auth === `Bearer ${fake.serviceRoleKey}`)).toBe(true);

    const url = await s.signedUrl(path, 21_600, ctx);
    expect(url.startsWith(`${fake.url}/storage/v1/object/sign/virtual-tryon-images/generated/user-42/sess-1.jpg?token=`)).toBe(true);
    const res = await fetch(url);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('image/jpeg');
    expect(Buffer.from(await res.arrayBuffer()).equals(jpegB)).toBe(true);
  });

  it('stores B2B results under the store folder', async () => {
    const path = resultPath('b2b', { kind: 'store', id: 'shop-7' }, 'sess-2');
    await store().put(path, jpegA, 'image/jpeg', ctx);
    expect(fake.objects.has('virtual-tryon-images/stores/shop-7/generated/sess-2.jpg')).toBe(true);
  });

  it('retries 5xx and gives up on 4xx', async () => {
    fake.failNext(2, 503);
    await store({ maxRetries: 2 }).put('generated/u/retry.jpg', jpegA, 'image/jpeg', ctx);
    expect(fake.objects.has('virtual-tryon-images/generated/u/retry.jpg')).toBe(true);

    fake.failNext(3, 500);
    expect((await pipelineError(store({ maxRetries: 2 }).put('generated/u/fail.jpg', jpegA, 'image/jpeg', ctx))).code).toBe('storage_failed');

    const before = fake.requests.length;
    const wrongKey = store({ serviceRoleKey: 'not-the-key' });
    expect((await pipelineError(wrongKey.put('generated/u/x.jpg', jpegA, 'image/jpeg', ctx))).code).toBe('storage_failed');
    expect(fake.requests.length - before).toBe(1);
  });

  it('times out a hanging call and retries it', async () => {
    fake.failNext(1, 'hang');
    await store({ timeoutMs: 300, maxRetries: 1 }).put('generated/u/slow.jpg', jpegA, 'image/jpeg', ctx);
    expect(fake.objects.has('virtual-tryon-images/generated/u/slow.jpg')).toBe(true);
  });

  it('refuses to sign a missing object and refuses unsafe paths before calling out', async () => {
    expect((await pipelineError(store().signedUrl('generated/u/none.jpg', 60, ctx))).code).toBe('storage_failed');
    const before = fake.requests.length;
    expect((await pipelineError(store().put('../other-bucket/x.jpg', jpegA, 'image/jpeg', ctx))).code).toBe('storage_failed');
    expect(fake.requests.length).toBe(before);
  });
});
