// The one place that constructs @openfga/sdk clients: keep-alive connections,
// a hard per-call timeout, and no SDK retries (the gateway fails closed instead
// of waiting through retries).
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { CredentialsMethod, OpenFgaClient } from '@openfga/sdk';

export interface FgaClientOptions {
  apiUrl: string;
  storeId?: string;
  authorizationModelId?: string;
  timeoutMs: number;
  /** SDK retries on 429/5xx; 0 on the request path. */
  maxRetry?: number;
  /** OpenFGA's preshared key (sent as `Authorization: Bearer …`); unset for an OpenFGA without authentication. */
  apiToken?: string | undefined;
}

const httpAgent = new HttpAgent({ keepAlive: true, maxSockets: 256 });
const httpsAgent = new HttpsAgent({ keepAlive: true, maxSockets: 256 });

export function createFgaClient(opts: FgaClientOptions): OpenFgaClient {
  return new OpenFgaClient({
    apiUrl: opts.apiUrl,
    storeId: opts.storeId,
    authorizationModelId: opts.authorizationModelId,
    retryParams: { maxRetry: opts.maxRetry ?? 0, minWaitInMs: 50 },
    baseOptions: { timeout: opts.timeoutMs, httpAgent, httpsAgent },
    ...(opts.apiToken ? { credentials: { method: CredentialsMethod.ApiToken, config: { token: opts.apiToken } } } : {}),
  });
}
