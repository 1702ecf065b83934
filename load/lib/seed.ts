// The data every scenario reads, loaded through the gateway's own APIs: the demo
// hierarchy (demo/hierarchy.yaml, applied like `npm run apply`), bench users made
// members of tenant acme-sales by its admin (tom) through the admin API, and agents
// created through /api/v1 by tom. Tokens come from the development issuer the
// gateway trusts (its key is in the bench's data dir).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { applyHierarchy, parseHierarchy } from '../../src/cli/apply.js';
import { loadOrCreateDevIssuerKeys, mintDevToken } from '../../src/gateway/dev-issuer.js';
import { REPO_ROOT } from '../../src/shared/repo-root.js';
import { inBatches } from './concurrency.js';

export const TENANT = 'acme-sales';
const TOKEN_TTL_S = 6 * 3600;

export interface Fixtures {
  tenant: string;
  /** tom, tenant admin of acme-sales: grants and revokes in the mixed run. */
  adminToken: string;
  /** Members that only read (warm and miss scenarios). */
  readers: { id: string; token: string }[];
  /** Members whose role the mixed run revokes and re-grants. */
  mixed: { id: string; token: string }[];
  /** Members the two-replica revocation measurement cycles through. */
  revoked: { id: string; token: string }[];
  agents: string[];
}

async function send(url: string, method: string, token: string, body?: unknown): Promise<{ status: number; text: string }> {
  const res = await fetch(url, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  return { status: res.status, text: await res.text() };
}

async function call(url: string, method: string, token: string, body?: unknown): Promise<number> {
  return (await send(url, method, token, body)).status;
}

/** The problem type's slug of a problem+json answer (`…/problems/<slug>`), if it is one. */
function problemSlug(text: string): string | undefined {
  try {
    const type = (JSON.parse(text) as { type?: unknown }).type;
    return typeof type === 'string' ? type.slice(type.lastIndexOf('/') + 1) : undefined;
  } catch {
    return undefined;
  }
}

/** Tokens from the development issuer the gateway trusts (its key is in the bench's data dir). */
async function minter(dataDir: string): Promise<(sub: string) => Promise<string>> {
  const keys = await loadOrCreateDevIssuerKeys(dataDir);
  return (sub) => mintDevToken(keys, { sub, audience: 'tiergate', ttlS: TOKEN_TTL_S });
}

export async function grantMember(gatewayUrl: string, adminToken: string, userId: string, grant = true): Promise<number> {
  return call(`${gatewayUrl}/admin/v1/tenants/${TENANT}/roles/member/${userId}`, grant ? 'PUT' : 'DELETE', adminToken);
}

export async function seed(
  gatewayUrl: string,
  dataDir: string,
  counts: { readers: number; mixed: number; revoked: number; agents: number },
  say: (line: string) => void,
): Promise<Fixtures> {
  const mint = await minter(dataDir);
  const file = join(REPO_ROOT, 'demo', 'hierarchy.yaml');
  const spec = parseHierarchy(readFileSync(file, 'utf8'), file);
  await applyHierarchy({ spec, gateway: gatewayUrl, token: await mint('platform-ops'), orgTokens: { acme: await mint('olivia') }, out: () => undefined });

  const adminToken = await mint('tom');
  const users = async (prefix: string, n: number) =>
    Promise.all(Array.from({ length: n }, async (_, i) => ({ id: `${prefix}${i}`, token: await mint(`${prefix}${i}`) })));
  const readers = await users('bench-r', counts.readers);
  const mixed = await users('bench-m', counts.mixed);
  const revoked = await users('bench-v', counts.revoked);
  await inBatches([...readers, ...mixed, ...revoked], 4, async (u) => {
    const status = await grantMember(gatewayUrl, adminToken, u.id);
    if (status !== 200) throw new Error(`granting member to ${u.id} answered ${status}`);
  });
  const agents = Array.from({ length: counts.agents }, (_, i) => `a${i}`);
  if (agents.length > 0) {
    // The demo gives acme-sales fewer agent seats (quota.agents) than a bench may read: its
    // organization admin allocates what the run needs (within the division's own allocation).
    const seats = await send(`${gatewayUrl}/admin/v1/tenants/${TENANT}/settings/document/quota.agents`, 'PUT', await mint('olivia'), { set: Math.max(agents.length, 25) });
    if (seats.status !== 200) throw new Error(`allocating ${agents.length} agent seats to ${TENANT} answered ${seats.status}: ${seats.text.slice(0, 300)}`);
  }
  await inBatches(agents, 4, async (id) => {
    const res = await send(`${gatewayUrl}/api/v1/tenants/${TENANT}/agents`, 'POST', adminToken, { agentNo: id, name: `Bench agent ${id}` });
    // 409 `conflict` is an agent left by an earlier seed of the same data; any other refusal (a quota) is a broken fixture.
    if (res.status !== 201 && !(res.status === 409 && problemSlug(res.text) === 'conflict')) {
      throw new Error(`creating agent ${id} answered ${res.status}: ${res.text.slice(0, 300)}`);
    }
  });
  say(`seeded: demo hierarchy, ${readers.length + mixed.length + revoked.length} members of tenant ${TENANT}, ${agents.length} agents`);
  return { tenant: TENANT, adminToken, readers, mixed, revoked, agents };
}

/**
 * Makes `n` more users (bench-x0 …) members of the bench tenant, or takes them back
 * (`grant` false), 100 tuples per call of the admin API's tuple batch endpoint, as the
 * tenant's admin tom (each tuple needs can_assign_member on the tenant). Returns their ids, and
 * tokens when granting. They exist only for the cache-miss rows: OpenFGA's memory
 * datastore scans every tuple of the store on each read, so they are taken back afterwards
 * to leave the other rows' store as it was.
 */
export async function missMembers(gatewayUrl: string, dataDir: string, n: number, grant = true): Promise<{ id: string; token: string }[]> {
  const mint = await minter(dataDir);
  const tenantAdmin = await mint('tom');
  const ids = Array.from({ length: n }, (_, i) => `bench-x${i}`);
  const batches: { user: string; relation: string; object: string }[][] = [];
  for (let i = 0; i < ids.length; i += 100) {
    batches.push(ids.slice(i, i + 100).map((id) => ({ user: `user:${id}`, relation: 'member', object: `tenant:${TENANT}` })));
  }
  await inBatches(batches, 2, async (tuples) => {
    const status = await call(`${gatewayUrl}/admin/v1/tuples`, 'POST', tenantAdmin, grant ? { writes: tuples } : { deletes: tuples });
    if (status !== 200) throw new Error(`${grant ? 'writing' : 'deleting'} ${tuples.length} member tuples answered ${status}`);
  });
  return Promise.all(ids.map(async (id) => ({ id, token: grant ? await mint(id) : '' })));
}
