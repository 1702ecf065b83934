// The request path's OpenFGA client against the SDK, on the same Check against the same
// real OpenFGA (why src/fga/request-client.ts exists: the SDK's per-call overhead).
// Run: npx vitest bench --run tests/bench/openfga-client.bench.ts
// Both do one Check at a time; the figure that matters on a shared box is the client CPU
// each call costs, which shows here as time per call on top of OpenFGA's own.
import { ConsistencyPreference } from '@openfga/sdk';
import { bench, describe } from 'vitest';
import { createTestStore } from '../support/fga.js';
import { resourceCheck, writeHierarchy } from '../support/decisions-fixture.js';

const store = await createTestStore();
await writeHierarchy(store.client);
const question = resourceCheck('user:tAuser', 'tA', 'agent', '1');

describe('one OpenFGA Check (HIGHER_CONSISTENCY, one contextual tuple)', () => {
  bench('request-path client (undici)', async () => {
    await store.api.check(question, store.authorizationModelId, 'strong');
  });

  bench('@openfga/sdk client (axios)', async () => {
    await store.client.check(
      { user: question.user, relation: question.relation, object: question.object, contextualTuples: question.contextualTuples },
      { consistency: ConsistencyPreference.HigherConsistency },
    );
  });
});
