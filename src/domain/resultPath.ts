// Where a generated image is stored, in the platform's layout (original-system.md §4):
//   B2C                      generated/{userId}/{sessionId}.jpg
//   B2B store account        stores/{storeId}/generated/{sessionId}.jpg
//   B2B shopper (resell)     stores/{storeId}/generated/{sessionId}.jpg  (account id `{storeId}.{emailHash}`)
// Every segment is validated so that nothing can escape its folder.
import type { Channel } from './events.ts';
import type { AccountRef } from './streams.ts';

const SEGMENT = /^[A-Za-z0-9_-][A-Za-z0-9_-]{0,127}$/;

export class InvalidResultPathError extends Error {
  override readonly name = 'InvalidResultPathError';
}

function segment(kind: string, value: string): string {
  if (!SEGMENT.test(value)) throw new InvalidResultPathError(`invalid ${kind} for a storage path: ${JSON.stringify(value)}`);
  return value;
}

export function resultPath(channel: Channel, account: AccountRef, sessionId: string): string {
  const session = segment('session id', sessionId);
  if (channel === 'b2c') {
    if (account.kind !== 'user') throw new InvalidResultPathError(`b2c generation charged to a ${account.kind} account`);
    return `generated/${segment('user id', account.id)}/${session}.jpg`;
  }
  if (account.kind === 'store') return `stores/${segment('store id', account.id)}/generated/${session}.jpg`;
  if (account.kind === 'shopper') {
    const dot = account.id.indexOf('.');
    if (dot <= 0) throw new InvalidResultPathError(`shopper account id must be {storeId}.{hash}: ${JSON.stringify(account.id)}`);
    return `stores/${segment('store id', account.id.slice(0, dot))}/generated/${session}.jpg`;
  }
  throw new InvalidResultPathError(`b2b generation charged to a ${account.kind} account`);
}
