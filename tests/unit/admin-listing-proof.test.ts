// Which stored facts prove a listing candidate's can_view, over model.fga and over models
// that break the proof in each way the rewrites can.
import { describe, expect, it } from 'vitest';
import { loadModel, parseModel } from '../../src/fga/model.js';
import { ListingProof, type Hop } from '../../src/admin/listing-proof.js';
import { useCleanup } from '../support/cleanup.js';

useCleanup();

const toDivision: Hop = { childType: 'tenant', tupleset: 'division', parentType: 'division' };
const toParent: Hop = { childType: 'division', tupleset: 'parent', parentType: 'division' };
const toOrganization: Hop = { childType: 'division', tupleset: 'organization', parentType: 'organization' };
const toPlatform: Hop = { childType: 'organization', tupleset: 'platform', parentType: 'platform' };

describe('over model.fga', () => {
  const proof = new ListingProof(loadModel().request);

  it('places a tenant under an organization admin through its division, at any depth', () => {
    expect(proof.proves('tenant', 'can_view', [toDivision, toOrganization], 'admin')).toBe(true);
    expect(proof.proves('tenant', 'can_view', [toDivision], 'admin')).toBe(true);
    expect(proof.proves('tenant', 'can_view', [toDivision, toParent, toParent, toParent], 'admin')).toBe(true);
    expect(proof.proves('tenant', 'can_view', [], 'admin')).toBe(true);
    expect(proof.proves('tenant', 'can_view', [], 'member')).toBe(true);
  });

  it('places divisions under organization and division admins, and organizations under the platform admin', () => {
    expect(proof.proves('division', 'can_view', [], 'admin')).toBe(true);
    expect(proof.proves('division', 'can_view', [toOrganization], 'admin')).toBe(true);
    expect(proof.proves('division', 'can_view', [toParent, toParent], 'admin')).toBe(true);
    expect(proof.proves('organization', 'can_view', [], 'admin')).toBe(true);
    expect(proof.proves('organization', 'can_view', [toPlatform], 'admin')).toBe(true);
  });

  it('proves nothing the model does not grant', () => {
    // A tenant member above the tenant is no one: member is not inherited.
    expect(proof.proves('tenant', 'can_view', [toDivision], 'member')).toBe(false);
    // A platform admin holds no role inside an organization.
    expect(proof.proves('division', 'can_view', [toOrganization, toPlatform], 'admin')).toBe(false);
    // Hops that do not chain, or name a relation that is not a link.
    expect(proof.proves('tenant', 'can_view', [toParent], 'admin')).toBe(false);
    expect(proof.proves('tenant', 'can_view', [{ childType: 'tenant', tupleset: 'member', parentType: 'user' }], 'admin')).toBe(false);
    expect(proof.proves('tenant', 'can_view', [toDivision, { ...toOrganization, parentType: 'division' }], 'admin')).toBe(false);
    // can_rename is the manager's: an admin of the tenant itself does not hold it.
    expect(proof.proves('tenant', 'can_rename', [], 'admin')).toBe(false);
    expect(proof.proves('tenant', 'can_rename', [toDivision], 'admin')).toBe(true);
  });
});

const variant = (tenantRelations: string, divisionLinks = 'define organization: [organization]\n    define parent: [division]') =>
  new ListingProof(
    parseModel(`model
  schema 1.1
type user
type organization
  relations
    define admin: [user]
    define blocked: [user]
type division
  relations
    ${divisionLinks}
    define admin: [user] or admin from parent or admin from organization
type tenant
  relations
    define division: [division]
    define suspended: [user]
    ${tenantRelations}
`).request,
  );

describe('models where the facts would not prove the candidate', () => {
  it('follows unions and computed relations, never an exclusion or an intersection', () => {
    expect(variant('define admin: [user] or admin from division\n    define can_view: admin').proves('tenant', 'can_view', [toDivision, toOrganization], 'admin')).toBe(true);
    expect(
      variant('define admin: [user] or admin from division\n    define can_view: admin but not suspended').proves('tenant', 'can_view', [toDivision, toOrganization], 'admin'),
    ).toBe(false);
    expect(
      variant('define admin: [user] or admin from division\n    define can_view: admin and suspended').proves('tenant', 'can_view', [toDivision, toOrganization], 'admin'),
    ).toBe(false);
    expect(
      variant('define admin: [user] or (admin from division but not suspended)\n    define can_view: admin').proves('tenant', 'can_view', [toDivision, toOrganization], 'admin'),
    ).toBe(false);
  });

  it('needs every hop to be a plain stored link', () => {
    // A link that may hold a wildcard is not one stored tuple per parent.
    const wildcard = variant('define admin: [user] or admin from division\n    define can_view: admin', 'define organization: [organization, organization:*]\n    define parent: [division]');
    expect(wildcard.proves('tenant', 'can_view', [toDivision, toOrganization], 'admin')).toBe(false);
    expect(wildcard.proves('tenant', 'can_view', [toDivision, toParent], 'admin')).toBe(true);
  });
});
