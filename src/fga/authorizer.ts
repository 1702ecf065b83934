// OpenFGA as an Authorizer: Check against the pinned store and model, with the
// request's contextual tuples and context, through the request-path client
// (./request-client.ts). Every failure REJECTS with a typed error (./errors.ts);
// nothing here ever turns an error into an answer (allowed or denied).
import type { Authorizer, CheckRequest, Decision } from '../authz/types.js';
import type { FgaRequestClient } from './request-client.js';

export { AuthorizerError, AuthorizerRequestError, AuthorizerUnavailableError, type AuthorizerFailure } from './errors.js';

export interface OpenFgaAuthorizerOptions {
  /** The request-path client (timeout = OPENFGA_TIMEOUT_MS, no retries). */
  api: FgaRequestClient;
  authorizationModelId: string;
}

export class OpenFgaAuthorizer implements Authorizer {
  readonly storeId: string;
  private modelId: string;
  private readonly api: FgaRequestClient;

  constructor(opts: OpenFgaAuthorizerOptions) {
    this.api = opts.api;
    this.storeId = opts.api.storeId;
    this.modelId = opts.authorizationModelId;
  }

  /** The model id every check is pinned to. */
  get authorizationModelId(): string {
    return this.modelId;
  }

  /** Pin a new model (after bootstrap wrote one); pair with DecisionInvalidator.modelChanged(). */
  pinModel(authorizationModelId: string): void {
    this.modelId = authorizationModelId;
  }

  async check(req: CheckRequest): Promise<Decision> {
    const started = performance.now();
    // A CheckRequest is a FgaCheckQuestion (the client reads only those fields).
    const allowed = await this.api.check(req, this.modelId, req.consistency === 'strong' ? 'strong' : 'cached');
    return { allowed, layer: 'openfga', durationMs: performance.now() - started };
  }
}
