import { describe, expect, it } from 'vitest';
import { parseModel, loadModel } from '../../src/fga/model.js';
import { structureOf } from '../../src/fga/hierarchy.js';
import { bumpsFor, GLOBAL_KEY, VersionKeys } from '../../src/decisions/nodes.js';
import { assertDecisionModel, decisionModelProblems } from '../../src/decisions/soundness.js';

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

  it('bumps the object of a role grant or revoke, and nothing else', () => {
    const grant = bumpsFor({ writes: [{ user: 'user:a', relation: 'admin', object: 'tenant:tA' }], deletes: [] }, keys);
    expect(grant).toEqual({ keys: ['tenant:tA'], kinds: ['role_grant'] });
    const revoke = bumpsFor({ writes: [], deletes: [{ user: 'user:a', relation: 'admin', object: 'division:d2' }] }, keys);
    expect(revoke).toEqual({ keys: ['division:d2'], kinds: ['role_revoke'] });
  });

  it('bumps the child and the parent listing for a structural link, both parents for a move', () => {
    const move = bumpsFor(
      {
        writes: [{ user: 'division:d3', relation: 'division', object: 'tenant:tA' }],
        deletes: [{ user: 'division:d2', relation: 'division', object: 'tenant:tA' }],
      },
      keys,
    );
    expect(move.keys.sort()).toEqual(['#c|division:d2', '#c|division:d3', 'tenant:tA']);
    expect(move.kinds).toEqual(['structural_link', 'structural_unlink']);
    const resourceLink = bumpsFor({ writes: [{ user: 'tenant:t2', relation: 'tenant', object: 'agent:t1/1' }], deletes: [] }, keys);
    expect(resourceLink.keys).toEqual([keys.objectKey('agent:t1/1'), '#c|tenant:t2']);
  });

  it('never bumps the global epoch for tuple changes (only model changes and resets do)', () => {
    const b = bumpsFor({ writes: [{ user: 'user:a', relation: 'admin', object: 'platform:root' }], deletes: [] }, keys);
    expect(b.keys).not.toContain(GLOBAL_KEY);
    expect(b.keys).toEqual(['platform:root']);
  });
});
