// whenAtHand (src/shared/at-hand.ts): a value at hand is used at once, one on its way
// when it arrives; a failure to get it goes through `fail`, a failure to use it does not.
import { describe, expect, it } from 'vitest';
import { whenAtHand } from '../../src/shared/at-hand.js';

const failAs = (err: unknown): never => {
  throw new Error(`failed: ${err instanceof Error ? err.message : String(err)}`);
};

describe('whenAtHand', () => {
  it('uses a value at hand synchronously, without a promise', () => {
    expect(whenAtHand(() => 2, (n) => n * 10, failAs)).toBe(20);
  });

  it('uses a value on its way once it resolves', async () => {
    const out = whenAtHand(async () => 2, (n) => n * 10, failAs);
    expect(out).toBeInstanceOf(Promise);
    expect(await out).toBe(20);
  });

  it('a get that throws at once, or rejects, fails through `fail`', async () => {
    expect(() =>
      whenAtHand(
        () => {
          throw new Error('gone');
        },
        () => 1,
        failAs,
      ),
    ).toThrow('failed: gone');
    await expect(whenAtHand(() => Promise.reject(new Error('gone later')), () => 1, failAs)).rejects.toThrow('failed: gone later');
  });

  it("a failure of `use` is not `fail`'s: it reaches the caller as it is", async () => {
    const refuse = (): never => {
      throw new Error('refused');
    };
    expect(() => whenAtHand(() => 1, refuse, failAs)).toThrow(/^refused$/);
    await expect(whenAtHand(async () => 1, refuse, failAs)).rejects.toThrow(/^refused$/);
  });
});
