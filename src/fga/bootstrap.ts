// Idempotent bootstrap: the store exists, the latest model equals model.fga
// (written only when its content hash differs), the model id is pinned, and
// the configured platform admins hold `admin` on the platform object, and the
// configured AuthZEN clients `can_evaluate` on it.
import type { OpenFgaClient, TupleKey } from '@openfga/sdk';
import { ClientWriteRequestOnDuplicateWrites } from '@openfga/sdk';
import { toUserSubject } from '../config.js';
import { createFgaClient } from './client.js';
import { loadModel, modelHash, type LoadedModel } from './model.js';

/** The single platform object: the operator above every organization. */
export const PLATFORM_OBJECT = 'platform:root';

export interface BootstrapOptions {
  apiUrl: string;
  storeName: string;
  storeId?: string;
  platformAdmins: string[];
  /** Client ids granted `can_evaluate` on the platform (AUTHZEN_CLIENTS). */
  authzenClients?: readonly string[];
  timeoutMs: number;
  model?: LoadedModel;
  /** OpenFGA's preshared key, when it requires one. */
  apiToken?: string | undefined;
}

export interface BootstrapResult {
  storeId: string;
  authorizationModelId: string;
  createdStore: boolean;
  wroteModel: boolean;
  modelHash: string;
}

async function findStore(client: OpenFgaClient, name: string): Promise<string | undefined> {
  let continuationToken: string | undefined;
  do {
    const page = await client.listStores({ pageSize: 100, ...(continuationToken ? { continuationToken } : {}) });
    const hit = page.stores.find((s) => s.name === name);
    if (hit) return hit.id;
    continuationToken = page.continuation_token || undefined;
  } while (continuationToken);
  return undefined;
}

export async function bootstrap(opts: BootstrapOptions): Promise<BootstrapResult> {
  const model = opts.model ?? loadModel();
  const admin = createFgaClient({ apiUrl: opts.apiUrl, timeoutMs: Math.max(opts.timeoutMs, 5000), maxRetry: 3, apiToken: opts.apiToken });

  let storeId = opts.storeId ?? (await findStore(admin, opts.storeName));
  let createdStore = false;
  if (!storeId) {
    storeId = (await admin.createStore({ name: opts.storeName })).id;
    createdStore = true;
  } else {
    await admin.getStore({ storeId }); // a configured id that does not exist fails here, clearly
  }
  const client = createFgaClient({ apiUrl: opts.apiUrl, storeId, timeoutMs: Math.max(opts.timeoutMs, 5000), maxRetry: 3, apiToken: opts.apiToken });

  // An empty store answers with no model (not an error); any error here is real
  // and must stop the bootstrap rather than write a duplicate model.
  const latest = await client.readLatestAuthorizationModel();
  let authorizationModelId: string;
  let wroteModel = false;
  if (latest?.authorization_model && modelHash(latest.authorization_model) === model.hash) {
    authorizationModelId = latest.authorization_model.id;
  } else {
    authorizationModelId = (await client.writeAuthorizationModel(model.request)).authorization_model_id;
    wroteModel = true;
  }

  // `alice` and `user:alice` name the same subject: OpenFGA refuses a write
  // request holding the same tuple twice, even with duplicates ignored.
  const subjects = [...new Set(opts.platformAdmins.map(toUserSubject))];
  const writes: TupleKey[] = [
    ...subjects.map((user) => ({ user, relation: 'admin', object: PLATFORM_OBJECT })),
    ...[...new Set(opts.authzenClients ?? [])].map((id) => ({ user: `client:${id}`, relation: 'can_evaluate', object: PLATFORM_OBJECT })),
  ];
  for (let i = 0; i < writes.length; i += 100) {
    await client.write(
      { writes: writes.slice(i, i + 100) },
      { authorizationModelId, conflict: { onDuplicateWrites: ClientWriteRequestOnDuplicateWrites.Ignore } },
    );
  }
  return { storeId, authorizationModelId, createdStore, wroteModel, modelHash: model.hash };
}
