// Each test file gets its own OpenFGA store on the shared test server, so files
// running in parallel never see each other's tuples.
import { randomUUID } from 'node:crypto';
import { inject } from 'vitest';
import type { OpenFgaClient } from '@openfga/sdk';
import { bootstrap, type BootstrapResult } from '../../src/fga/bootstrap.js';
import type { LoadedModel } from '../../src/fga/model.js';
import { createFgaClient } from '../../src/fga/client.js';
import { FgaRequestClient } from '../../src/fga/request-client.js';

export interface TestStore extends BootstrapResult {
  apiUrl: string;
  /** OpenFGA's preshared key (the shared server's by default); servers without authentication ignore it. */
  apiToken: string;
  client: OpenFgaClient;
  /** The request-path client (Check, Read) on the same store. */
  api: FgaRequestClient;
}

export async function createTestStore(
  opts: { apiUrl?: string; apiToken?: string; platformAdmins?: string[]; authzenClients?: string[]; model?: LoadedModel } = {},
): Promise<TestStore> {
  const apiUrl = opts.apiUrl ?? inject('openfgaUrl');
  const apiToken = opts.apiToken ?? inject('openfgaToken');
  const result = await bootstrap({
    apiUrl,
    apiToken,
    storeName: `test-${randomUUID()}`,
    platformAdmins: opts.platformAdmins ?? [],
    authzenClients: opts.authzenClients ?? [],
    ...(opts.model ? { model: opts.model } : {}),
    timeoutMs: 5000,
  });
  const client = createFgaClient({
    apiUrl,
    storeId: result.storeId,
    authorizationModelId: result.authorizationModelId,
    timeoutMs: 5000,
    apiToken,
  });
  const api = new FgaRequestClient({ apiUrl, storeId: result.storeId, timeoutMs: 5000, apiToken });
  return { ...result, apiUrl, apiToken, client, api };
}
