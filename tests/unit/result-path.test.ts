import { describe, expect, it } from 'vitest';
import { InvalidResultPathError, resultPath } from '../../src/domain/resultPath.ts';

describe('resultPath', () => {
  it('uses the platform layout per channel and account kind', () => {
    expect(resultPath('b2c', { kind: 'user', id: 'u-1' }, 'sess_1')).toBe('generated/u-1/sess_1.jpg');
    expect(resultPath('b2b', { kind: 'store', id: 'store-9' }, 'abc')).toBe('stores/store-9/generated/abc.jpg');
    expect(resultPath('b2b', { kind: 'shopper', id: `store-9.${'a'.repeat(32)}` }, 'abc')).toBe('stores/store-9/generated/abc.jpg');
  });

  it.each(['../x', 'a/b', '', '.', '..', 'a.b', 'x\\y', 'a%2fb', 'ü'])('refuses session id %j', (sid) => {
    expect(() => resultPath('b2c', { kind: 'user', id: 'u' }, sid)).toThrow(InvalidResultPathError);
  });

  it('refuses ids that would change the folder and mismatched channel/account', () => {
    expect(() => resultPath('b2c', { kind: 'user', id: '../admin' }, 's')).toThrow(InvalidResultPathError);
    expect(() => resultPath('b2b', { kind: 'store', id: 'a/b' }, 's')).toThrow(InvalidResultPathError);
    expect(() => resultPath('b2c', { kind: 'store', id: 'st' }, 's')).toThrow(InvalidResultPathError);
    expect(() => resultPath('b2b', { kind: 'user', id: 'u' }, 's')).toThrow(InvalidResultPathError);
    expect(() => resultPath('b2b', { kind: 'shopper', id: 'nohash' }, 's')).toThrow(InvalidResultPathError);
  });
});
