import { describe, expect, it } from 'vitest';
import { parseModel, loadModel } from '../../src/fga/model.js';
import { structureOf } from '../../src/fga/hierarchy.js';
import { bumpsFor, GLOBAL_KEY, plainSubject, ROLE_COUNTER_KEY, VersionKeys } from '../../src/decisions/version-keys.js';
import { assertDecisionModel, decisionModelProblems } from '../../src/decisions/soundness.js';
import { useCleanup } from '../support/cleanup.js';

useCleanup();

const model = loadModel().request;
const structure = structureOf(model);
const keys = new VersionKeys(structure);

describe('structure derived from model.fga', () => {
  it('finds the structural relations and the hierarchy node types', () => {
    expect(structure.parentRelations.get('organization')).toEqual(['platform']);
    expect([...(structure.parentRelations.get('division') ?? [])].sort()).toEqual(['organization', 'parent']);
    expect(structure.parentRelations.get('tenant')).toEqual(['division']);
    expect(structure.parentRelations.get('agent')).toEqual(['tenant']);
    expect(structure.parentRelations.get('platform')).toBeUndefined();
    expect([...structure.nodeTypes].sort()).toEqual(['division', 'organization', 'platform', 'tenant']);
  });

  it('satisfies the shape the soundness argument needs', () => {
    expect(decisionModelProblems(model)).toEqual([]);
  });

  it('refuses models with userset subjects or wildcard parents', () => {
    const usersets = parseModel(`model
  schema 1.1
type user
type group
  relations
    define member: [user]
type doc
  relations
    define viewer: [user, group#member]
`).request;
    expect(decisionModelProblems(usersets).join('\n')).toMatch(/doc#viewer accepts userset subjects/);
    expect(() => assertDecisionModel(usersets)).toThrow(/cannot be used with this model/);
    const wildcardParent = parseModel(`model
  schema 1.1
type user
type folder
  relations
    define viewer: [user]
type doc
  relations
    define parent: [folder, folder:*]
    define viewer: viewer from parent
`).request;
    expect(decisionModelProblems(wildcardParent).join('\n')).toMatch(/doc#parent is structural but accepts a wildcard parent/);
  });
});

describe('version keys and bumps', () => {
  it('keys hierarchy nodes exactly and buckets other objects', () => {
    expect(keys.objectKey('tenant:t1')).toBe('tenant:t1');
    expect(keys.objectKey('platform:root')).toBe('platform:root');
    expect(keys.objectKey('agent:t1/2000')).toMatch(/^#b\|agent\|\d+$/);
    expect(keys.objectKey('agent:t1/2000')).toBe(keys.objectKey('agent:t1/2000'));
    expect(keys.childrenKey('division:d1')).toBe('#c|division:d1');
  });

  it('bumps a role grant or revoke only on its principal: the role key (from the role counter), not the structure key', () => {
    const grant = bumpsFor({ writes: [{ user: 'user:a', relation: 'admin', object: 'tenant:tA' }], deletes: [] }, keys);
    expect(grant).toEqual({ keys: ['tenant:tA'], roles: [['#p|user:a', ROLE_COUNTER_KEY]], kinds: ['role_grant'] });
    expect(grant.keys).not.toContain(keys.structureKey('tenant:tA'));
    const revoke = bumpsFor({ writes: [], deletes: [{ user: 'user:a', relation: 'admin', object: 'division:d2' }] }, keys);
    expect(revoke).toEqual({ keys: ['division:d2'], roles: [[keys.roleKey('user:a'), ROLE_COUNTER_KEY]], kinds: ['role_revoke'] });
  });

  it('bumps the child and the parent listing for a structural link, both parents for a move', () => {
    const move = bumpsFor(
      {
        writes: [{ user: 'division:d3', relation: 'division', object: 'tenant:tA' }],
        deletes: [{ user: 'division:d2', relation: 'division', object: 'tenant:tA' }],
      },
      keys,
    );
    expect(move.keys.sort()).toEqual(['#c|division:d2', '#c|division:d3', '#s|tenant:tA', 'tenant:tA']);
    expect(move.roles).toEqual([]);
    expect(move.kinds).toEqual(['structural_link', 'structural_unlink']);
    const resourceLink = bumpsFor({ writes: [{ user: 'tenant:t2', relation: 'tenant', object: 'agent:t1/1' }], deletes: [] }, keys);
    expect(resourceLink.keys).toEqual([keys.objectKey('agent:t1/1'), keys.structureKey('agent:t1/1'), '#c|tenant:t2']);
    expect(resourceLink.roles).toEqual([]);
  });

  it('never bumps the global epoch for tuple changes (only model changes and resets do)', () => {
    const b = bumpsFor({ writes: [{ user: 'user:a', relation: 'admin', object: 'platform:root' }], deletes: [] }, keys);
    expect(b.keys).not.toContain(GLOBAL_KEY);
    expect(b.keys).toEqual(['platform:root']);
    expect(b.roles).toEqual([[keys.roleKey('user:a'), ROLE_COUNTER_KEY]]);
  });

  it('bumps the structure key for a tuple whose user is not a plain object, or whose relation the model does not know', () => {
    for (const user of ['user:*', 'group:g#member', 'nocolon', 'user:', ':x']) {
      const b = bumpsFor({ writes: [{ user, relation: 'member', object: 'tenant:tA' }], deletes: [] }, keys);
      expect(b, user).toEqual({ keys: ['tenant:tA', '#s|tenant:tA'], roles: [], kinds: ['role_grant'] });
    }
    const unknown = bumpsFor({ writes: [], deletes: [{ user: 'user:a', relation: 'region', object: 'tenant:tA' }] }, keys);
    expect(unknown).toEqual({ keys: ['tenant:tA', '#s|tenant:tA'], roles: [], kinds: ['role_revoke'] });
    const unknownType = bumpsFor({ writes: [{ user: 'user:a', relation: 'admin', object: 'region:r1' }], deletes: [] }, keys);
    expect(unknownType.roles).toEqual([]);
    expect(unknownType.keys).toContain(keys.structureKey('region:r1'));
  });

  it('scopes role keys to the exact subject, one per subject whatever the node, and shares one any-key bump per slot', () => {
    const b = bumpsFor(
      {
        writes: [
          { user: 'user:a', relation: 'admin', object: 'tenant:tA' },
          { user: 'user:b', relation: 'member', object: 'tenant:tA' },
          { user: 'user:a', relation: 'admin', object: 'division:d1' },
        ],
        deletes: [{ user: 'user:a', relation: 'member', object: 'tenant:tA' }],
      },
      keys,
    );
    expect(b.keys).toEqual(['tenant:tA', 'division:d1']);
    expect(b.roles).toEqual([
      [keys.roleKey('user:a'), ROLE_COUNTER_KEY],
      [keys.roleKey('user:b'), ROLE_COUNTER_KEY],
    ]);
    expect(b.kinds).toEqual(['role_grant', 'role_grant', 'role_grant', 'role_revoke']);
    // resources: the same key for the subject, and the bucket's any-key
    const r = bumpsFor({ writes: [{ user: 'user:a', relation: 'can_read', object: 'agent:t1/1' }], deletes: [] }, keys);
    expect(r.keys).toEqual([keys.objectKey('agent:t1/1')]);
    expect(r.roles).toEqual([[keys.roleKey('user:a'), ROLE_COUNTER_KEY]]);
  });
});

describe('principal keys', () => {
  it('recognises plain subjects', () => {
    for (const s of ['user:a', 'user:a@example.com', 'user:a|b', 'user:a.b-c_d', 'user:a:b', 'user:**', 'division:d1']) expect(plainSubject(s), s).toBe(true);
    for (const s of ['user:*', 'group:g#member', 'user:a#x', 'user:', ':a', 'user', '']) expect(plainSubject(s), s).toBe(false);
  });

  it('cannot be confused with another kind of key, or with another subject', () => {
    // Subjects carrying the delimiters the other kinds use, and node names.
    const subjects = ['user:a', 'user:a|b', 'user:s|tenant:tA', 'tenant:tA', 'division:d1', 'user:a@b.c', 'user:|', 'user:p'];
    const roleKeys = subjects.map((s) => keys.roleKey(s));
    expect(new Set(roleKeys).size).toBe(subjects.length);
    const others = ['tenant:tA', 'division:d1'].flatMap((o) => [keys.objectKey(o), keys.structureKey(o), keys.childrenKey(o), keys.settingsKey(o)]);
    for (const k of [...others, keys.objectKey('agent:t1/1'), GLOBAL_KEY, ROLE_COUNTER_KEY]) expect(roleKeys, k).not.toContain(k);
  });
});
