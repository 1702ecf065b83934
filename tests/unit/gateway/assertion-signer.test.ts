// The gateway's assertion signer: real Ed25519 keys, tokens checked with jose against
// the JWKS the signer publishes and against the shared claims contract.
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { createLocalJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify } from 'jose';
import { ASSERTION_KEY_FILE, createAssertionSigner, type AssertionSigner } from '../../../src/gateway/assertion-signer.js';
import type { Scope } from '../../../src/authz/types.js';
import { ASSERTION_ISSUER, assertionClaimsSchema } from '../../../src/shared/assertion.js';

const AUDIENCE = 'tenant-service';
const TTL = 60;

interface Args {
  sub: string;
  scope: Scope;
  tenants: string[];
  method: string;
  path: string;
}

const BASE: Args = {
  sub: 'alice',
  scope: { type: 'tenant', id: 't1' },
  tenants: ['t1'],
  method: 'GET',
  path: '/api/v1/tenants/t1/agents/2000',
};

const signWith = (signer: AssertionSigner, a: Args) => signer.sign(a.sub, a.scope, a.tenants, a.method, a.path);

/** A signer on a fake clock set to `iso`, drawing where each token's reuse ends from `random`. */
async function signerAt(iso: string, random: () => number): Promise<{ s: AssertionSigner; start: number }> {
  vi.useFakeTimers({ toFake: ['Date'] });
  const start = new Date(iso).getTime();
  vi.setSystemTime(start);
  return { s: await createAssertionSigner({ audience: AUDIENCE, ttlSeconds: TTL, random }), start };
}

let signer: AssertionSigner;

beforeAll(async () => {
  signer = await createAssertionSigner({ audience: AUDIENCE, ttlSeconds: TTL });
});

afterEach(() => {
  vi.useRealTimers();
});

describe('assertion signer', () => {
  it('publishes one public Ed25519 key, without its private part', () => {
    expect(signer.jwks.keys).toHaveLength(1);
    const [jwk] = signer.jwks.keys;
    expect(jwk).toMatchObject({ kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA', use: 'sig' });
    expect(typeof jwk!.kid).toBe('string');
    expect(jwk).not.toHaveProperty('d');
  });

  it('signs EdDSA tokens the JWKS verifies, with the contract claims bound to the request', async () => {
    const token = await signWith(signer, BASE);
    const { payload, protectedHeader } = await jwtVerify(token, createLocalJWKSet(signer.jwks), {
      algorithms: ['EdDSA'],
      issuer: ASSERTION_ISSUER,
      audience: AUDIENCE,
    });
    expect(protectedHeader).toMatchObject({ alg: 'EdDSA', kid: signer.jwks.keys[0]!.kid, typ: 'JWT' });
    expect(payload).toMatchObject({
      iss: 'tiergate',
      aud: AUDIENCE,
      sub: 'alice',
      scope: { type: 'tenant', id: 't1' },
      tenants: ['t1'],
      htm: 'GET',
      htu: '/api/v1/tenants/t1/agents/2000',
    });
    expect(payload.exp! - payload.iat!).toBe(TTL);
    // What the tenant service will parse it with.
    expect(assertionClaimsSchema.safeParse(payload).success).toBe(true);
  });

  it('is not verified by another key set', async () => {
    const other = await createAssertionSigner({ audience: AUDIENCE, ttlSeconds: TTL });
    const token = await signWith(signer, BASE);
    await expect(jwtVerify(token, createLocalJWKSet(other.jwks), { algorithms: ['EdDSA'] })).rejects.toThrow();
  });

  it('reuses the token for the same subject, scope, tenants, method and path', async () => {
    const s = await createAssertionSigner({ audience: AUDIENCE, ttlSeconds: TTL });
    const first = await signWith(s, BASE);
    expect(await signWith(s, { ...BASE, scope: { ...BASE.scope }, tenants: [...BASE.tenants] })).toBe(first);
  });

  it('issues another token, with its own claims, when any of them differs', async () => {
    const s = await createAssertionSigner({ audience: AUDIENCE, ttlSeconds: TTL });
    const base = await signWith(s, BASE);
    const variants: [string, Args][] = [
      ['sub', { ...BASE, sub: 'bob' }],
      ['scope type', { ...BASE, scope: { type: 'division', id: 't1' } }],
      ['scope id', { ...BASE, scope: { type: 'tenant', id: 't2' } }],
      ['tenants', { ...BASE, tenants: ['t1', 't2'] }],
      ['method', { ...BASE, method: 'DELETE' }],
      ['path', { ...BASE, path: '/api/v1/tenants/t1/agents/2001' }],
      ['path prefix', { ...BASE, path: '/api/v1/tenants/t1/agents' }],
    ];
    const issued = new Map<string, string>();
    for (const [name, args] of variants) {
      const token = await signWith(s, args);
      expect(token, name).not.toBe(base);
      expect([...issued.values()], name).not.toContain(token);
      issued.set(name, token);
      expect(decodeJwt(token), name).toMatchObject({
        sub: args.sub,
        scope: args.scope,
        tenants: args.tenants,
        htm: args.method,
        htu: args.path,
      });
    }
    // Each was cached under its own key: asking again returns it, and the first is still there.
    expect(await signWith(s, BASE)).toBe(base);
    for (const [name, args] of variants) expect(await signWith(s, args), name).toBe(issued.get(name));
  });

  it('reuses a token until half its lifetime has passed at the earliest, then signs a fresh one', async () => {
    const { s, start } = await signerAt('2030-01-01T00:00:00.000Z', () => 0);
    const first = await signWith(s, BASE);

    vi.setSystemTime(start + (TTL / 2) * 1000 - 1);
    expect(await signWith(s, BASE)).toBe(first);
    expect(s.counts).toEqual({ reused: 1, signed: 1 });

    vi.setSystemTime(start + (TTL / 2) * 1000);
    const second = await signWith(s, BASE);
    expect(second).not.toBe(first);
    expect(s.counts).toEqual({ reused: 1, signed: 2 });
    expect(decodeJwt(second).iat).toBe(start / 1000 + TTL / 2);
    expect(decodeJwt(first).iat).toBe(start / 1000);
    // A fresh token is valid for a full lifetime from now.
    const { payload } = await jwtVerify(second, createLocalJWKSet(s.jwks), { algorithms: ['EdDSA'], audience: AUDIENCE });
    expect(payload.exp).toBe(start / 1000 + TTL / 2 + TTL);
  });

  it('reuses a token at most until three quarters of its validity, counted to its exp', async () => {
    // 0.8 s into a second: iat is rounded down, so the token is valid for TTL - 0.8 s.
    const { s, start } = await signerAt('2030-01-01T00:00:00.800Z', () => 1);
    const first = await signWith(s, BASE);
    const exp = decodeJwt(first).exp! * 1000;
    expect(exp - start).toBe(TTL * 1000 - 800);
    const lastReuse = start + (exp - start) * 0.75;

    vi.setSystemTime(lastReuse - 1);
    expect(await signWith(s, BASE)).toBe(first);
    vi.setSystemTime(lastReuse);
    expect(await signWith(s, BASE)).not.toBe(first);
    // What it handed out last still had a quarter of its validity left.
    expect(exp - (lastReuse - 1)).toBeGreaterThan((TTL * 1000 - 800) / 4);
  });

  it('spreads the re-signing of tokens signed together over a quarter of their lifetime', async () => {
    const draws = Array.from({ length: 100 }, (_, i) => (i + 0.5) / 100);
    let next = 0;
    const { s, start } = await signerAt('2030-01-01T00:00:00.000Z', () => draws[next++ % draws.length]!);
    const paths = draws.map((_, i) => ({ ...BASE, path: `/api/v1/tenants/t1/agents/${i}` }));
    for (const a of paths) signWith(s, a);
    expect(s.counts.signed).toBe(100);

    // Asked for all of them again at 50%, 60%, 70% and 80% of their lifetime: each time
    // only those whose reuse has ended since are signed again, never all at once.
    const signedAt: number[] = [];
    for (const share of [0.5, 0.6, 0.7, 0.8]) {
      vi.setSystemTime(start + TTL * 1000 * share);
      const before = s.counts.signed;
      for (const a of paths) signWith(s, a);
      signedAt.push(s.counts.signed - before);
    }
    // Draw (i + 0.5)/100 ends the reuse at 50% + 25% × (i + 0.5)/100: none by 50%, 40 by
    // 60%, 80 by 70%, all by 75%. A token signed again is reused itself: not counted twice.
    expect(signedAt).toEqual([0, 40, 40, 20]);
  });

  it('keeps its key in the key file: a restarted gateway signs with the same key and kid', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tiergate-signer-'));
    try {
      const keyFile = join(dir, 'keys', ASSERTION_KEY_FILE);
      const first = await createAssertionSigner({ audience: AUDIENCE, ttlSeconds: TTL, keyFile });
      const stored = JSON.parse(readFileSync(keyFile, 'utf8')) as Record<string, unknown>;
      expect(stored).toMatchObject({ kty: 'OKP', crv: 'Ed25519', kid: first.jwks.keys[0]!.kid, alg: 'EdDSA' });
      expect(typeof stored.d).toBe('string');
      expect(statSync(keyFile).mode & 0o777).toBe(0o600);

      const again = await createAssertionSigner({ audience: AUDIENCE, ttlSeconds: TTL, keyFile });
      expect(again.jwks).toEqual(first.jwks);
      const token = await signWith(again, BASE);
      expect(decodeProtectedHeader(token)).toEqual({ alg: 'EdDSA', kid: first.jwks.keys[0]!.kid, typ: 'JWT' });
      await expect(jwtVerify(token, createLocalJWKSet(first.jwks), { algorithms: ['EdDSA'], audience: AUDIENCE })).resolves.toBeDefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a key file that holds no private Ed25519 key', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tiergate-signer-'));
    try {
      const keyFile = join(dir, ASSERTION_KEY_FILE);
      const publicOnly = { ...(await createAssertionSigner({ audience: AUDIENCE, ttlSeconds: TTL })).jwks.keys[0] };
      writeFileSync(keyFile, JSON.stringify(publicOnly));
      await expect(createAssertionSigner({ audience: AUDIENCE, ttlSeconds: TTL, keyFile })).rejects.toThrow(/private Ed25519 JWK/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
