// AuthZEN's subject/resource/action → the OpenFGA check, read from model.fga: which
// permissions are asked, the scope and contextual tuple of a tenant resource (as the
// route policy has them), and what is answered without asking.
import { describe, expect, it } from 'vitest';
import { loadModel } from '../../../src/fga/model.js';
import { AuthzenMapping, type AuthzenEvaluation } from '../../../src/gateway/authzen-mapping.js';
import { evaluateAll, type AuthzenDecision } from '../../../src/gateway/authzen.js';
import { RESOURCE_KINDS } from '../../../src/shared/resource-kinds.js';

const mapping = new AuthzenMapping(loadModel().request);

function ask(resource: AuthzenEvaluation['resource'], name: string, subject: AuthzenEvaluation['subject'] = { type: 'user', id: 'uma' }) {
  return mapping.question({ subject, resource, action: { name } });
}

describe('AuthzenMapping over model.fga', () => {
  it('a tenant resource is asked with its tenant link as a contextual tuple, scoped to the tenant', () => {
    expect(ask({ type: 'agent', id: 'emea-sales/1000' }, 'can_read')).toEqual({
      kind: 'check',
      check: {
        user: 'user:uma',
        relation: 'can_read',
        object: 'agent:emea-sales/1000',
        contextualTuples: [{ user: 'tenant:emea-sales', relation: 'tenant', object: 'agent:emea-sales/1000' }],
        scope: { type: 'tenant', id: 'emea-sales' },
      },
    });
  });

  it('every resource kind of the route policy, and reports, are tenant resources', () => {
    for (const type of [...RESOURCE_KINDS.map((k) => k.fgaType), 'report']) {
      const q = ask({ type, id: 't1/x' }, 'read');
      expect(q.kind === 'check' && q.check.scope, type).toEqual({ type: 'tenant', id: 't1' });
    }
  });

  it('hierarchy nodes are their own scope; the platform is asked fresh', () => {
    const tenant = ask({ type: 'tenant', id: 't1' }, 'can_read_operational');
    const division = ask({ type: 'division', id: 'd1' }, 'read_reports');
    const platform = ask({ type: 'platform', id: 'root' }, 'can_create_organization');
    expect(tenant).toMatchObject({ kind: 'check', check: { object: 'tenant:t1', relation: 'can_read_operational', contextualTuples: [], scope: { type: 'tenant', id: 't1' } } });
    expect(division).toMatchObject({ kind: 'check', check: { object: 'division:d1', relation: 'can_read_reports', scope: { type: 'division', id: 'd1' } } });
    expect(platform).toMatchObject({ kind: 'check', check: { object: 'platform:root', consistency: 'strong' } });
    expect(platform.kind === 'check' && platform.check.scope).toBeUndefined();
  });

  it('only can_* permissions of the resource type are asked: roles, links and other types\' permissions are denied', () => {
    expect(ask({ type: 'tenant', id: 't1' }, 'admin')).toEqual({ kind: 'deny', reason: 'unknown_action' });
    expect(ask({ type: 'tenant', id: 't1' }, 'member')).toEqual({ kind: 'deny', reason: 'unknown_action' });
    expect(ask({ type: 'agent', id: 't1/a' }, 'tenant')).toEqual({ kind: 'deny', reason: 'unknown_action' });
    expect(ask({ type: 'call_record', id: 't1/c' }, 'can_write')).toEqual({ kind: 'deny', reason: 'unknown_action' });
    expect(ask({ type: 'agent', id: 't1/a' }, 'can_can_read')).toEqual({ kind: 'deny', reason: 'unknown_action' });
    expect(ask({ type: 'agent', id: 't1/a' }, 'Read')).toEqual({ kind: 'deny', reason: 'unknown_action' });
    expect(ask({ type: 'user', id: 'uma' }, 'read')).toEqual({ kind: 'deny', reason: 'unknown_resource_type' });
    expect(ask({ type: 'client', id: 'pep' }, 'evaluate')).toEqual({ kind: 'deny', reason: 'unknown_resource_type' });
    expect(mapping.permissionsOf('call_record')).toEqual(['can_read']);
  });

  it('subjects are users; other subject types are denied', () => {
    expect(ask({ type: 'tenant', id: 't1' }, 'can_view', { type: 'client', id: 'pep' })).toEqual({ kind: 'deny', reason: 'unsupported_subject_type' });
    expect(ask({ type: 'tenant', id: 't1' }, 'can_view', { type: 'tenant', id: 't2' })).toEqual({ kind: 'deny', reason: 'unsupported_subject_type' });
  });

  it.each([
    [{ type: 'agent', id: 't1' }, 'a tenant resource id without its tenant'],
    [{ type: 'agent', id: 't1/a/b' }, 'a business id with a slash'],
    [{ type: 'agent', id: '/a' }, 'an empty tenant id'],
    [{ type: 'tenant', id: 't1/x' }, 'a node id with a slash'],
    [{ type: 'tenant', id: 't1#admin' }, 'a userset'],
    [{ type: 'tenant', id: '*' }, 'a wildcard'],
  ])('%j is an invalid id (%s)', (resource) => {
    expect(ask(resource, resource.type === 'agent' ? 'can_read' : 'can_view').kind).toBe('invalid');
  });

  it('a subject id that no token could carry is invalid', () => {
    expect(ask({ type: 'tenant', id: 't1' }, 'can_view', { type: 'user', id: 'uma:x' }).kind).toBe('invalid');
    expect(ask({ type: 'tenant', id: 't1' }, 'can_view', { type: 'user', id: '*' }).kind).toBe('invalid');
  });
});

describe('AuthzenMapping.search', () => {
  const uma = { type: 'user', id: 'uma' };

  it('lists hierarchy nodes by a permission of their type', () => {
    expect(mapping.search(uma, 'tenant', 'read_operational')).toEqual({ kind: 'list', user: 'user:uma', relation: 'can_read_operational' });
    expect(mapping.search(uma, 'division', 'can_view')).toEqual({ kind: 'list', user: 'user:uma', relation: 'can_view' });
  });

  it('refuses tenant resources, which are never stored linked to their tenant', () => {
    expect(mapping.search(uma, 'agent', 'read').kind).toBe('invalid');
    expect(mapping.search(uma, 'report', 'read').kind).toBe('invalid');
  });

  it('denies what the model grants nothing on', () => {
    expect(mapping.search(uma, 'tenant', 'member')).toEqual({ kind: 'deny', reason: 'unknown_action' });
    expect(mapping.search(uma, 'client', 'evaluate')).toEqual({ kind: 'deny', reason: 'unknown_resource_type' });
    expect(mapping.search({ type: 'client', id: 'pep' }, 'tenant', 'can_view')).toEqual({ kind: 'deny', reason: 'unsupported_subject_type' });
  });
});

describe('evaluateAll', () => {
  const answers = (pattern: boolean[]) => {
    const asked: number[] = [];
    const answer = async (i: number): Promise<AuthzenDecision> => {
      asked.push(i);
      await Promise.resolve();
      return { decision: pattern[i]! };
    };
    return { asked, answer, items: pattern.map((_, i) => i) };
  };

  it('execute_all answers every item in request order', async () => {
    const a = answers([true, false, true, false, false, true, true, false, true, false]);
    expect((await evaluateAll(a.items, 'execute_all', a.answer)).map((d) => d.decision)).toEqual([true, false, true, false, false, true, true, false, true, false]);
    expect([...a.asked].sort((x, y) => x - y)).toEqual(a.items);
  });

  it('deny_on_first_deny asks in order and stops after the first deny', async () => {
    const a = answers([true, true, false, true]);
    expect((await evaluateAll(a.items, 'deny_on_first_deny', a.answer)).map((d) => d.decision)).toEqual([true, true, false]);
    expect(a.asked).toEqual([0, 1, 2]);
  });

  it('permit_on_first_permit asks in order and stops after the first permit', async () => {
    const a = answers([false, true, true]);
    expect((await evaluateAll(a.items, 'permit_on_first_permit', a.answer)).map((d) => d.decision)).toEqual([false, true]);
    expect(a.asked).toEqual([0, 1]);
  });

  it('without a stopping answer, both short-circuit semantics answer every item', async () => {
    const allPermit = answers([true, true]);
    const allDeny = answers([false, false]);
    expect(await evaluateAll(allPermit.items, 'deny_on_first_deny', allPermit.answer)).toHaveLength(2);
    expect(await evaluateAll(allDeny.items, 'permit_on_first_permit', allDeny.answer)).toHaveLength(2);
  });
});
