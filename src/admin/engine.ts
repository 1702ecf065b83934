// The admin plane's narrow view of OpenFGA: checks (always fresh, never via the
// decision cache), reads, one-call atomic writes, ListObjects. Every SDK failure
// is translated by fromFgaError, so handlers never see SDK error types.
import {
  ClientWriteRequestOnDuplicateWrites,
  ClientWriteRequestOnMissingDeletes,
  ConsistencyPreference,
  type OpenFgaClient,
} from '@openfga/sdk';
import type { TupleChange, TupleKey } from '../authz/types.js';
import type { ModelTypes } from '../fga/hierarchy.js';
import { fromFgaError } from './errors.js';
import { MAX_TUPLES_PER_WRITE } from './schemas.js';

export interface Engine {
  check(user: string, relation: string, object: string, contextualTuples?: TupleKey[]): Promise<boolean>;
  /**
   * Several checks in one BatchCheck round trip; answers in input order. An item OpenFGA
   * answers with an error throws, unless `errorAsFalse` (for checks that only save work).
   */
  checkMany(checks: { user: string; relation: string; object: string; contextualTuples?: TupleKey[] }[], opts?: { errorAsFalse?: boolean }): Promise<boolean[]>;
  /** One page of Read. `object` may be `type:` (then `user` is required, as OpenFGA demands). */
  readPage(filter: Partial<TupleKey>, pageSize: number, cursor?: string): Promise<{ tuples: TupleKey[]; cursor?: string }>;
  /** Every tuple matching the filter (pages through Read). */
  readAll(filter: Partial<TupleKey>): Promise<TupleKey[]>;
  /** Writes and deletes in ONE Write call (atomic), duplicates/missing ignored. */
  write(change: TupleChange): Promise<void>;
  listObjects(user: string, relation: string, type: string): Promise<string[]>;
  /** The relations the pinned model defines, per type (for validating explain requests). */
  relationsByType(): Promise<Map<string, Set<string>>>;
  /** The pinned model's type definitions (read once). */
  model(): Promise<ModelTypes>;
}

const fresh = { consistency: ConsistencyPreference.HigherConsistency };

async function translate<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw fromFgaError(err);
  }
}

export function createEngine(fga: OpenFgaClient): Engine {
  let model: Promise<ModelTypes> | undefined;
  const engine: Engine = {
    check: (user, relation, object, contextualTuples = []) =>
      translate(async () => (await fga.check({ user, relation, object, contextualTuples }, fresh)).allowed === true),

    checkMany: (checks, opts) =>
      translate(async () => {
        if (checks.length === 0) return [];
        const res = await fga.batchCheck(
          {
            checks: checks.map((ch, i) => ({
              user: ch.user,
              relation: ch.relation,
              object: ch.object,
              correlationId: `c${i}`,
              ...(ch.contextualTuples?.length ? { contextualTuples: { tuple_keys: ch.contextualTuples } } : {}),
            })),
          },
          fresh,
        );
        const byId = new Map(res.result.map((r) => [r.correlationId, r]));
        return checks.map((_, i) => {
          const r = byId.get(`c${i}`);
          if (r && r.error && opts?.errorAsFalse) return false;
          if (!r || r.error) throw new Error(`BatchCheck item c${i} failed: ${r?.error?.message ?? 'missing answer'}`);
          return r.allowed === true;
        });
      }),

    readPage: (filter, pageSize, cursor) =>
      translate(async () => {
        const res = await fga.read(filter, { pageSize, ...(cursor ? { continuationToken: cursor } : {}), ...fresh });
        const tuples = res.tuples.map((t) => ({ user: t.key.user, relation: t.key.relation, object: t.key.object }));
        return { tuples, ...(res.continuation_token ? { cursor: res.continuation_token } : {}) };
      }),

    async readAll(filter) {
      const out: TupleKey[] = [];
      let cursor: string | undefined;
      do {
        const page = await engine.readPage(filter, 100, cursor);
        out.push(...page.tuples);
        cursor = page.cursor;
      } while (cursor);
      return out;
    },

    write: (change) =>
      translate(async () => {
        if (change.writes.length + change.deletes.length === 0) return;
        if (change.writes.length + change.deletes.length > MAX_TUPLES_PER_WRITE) {
          throw new Error(`internal: ${change.writes.length + change.deletes.length} tuple changes exceed one atomic write`);
        }
        // transaction mode (the SDK default) sends writes and deletes in one Write request.
        await fga.write(
          { writes: change.writes, deletes: change.deletes },
          {
            conflict: {
              onDuplicateWrites: ClientWriteRequestOnDuplicateWrites.Ignore,
              onMissingDeletes: ClientWriteRequestOnMissingDeletes.Ignore,
            },
          },
        );
      }),

    listObjects: (user, relation, type) =>
      translate(async () => (await fga.listObjects({ user, relation, type }, fresh)).objects),

    model() {
      model ??= translate(async () => ({ type_definitions: (await fga.readAuthorizationModel()).authorization_model?.type_definitions ?? [] })).catch(
        (err: unknown) => {
          model = undefined; // do not cache a failure
          throw err;
        },
      );
      return model;
    },

    async relationsByType() {
      const map = new Map<string, Set<string>>();
      for (const td of (await engine.model()).type_definitions) map.set(td.type, new Set(Object.keys(td.relations ?? {})));
      return map;
    },
  };
  return engine;
}

export function isEmptyChange(change: TupleChange): boolean {
  return change.writes.length === 0 && change.deletes.length === 0;
}

/** The change that undoes `change` (used to compensate when the DB commit fails). */
export function reverseChange(change: TupleChange): TupleChange {
  return { writes: change.deletes, deletes: change.writes };
}
