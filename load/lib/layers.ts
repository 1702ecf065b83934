// Decision latency by the layer that answers, measured in this process
// with the gateway's own DecisionCache against the run's real OpenFGA and Redis,
// one check at a time (latency, not throughput), each timed with performance.now():
//   l1       warm decisions from the in-process layer (key hash + LRU + version check)
//   redis    the same decisions with the in-process layer off (Redis GET + version reads)
//   openfga  a miss: the reader's role-version is bumped (a grant on the tenant) before each check
//            (a new object alone is no miss: its permission is asked of the tenant, whose
//            decision is cached), so it is a Redis lookup that finds the entry outdated,
//            dependency versions, OpenFGA Check (HIGHER_CONSISTENCY), fill of both layers
//   engine   OpenFGA Check alone through the request-path client (no cache), for reference
import { Registry } from 'prom-client';
import { DecisionCache } from '../../src/decisions/index.js';
import { FgaRequestClient } from '../../src/fga/request-client.js';
import { OpenFgaAuthorizer } from '../../src/fga/authorizer.js';
import { loadModel } from '../../src/fga/model.js';
import type { CheckRequest } from '../../src/authz/types.js';
import { summarize, type Summary } from './stats.js';

export type LayerResult = Record<'l1' | 'redis' | 'openfga' | 'engine', Summary> & {
  /** Per measured layer: answers that came from another layer (left out of its figures). */
  offLayer: Record<string, Record<string, number>>;
};

function check(user: string, tenant: string, id: string): CheckRequest {
  const object = `agent:${tenant}/${id}`;
  return {
    user,
    relation: 'can_read',
    object,
    contextualTuples: [{ user: `tenant:${tenant}`, relation: 'tenant', object }],
    scope: { type: 'tenant', id: tenant },
    consistency: 'cached',
  };
}

export async function measureLayers(opts: {
  fgaApiUrl: string;
  storeId: string;
  modelId: string;
  redisUrl: string;
  tenant: string;
  users: string[];
  agents: string[];
  samples: { l1: number; redis: number; openfga: number };
}): Promise<LayerResult> {
  const model = loadModel().request;
  const api = new FgaRequestClient({ apiUrl: opts.fgaApiUrl, storeId: opts.storeId, timeoutMs: 5000 });
  const engine = new OpenFgaAuthorizer({ api, authorizationModelId: opts.modelId });
  const make = (l1Enabled: boolean) =>
    new DecisionCache({
      engine,
      api,
      storeId: opts.storeId,
      modelId: () => opts.modelId,
      model,
      registry: new Registry(),
      redisUrl: opts.redisUrl,
      redisTimeoutMs: 50,
      l1Enabled,
      l1MaxEntries: 100_000,
      allowTtlS: 300,
      denyTtlS: 30,
      ttlJitter: 0.1,
      pollMs: 1000,
      poller: false,
    });
  const withL1 = make(true);
  const withoutL1 = make(false);
  await Promise.all([withL1.start(), withoutL1.start()]);
  try {
    const warm = opts.users.flatMap((u) => opts.agents.map((a) => check(`user:${u}`, opts.tenant, a)));
    for (const r of warm) await withL1.authorizer.check(r);
    await new Promise((r) => setTimeout(r, 300)); // the Redis fills are fire-and-forget

    // Times decisions from one layer. An answer from another layer (a lapse of the
    // in-process layer's trust, say) is counted and left out of that layer's figures;
    // more than 1% of them means the measurement is not of that layer: it fails.
    const offLayer: Record<string, Record<string, number>> = {};
    const time = async (cache: DecisionCache, n: number, next: (i: number) => CheckRequest, layer: string, before?: (i: number) => Promise<void>): Promise<number[]> => {
      const out: number[] = [];
      const off = (offLayer[layer] ??= {});
      let offCount = 0;
      for (let i = 0; i < n; i++) {
        await before?.(i);
        const req = next(i);
        const t = performance.now();
        const d = await cache.authorizer.check(req);
        if (d.layer === layer) out.push((performance.now() - t) * 1000);
        else {
          off[d.layer] = (off[d.layer] ?? 0) + 1;
          offCount++;
        }
      }
      if (offCount > 0.01 * n) throw new Error(`expected decisions from ${layer}, got ${JSON.stringify(off)} of ${n} from other layers`);
      return out;
    };
    // Warm the JIT on the path first (not measured; anything it found missing is filled
    // again before the measurement), then measure.
    for (let i = 0; i < 2000; i++) await withL1.authorizer.check(warm[i % warm.length]!);
    for (const r of warm) await withL1.authorizer.check(r);
    const l1 = await time(withL1, opts.samples.l1, (i) => warm[i % warm.length]!, 'l1');
    const redis = await time(withoutL1, opts.samples.redis, (i) => warm[i % warm.length]!, 'redis');
    const run = Date.now().toString(36);
    // Before each, what the admin API does after a role change of that reader on the tenant
    // (no write needed: the answer stays the same), outside the timed part.
    const readerOf = (i: number) => `user:${opts.users[i % opts.users.length]}`;
    const openfga = await time(withL1, opts.samples.openfga, (i) => check(readerOf(i), opts.tenant, `l${run}x${i}`), 'openfga', (i) =>
      withL1.invalidator.tuplesChanged({ writes: [{ user: readerOf(i), relation: 'member', object: `tenant:${opts.tenant}` }], deletes: [] }),
    );
    const engineSamples: number[] = [];
    for (let i = 0; i < opts.samples.openfga; i++) {
      const t = performance.now();
      await engine.check({ ...check(`user:${opts.users[i % opts.users.length]}`, opts.tenant, `e${run}x${i}`), consistency: 'strong' });
      engineSamples.push((performance.now() - t) * 1000);
    }
    return { l1: summarize(l1), redis: summarize(redis), openfga: summarize(openfga), engine: summarize(engineSamples), offLayer };
  } finally {
    await Promise.all([withL1.close(), withoutL1.close()]);
  }
}
