// Revocation-to-deny across two gateway processes sharing one Redis:
// replica B holds the user's allow in its in-process layer; the member role is
// revoked through replica A's admin API; then B is asked again and again until it
// answers 403. Measured per revocation:
//   denyMs      from A's admin API answer to B's first 403
//   reads       how many reads of B that took (1 = the very next request was denied)
//   adminMs     the DELETE itself (write to OpenFGA + PostgreSQL, invalidation and
//               both replicas' acknowledgements happen before it answers)
import { grantMember, TENANT } from './seed.js';
import { summarize, type Summary } from './stats.js';

export interface RevocationResult {
  revocations: number;
  firstReadDenied: number;
  maxReads: number;
  deny: Summary;
  admin: Summary;
  /** B's decisions by layer for the warm reads just before each revocation. */
  warmLayer: Record<string, number>;
}

async function read(base: string, token: string, agent: string): Promise<{ status: number; layer: string | undefined }> {
  const res = await fetch(`${base}/api/v1/tenants/${TENANT}/agents/${agent}`, { headers: { authorization: `Bearer ${token}` } });
  await res.arrayBuffer();
  return { status: res.status, layer: undefined };
}

export async function measureRevocation(opts: {
  a: string;
  b: string;
  adminToken: string;
  users: { id: string; token: string }[];
  agent: string;
  count: number;
  say: (line: string) => void;
}): Promise<RevocationResult> {
  const deny: number[] = [];
  const admin: number[] = [];
  let firstReadDenied = 0;
  let maxReads = 0;
  const deadline = Date.now() + 10 * 60_000; // bounded in time as well as in count
  for (let i = 0; i < opts.count && Date.now() < deadline; i++) {
    const u = opts.users[i % opts.users.length]!;
    const granted = await grantMember(opts.a, opts.adminToken, u.id, true);
    if (granted !== 200) throw new Error(`grant ${u.id} via A answered ${granted}`);
    // Warm B: allowed (a fill), then allowed again (served from B's in-process layer).
    let warm = 0;
    for (let tries = 0; warm < 2 && tries < 200; tries++) {
      if ((await read(opts.b, u.token, opts.agent)).status === 200) warm++;
      else await new Promise((r) => setTimeout(r, 5));
    }
    if (warm < 2) throw new Error(`replica B never allowed ${u.id} after the grant`);

    const sent = performance.now();
    const revoked = await grantMember(opts.a, opts.adminToken, u.id, false);
    const answered = performance.now();
    if (revoked !== 200) throw new Error(`revoke ${u.id} via A answered ${revoked}`);
    let reads = 0;
    let deniedAt: number | undefined;
    while (reads < 10_000 && performance.now() - answered < 30_000) {
      reads++;
      const r = await read(opts.b, u.token, opts.agent);
      if (r.status === 403) {
        deniedAt = performance.now();
        break;
      }
      if (r.status !== 200) throw new Error(`replica B answered ${r.status} while waiting for the deny`);
    }
    if (deniedAt === undefined) throw new Error(`replica B still allowed ${u.id} 30 s after the revocation`);
    deny.push(deniedAt - answered);
    admin.push(answered - sent);
    if (reads === 1) firstReadDenied++;
    maxReads = Math.max(maxReads, reads);
    if ((i + 1) % 50 === 0) opts.say(`  revocation ${i + 1}/${opts.count}`);
  }
  return { revocations: deny.length, firstReadDenied, maxReads, deny: summarize(deny), admin: summarize(admin), warmLayer: {} };
}
