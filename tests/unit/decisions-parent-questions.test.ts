// Which resource checks may be asked of the resource's contextual parent first
// (src/decisions/parent-questions.ts): derived from the model, for the real one and
// for shapes where a parent's allow would not be the resource's.
import { describe, expect, it } from 'vitest';
import { structureOf } from '../../src/fga/hierarchy.js';
import { loadModel, parseModel } from '../../src/fga/model.js';
import { ParentQuestions } from '../../src/decisions/parent-questions.js';
import type { CheckRequest } from '../../src/authz/types.js';

function questionsFor(model: ReturnType<typeof loadModel>['request']) {
  return new ParentQuestions(model, structureOf(model));
}

const real = questionsFor(loadModel().request);

function resourceCheck(type: string, relation: string, extra: Partial<CheckRequest> = {}): CheckRequest {
  const object = `${type}:acme-sales/a1`;
  return { user: 'user:ann', relation, object, contextualTuples: [{ user: 'tenant:acme-sales', relation: 'tenant', object }], ...extra };
}

describe('ParentQuestions on model.fga', () => {
  it("asks an agent's can_read as the tenant's can_read_operational, without the agent's contextual tuple", () => {
    const req = resourceCheck('agent', 'can_read', { scope: { type: 'tenant', id: 'acme-sales' }, context: { ip: '10.0.0.1' } });
    expect(real.for(req)).toEqual([
      { user: 'user:ann', relation: 'can_read_operational', object: 'tenant:acme-sales', contextualTuples: [], scope: { type: 'tenant', id: 'acme-sales' }, context: { ip: '10.0.0.1' } },
    ]);
  });

  it('maps each resource permission to the tenant permission it is defined from', () => {
    const pairs: Array<[string, string, string]> = [
      ['agent', 'can_write', 'can_manage_resources'],
      ['agent', 'can_change_status', 'can_operate'],
      ['call_record', 'can_read', 'can_read_operational'],
      ['report', 'can_read', 'can_read_reports'],
      ['configuration', 'can_write', 'can_write_configuration'],
    ];
    for (const [type, relation, inherited] of pairs) {
      expect(real.for(resourceCheck(type, relation)).map((q) => `${q.relation} ${q.object}`), `${type}#${relation}`).toEqual([`${inherited} tenant:acme-sales`]);
    }
  });

  it('keeps contextual tuples on hierarchy nodes: they can change the parent’s answer', () => {
    const object = 'agent:acme-sales/a1';
    const onTenant = { user: 'division:d9', relation: 'division', object: 'tenant:acme-sales' };
    const [q] = real.for({ user: 'user:ann', relation: 'can_read', object, contextualTuples: [{ user: 'tenant:acme-sales', relation: 'tenant', object }, onTenant] });
    expect(q?.contextualTuples).toEqual([onTenant]);
  });

  it('asks nothing of a parent the contextual tuples do not name for this object', () => {
    const object = 'agent:acme-sales/a1';
    const cases: CheckRequest[] = [
      { user: 'user:ann', relation: 'can_read', object, contextualTuples: [] },
      // a link of another object
      { user: 'user:ann', relation: 'can_read', object, contextualTuples: [{ user: 'tenant:acme-sales', relation: 'tenant', object: 'agent:acme-sales/a2' }] },
      // a userset or wildcard "parent"
      { user: 'user:ann', relation: 'can_read', object, contextualTuples: [{ user: 'tenant:acme-sales#member', relation: 'tenant', object }] },
      { user: 'user:ann', relation: 'can_read', object, contextualTuples: [{ user: 'tenant:*', relation: 'tenant', object }] },
      // a parent of a type the relation does not accept
      { user: 'user:ann', relation: 'can_read', object, contextualTuples: [{ user: 'division:d1', relation: 'tenant', object }] },
    ];
    for (const req of cases) expect(real.for(req), JSON.stringify(req.contextualTuples)).toEqual([]);
    // a relation that is no tuple-to-userset, and a node's own relation built from `admin or member`
    expect(real.for(resourceCheck('agent', 'tenant'))).toEqual([]);
    expect(real.for({ user: 'user:ann', relation: 'can_view', object: 'tenant:acme-sales', contextualTuples: [] })).toEqual([]);
  });

  it('follows a union branch, and refuses intersections, exclusions and relations the parent lacks', () => {
    const q = questionsFor(
      parseModel(`model
  schema 1.1
type user
type folder
  relations
    define viewer: [user]
    define editor: [user]
    define blocked: [user]
type doc
  relations
    define folder: [folder]
    define owner: [user]
    define can_view: owner or viewer from folder
    define can_edit: editor from folder and owner
    define can_share: viewer from folder but not blocked from folder
    define can_print: printer from folder
`).request,
    );
    const ask = (relation: string) =>
      q.for({ user: 'user:ann', relation, object: 'doc:1', contextualTuples: [{ user: 'folder:f1', relation: 'folder', object: 'doc:1' }] }).map((x) => `${x.relation} ${x.object}`);
    expect(ask('can_view')).toEqual(['viewer folder:f1']);
    expect(ask('can_edit')).toEqual([]);
    expect(ask('can_share')).toEqual([]);
    expect(ask('can_print')).toEqual([]);
  });
});
