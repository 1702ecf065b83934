import { describe, expect, it } from 'vitest';
import { canonicalDecisionInput, decisionKey } from '../../src/decisions/decision-key.js';
import type { CheckRequest, TupleKey } from '../../src/authz/types.js';

const S = '01HSTORE0000000000000000000';
const M = '01HMODEL0000000000000000000';

function req(user: string, relation: string, object: string, contextualTuples: TupleKey[] = [], context?: Record<string, unknown>): CheckRequest {
  return { user, relation, object, contextualTuples, ...(context ? { context } : {}) };
}

function naive(storeId: string, modelId: string, r: CheckRequest): string {
  return [storeId, modelId, r.user, r.relation, r.object, ...r.contextualTuples.flatMap((t) => [t.user, t.relation, t.object]), JSON.stringify(r.context ?? null)].join('|');
}

describe('decision cache key', () => {
  it('separates inputs that collide under delimiter-joined concatenation', () => {
    const pairs: Array<[[string, string, CheckRequest], [string, string, CheckRequest]]> = [
      // user/relation boundary
      [[S, M, req('user:a|can_read', 'x', 'agent:t1/1')], [S, M, req('user:a', 'can_read|x', 'agent:t1/1')]],
      // relation/object boundary
      [[S, M, req('user:a', 'can_read|agent:t1', 'agent:t2')], [S, M, req('user:a', 'can_read', 'agent:t1|agent:t2')]],
      // store/model boundary
      [['s|m', 'x', req('user:a', 'r', 'o:1')], ['s', 'm|x', req('user:a', 'r', 'o:1')]],
      // object vs contextual tuple
      [[S, M, req('user:a', 'r', 'o:1|tenant:t1|tenant|o:1')], [S, M, req('user:a', 'r', 'o:1', [{ user: 'tenant:t1', relation: 'tenant', object: 'o:1' }])]],
      // inside a contextual tuple
      [
        [S, M, req('user:a', 'r', 'o:1', [{ user: 'tenant:t1|tenant', relation: 'x', object: 'o:1' }])],
        [S, M, req('user:a', 'r', 'o:1', [{ user: 'tenant:t1', relation: 'tenant|x', object: 'o:1' }])],
      ],
      // two tuples vs one tuple holding the other's fields
      [
        [S, M, req('u:1', 'r', 'o:1', [{ user: 'a:1', relation: 'b', object: 'c:1|a:2|b|c:2' }])],
        [S, M, req('u:1', 'r', 'o:1', [{ user: 'a:1', relation: 'b', object: 'c:1' }, { user: 'a:2', relation: 'b', object: 'c:2' }])],
      ],
      // context value types
      [[S, M, req('u:1', 'r', 'o:1', [], { n: 1 })], [S, M, req('u:1', 'r', 'o:1', [], { n: '1' })]],
      // no context vs empty context vs null-ish text
      [[S, M, req('u:1', 'r', 'o:1')], [S, M, req('u:1', 'r', 'o:1', [], {})]],
      // an id ending in a length-prefix-looking suffix
      [[S, M, req('user:a', 'r5:x', 'o:1')], [S, M, req('user:ar5:x', '', 'o:1')]],
    ];
    for (const [[s1, m1, r1], [s2, m2, r2]] of pairs) {
      const k1 = decisionKey(s1, m1, r1);
      const k2 = decisionKey(s2, m2, r2);
      expect(k1).toBeDefined();
      expect(k2).toBeDefined();
      expect(k1).not.toBe(k2);
      expect(canonicalDecisionInput(s1, m1, r1)).not.toBe(canonicalDecisionInput(s2, m2, r2));
    }
    // The first six pairs really do collide when joined with a delimiter (else they'd prove nothing).
    const collide = pairs.slice(0, 6).filter(([[s1, m1, r1], [s2, m2, r2]]) => naive(s1, m1, r1) === naive(s2, m2, r2));
    expect(collide).toHaveLength(6);
  });

  it('is the same for contextual tuples in any order and context keys in any order', () => {
    const t1 = { user: 'tenant:t1', relation: 'tenant', object: 'agent:t1/1' };
    const t2 = { user: 'user:b', relation: 'member', object: 'tenant:t1' };
    expect(decisionKey(S, M, req('u:1', 'r', 'agent:t1/1', [t1, t2]))).toBe(decisionKey(S, M, req('u:1', 'r', 'agent:t1/1', [t2, t1])));
    expect(decisionKey(S, M, req('u:1', 'r', 'o:1', [], { a: 1, b: { y: [1, 2], x: 'z' } }))).toBe(
      decisionKey(S, M, req('u:1', 'r', 'o:1', [], { b: { x: 'z', y: [1, 2] }, a: 1 })),
    );
    // but array order is meaningful
    expect(decisionKey(S, M, req('u:1', 'r', 'o:1', [], { a: [1, 2] }))).not.toBe(decisionKey(S, M, req('u:1', 'r', 'o:1', [], { a: [2, 1] })));
  });

  it('changes with the store and with the model id', () => {
    const r = req('user:a', 'can_read', 'agent:t1/1');
    expect(decisionKey(S, M, r)).not.toBe(decisionKey(S, `${M.slice(0, -1)}1`, r));
    expect(decisionKey(S, M, r)).not.toBe(decisionKey(`${S.slice(0, -1)}1`, M, r));
  });

  it('is injective on random inputs drawn from delimiter-heavy alphabets', () => {
    const alphabet = ['a', '|', ':', '1', 'u', 'r', 'o', 'n', 'c', '#', ''];
    let seed = 42;
    // mulberry32: a small deterministic PRNG, so a failure reproduces.
    const rand = () => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
    const pick = () => Array.from({ length: Math.floor(rand() * 5) }, () => alphabet[Math.floor(rand() * alphabet.length)]).join('');
    const seen = new Map<string, string>();
    for (let i = 0; i < 20_000; i++) {
      const tuples = Array.from({ length: Math.floor(rand() * 3) }, () => ({ user: pick(), relation: pick(), object: pick() }));
      const r = req(pick(), pick(), pick(), tuples);
      const identity = JSON.stringify([r.user, r.relation, r.object, tuples.map((t) => [t.user, t.relation, t.object]).map((x) => JSON.stringify(x)).sort()]);
      const enc = canonicalDecisionInput('s', 'm', r);
      const prior = seen.get(enc);
      if (prior !== undefined) expect(prior).toBe(identity);
      seen.set(enc, identity);
    }
    expect(seen.size).toBeGreaterThan(10_000);
  });

  it('refuses to key strings that UTF-8 cannot represent exactly (lone surrogates)', () => {
    expect(decisionKey(S, M, req('user:\uD800', 'r', 'o:1'))).toBeUndefined();
    expect(decisionKey(S, M, req('user:\uD83D\uDE00', 'r', 'o:1'))).toBeDefined();
  });
});
