// Builds a running gateway from the parsed configuration: every stage, the decision
// cache in front of OpenFGA, the admin API, the HTTP listener and the metrics listener.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { getRequestListener } from '@hono/node-server';
import { ConsistencyPreference, type AuthorizationModel } from '@openfga/sdk';
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import { createAdminApp, migrateAdmin } from '../admin/app.js';
import { createDenialAudit } from '../admin/audit.js';
import { createCrossLevelAudit, createRoleSourceResolver } from '../admin/cross-level.js';
import { createEngine } from '../admin/engine.js';
import type { Config } from '../config.js';
import type { Db } from '../db/index.js';
import { DecisionCache, decisionCacheSettings } from '../decisions/index.js';
import { OpenFgaAuthorizer } from '../fga/authorizer.js';
import { createFgaClient } from '../fga/client.js';
import { FgaRequestClient } from '../fga/request-client.js';
import { countsMetric } from '../shared/counts-metric.js';
import { trustedPeers } from '../shared/trusted-proxies.js';
import { PROBLEM_CONTENT_TYPE, Problem } from '../shared/problem.js';
import { createGatewayApp } from '../gateway/app.js';
import { createAuthzenApp } from '../gateway/authzen.js';
import { ASSERTION_KEY_FILE, createAssertionSigner } from '../gateway/assertion-signer.js';
import { authenticate, createTokenVerifier } from '../gateway/authenticate.js';
import { resolveTrustedIssuers } from '../gateway/dev-issuer.js';
import { devOidcApp } from '../gateway/dev-issuer-oidc.js';
import { consoleApp, consoleSignIn, hierarchyUsers } from './console.js';
import { createGatewayMetrics, upstreamObserver, type GatewayMetrics } from '../gateway/metrics.js';
import { canonicaliseRequest, normalise, refusalProblem, requestErrorResponse } from '../gateway/normalise.js';
import { matchedRequest } from '../gateway/policy.js';
import { UpstreamRoutes } from '../gateway/forward.js';
import type { LoadedModel } from '../fga/model.js';
import { loadVersionedPolicy, shadowOffSummary, ShadowPolicy } from '../gateway/shadow.js';
import { TENANT_SERVICE_UPSTREAM } from '../shared/upstream-url.js';
import { currentUpstreams, openPolicy, policyMetrics, policyReadiness, policyStage, type PolicyRuntime } from './active-policy.js';
import { upstreamReadiness } from './upstreams.js';
import { loadRegistry } from '../settings/registry.js';
import { createSettingsClaims } from '../gateway/settings-claim.js';
import { edgePolicy } from '../gateway/edge-policy.js';
import { RESIDENCY_SETTING } from '../gateway/residency.js';
import { createRequestCounter, rateLimit } from '../gateway/rate-limit.js';
import type { Decision } from '../authz/types.js';
import { join } from 'node:path';

export interface GatewayRuntime {
  fgaApiUrl: string;
  /** OpenFGA's preshared key; default OPENFGA_API_TOKEN (`npm start` passes its embedded OpenFGA's). */
  fgaApiToken?: string | undefined;
  storeId: string;
  authorizationModelId: string;
  model: Pick<AuthorizationModel, 'type_definitions'>;
  /** Base URL of the tenant-resource service (the built-in `tenant-service` upstream). */
  upstreamUrl: string;
  /** URLs of other upstreams this process wired (e.g. `npm start`'s reports listener); UPSTREAM_URLS wins over them. */
  upstreamUrls?: Readonly<Record<string, string>>;
  /** The model the route policy is checked against; default loadModel() (model.fga). */
  policyModel?: LoadedModel;
  /** Told after the admin endpoint reloaded the policy here, so the other processes of a cluster reload too. */
  onAdminReload?: () => void;
  db: Db;
  logger: Logger;
  /**
   * Serve /metrics on METRICS_PORT from this process (default true). A node:cluster
   * worker passes false: the primary serves every worker's metrics, aggregated.
   */
  metricsListener?: boolean;
}

export interface RunningGateway {
  url: string;
  /** Public keys of the assertions this gateway signs (what the upstream trusts). */
  assertionJwks: { keys: import('jose').JWK[] };
  metricsUrl?: string;
  /** Every metric of this process (for the cluster primary's aggregation). */
  registry: Registry;
  cache: DecisionCache;
  /** The route policy in force, reloadable (POLICY_FILE watched unless POLICY_WATCH=false). */
  policy: PolicyRuntime;
  /** The shadow policy, when SHADOW_POLICY_FILE is set. */
  shadow?: ShadowPolicy;
  close(): Promise<void>;
}

function listen(server: Server, port: number, host: string): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server.address() as AddressInfo);
    });
  });
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

/** A bare problem+json 400 for requests Node's HTTP parser refuses before the app sees them. */
function clientErrorResponse(): string {
  const body = JSON.stringify(new Problem(400, 'bad-request', 'Bad Request', { detail: 'The request could not be parsed as HTTP.' }).details());
  return `HTTP/1.1 400 Bad Request\r\ncontent-type: ${PROBLEM_CONTENT_TYPE}\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`;
}

/** Every decision's latency by the layer that answered, allowed or denied. */
function observeDecision(metrics: GatewayMetrics): (d: Decision) => void {
  return (d) => metrics.decisionDuration.labels(d.layer, d.allowed ? 'true' : 'false').observe(d.durationMs / 1000);
}

export async function startGateway(config: Config, rt: GatewayRuntime): Promise<RunningGateway> {
  const registry = new Registry();
  // Without a listener nothing reads the runtime metrics: none are sampled.
  const metrics = createGatewayMetrics(registry, { runtime: config.METRICS_PORT !== 0, eventLoopPrecisionMs: config.METRICS_EVENT_LOOP_PRECISION_MS });
  const trustedProxies = trustedPeers(config.TRUSTED_PROXIES);
  const log = rt.logger;
  const apiToken = rt.fgaApiToken ?? config.OPENFGA_API_TOKEN;
  // Before anything starts: a bad policy or an override naming no upstream stops here.
  const upstreamRoutes = new UpstreamRoutes((name) => upstreamObserver(metrics, name));
  const settings = loadRegistry(config.SETTINGS_FILE);
  const policy = await openPolicy({
    config,
    regions: settings.get(RESIDENCY_SETTING)?.values ?? [],
    settingKeys: [...settings.keys.keys()],
    ...(rt.policyModel ? { model: rt.policyModel } : {}),
    wired: { ...rt.upstreamUrls, [TENANT_SERVICE_UPSTREAM]: rt.upstreamUrl },
    routes: upstreamRoutes,
    log,
  });
  policyMetrics(registry, policy);
  // The candidate policy is checked like the enforced one: a bad file stops the start too.
  const candidate = config.SHADOW_POLICY_FILE === undefined ? undefined : loadVersionedPolicy(config.SHADOW_POLICY_FILE, rt.policyModel);

  const fga = createFgaClient({
    apiUrl: rt.fgaApiUrl,
    storeId: rt.storeId,
    authorizationModelId: rt.authorizationModelId,
    timeoutMs: config.OPENFGA_TIMEOUT_MS,
    apiToken,
  });
  // Check and the structural reads: the request path's own client (see ../fga/request-client.ts).
  const api = new FgaRequestClient({
    apiUrl: rt.fgaApiUrl,
    storeId: rt.storeId,
    timeoutMs: config.OPENFGA_TIMEOUT_MS,
    apiToken,
    onCall: (call, outcome, seconds) => metrics.openfgaDuration.labels(call, outcome).observe(seconds),
  });
  const engine = new OpenFgaAuthorizer({ api, authorizationModelId: rt.authorizationModelId });
  const cache = new DecisionCache({
    engine,
    api,
    storeId: rt.storeId,
    modelId: () => engine.authorizationModelId,
    model: rt.model,
    registry,
    ...decisionCacheSettings(config),
    onEvent: (event, detail) => log.warn({ event, ...detail }, 'decision cache'),
  });
  await cache.start();
  const authorizer = config.CACHE_ENABLED ? cache.authorizer : engine;

  const { issuers, devIssuer } = await resolveTrustedIssuers(config);
  let demoUsers: string[] | undefined;
  const verifier = createTokenVerifier({ issuers, clockToleranceS: config.AUTH_CLOCK_TOLERANCE_S, tokenCacheMax: config.AUTH_TOKEN_CACHE_MAX });
  const authenticateStage = authenticate(verifier);
  const normaliseStage = normalise({ maxPathLength: config.MAX_PATH_LENGTH, maxHeaderBytes: config.MAX_HEADER_BYTES });
  const signer = await createAssertionSigner({
    audience: config.ASSERTION_AUDIENCE,
    ttlSeconds: config.ASSERTION_TTL_S,
    keyFile: join(config.TIERGATE_DATA_DIR, ASSERTION_KEY_FILE),
  });
  countsMetric(
    metrics.registry,
    'tiergate_token_verifications_total',
    'Bearer tokens by how they were checked: cached (verified earlier, still valid), verified (signature and claims checked now), failed (refused, or the issuer keys unavailable)',
    'result',
    verifier.counts,
  );
  countsMetric(metrics.registry, 'tiergate_assertions_total', 'Identity assertions attached to forwarded requests: reused (signed earlier for the same subject, scope, tenants, method and path) or signed now', 'source', signer.counts);

  await migrateAdmin(rt.db);
  const denialAudit = createDenialAudit({
    db: rt.db,
    onError: (err, lost) => log.error({ err: err instanceof Error ? err.message : String(err), lost }, 'gateway denials not audited'),
  });
  // Allowed requests are counted in memory; whether each (subject, node) was reached
  // from above, or through break-glass, is resolved and written in the background.
  const crossLevelAudit = createCrossLevelAudit({
    db: rt.db,
    resolver: createRoleSourceResolver({ db: rt.db, engine: createEngine(fga), versions: cache.versions }),
    onError: (err, lost) => log.error({ err: err instanceof Error ? err.message : String(err), lost }, 'cross-level accesses not audited'),
  });
  // The shadow policy compares with the policy in force when each request was matched.
  const enforced = () => {
    const snapshot = policy.current();
    return { policy: snapshot.value.policy, file: config.POLICY_FILE, version: snapshot.version };
  };
  const shadow = candidate && new ShadowPolicy({ enforced, candidate, sampleRate: config.SHADOW_SAMPLE_RATE, authorizer, registry, log: log.child({ component: 'shadow-policy' }) });
  if (shadow) log.info({ enforced: enforced().version, candidate: candidate.version, file: candidate.file, sampleRate: shadow.sampleRate }, 'shadow policy evaluated beside the enforced one');
  const since = new Date().toISOString();
  const shadowSummary = shadow ? () => shadow.summary() : () => shadowOffSummary((({ file, version }) => ({ file, version }))(enforced()), since);
  const settingsClaims = createSettingsClaims({ db: rt.db, registry: settings, hierarchy: cache.hierarchy, versions: cache.versions });
  const admin = createAdminApp({
    fga,
    db: rt.db,
    invalidator: cache.invalidator,
    authenticate: authenticateStage,
    log,
    settings,
    shadowSummary,
    // What the policy in force makes of a request line (the console's Why page): normalise + match, nothing forwarded.
    mapRequest: (method, target) => {
      const canonical = canonicaliseRequest(method, target, config.MAX_PATH_LENGTH);
      if (!canonical.ok) throw refusalProblem(canonical.refusal);
      const d = matchedRequest(policy.current().value.policy, canonical.value);
      return { method, path: canonical.value.path, rule: d.ruleId, permission: d.permission, object: d.object };
    },
    reloadPolicy: async () => {
      const before = policy.current().version;
      const o = await policy.reload('admin');
      rt.onAdminReload?.();
      return { result: o.result, version: o.snapshot.version, previousVersion: before, ...(o.result === 'refused' ? { error: o.error } : {}) };
    },
  });

  const app = createGatewayApp({
    logger: log,
    metrics,
    trustedProxies,
    normalise: normaliseStage,
    authenticate: authenticateStage,
    matchPolicy: shadow ? shadow.wrap(policyStage(policy)) : policyStage(policy),
    edgePolicy: edgePolicy({
      settings: (scope) => settingsClaims.claimFor(scope),
      trustedProxies,
      metrics,
      mfaAcrValues: config.AUTH_MFA_ACR_VALUES,
    }),
    // Counted in the replicas' Redis; each process alone while Redis is away (or unset).
    rateLimit: rateLimit({
      settingsFor: (scope) => settingsClaims.claimFor(scope),
      counter: createRequestCounter({ ...(cache.requestRedis ? { redis: cache.requestRedis } : {}), keyPrefix: `tg:${rt.storeId}:rl` }),
      onOutcome: (outcome) => metrics.countEdgePolicy('rate_limit', outcome),
    }),
    authorizer,
    denyReasonHeader: config.DENY_REASON_HEADER,
    onDecision: observeDecision(metrics),
    // Counted in memory and written in the background, once a second per principal, rule,
    // node and minute: the audit trail neither slows the refusal down nor grows per request.
    onDenied: (denied) => denialAudit.record({ ...denied, actor: denied.subject, status: 403 }),
    // One map update per allowed request (proxy and forward-auth; AuthZEN answers are decisions, not accesses).
    onAllowed: (allowed) => crossLevelAudit.record(allowed),
    forward: {
      upstreams: [],
      routes: upstreamRoutes,
      signer,
      trustedProxies,
      resolveTenants: async (scope) =>
        (await cache.hierarchy.tenantsUnder(`${scope.type}:${scope.id}`)).map((t) => t.slice('tenant:'.length)).sort(),
      settings: (scope) => settingsClaims.claimFor(scope),
    },
    ...(config.FORWARD_AUTH_PREFIX
      ? {
          forwardAuth: {
            prefix: config.FORWARD_AUTH_PREFIX,
            trustedProxies,
            maxPathLength: config.MAX_PATH_LENGTH,
            maxHeaderBytes: config.MAX_HEADER_BYTES,
            methodHeader: config.FORWARD_AUTH_METHOD_HEADER.toLowerCase(),
            uriHeader: config.FORWARD_AUTH_URI_HEADER.toLowerCase(),
          },
        }
      : {}),
    admin,
    authzen: createAuthzenApp({
      model: rt.model,
      authorizer,
      normalise: normaliseStage,
      authenticate: authenticateStage,
      publicUrl: config.GATEWAY_PUBLIC_URL,
      listObjects: async (user, relation, type) =>
        (await fga.listObjects({ user, relation, type }, { consistency: ConsistencyPreference.HigherConsistency })).objects,
      log,
      onDecision: observeDecision(metrics),
    }),
    assertionJwks: signer.jwks,
    ...(devIssuer ? { devIssuerJwks: devIssuer.jwks } : {}),
    ...(devIssuer ? { devOidc: devOidcApp({ keys: devIssuer, audience: config.DEV_ISSUER_AUDIENCE, users: () => (demoUsers ??= hierarchyUsers()) }) } : {}),
    console: consoleApp({ signIn: consoleSignIn(config, devIssuer !== undefined) }),
    readiness: () => [
      {
        name: 'openfga',
        check: async () => {
          await fga.readAuthorizationModel({ authorizationModelId: engine.authorizationModelId });
          return `model ${engine.authorizationModelId} pinned`;
        },
      },
      ...upstreamReadiness(currentUpstreams(policy)),
      policyReadiness(policy),
      {
        name: 'decision-cache',
        optional: true,
        check: async () => {
          const s = cache.status();
          return s.redis === 'down' ? false : `redis ${s.redis}, l1 ${s.l1}`;
        },
      },
    ],
  });

  const listener = getRequestListener(app.fetch, { errorHandler: requestErrorResponse });
  const server = createServer(
    // Leave Node's own header limit above ours so oversized headers get our problem+json 400.
    { maxHeaderSize: Math.max(16384, config.MAX_HEADER_BYTES * 2) },
    // The listener answers every error itself (problem+json via errorHandler, else a 500).
    (req, res) => void listener(req, res),
  );
  // Node's own default (5 s) is shorter than most clients' idle timeouts, and a client that
  // does not honour the `Keep-Alive: timeout` hint (Go's net/http, most load balancers) then
  // sends requests on connections the gateway is closing at that moment: a PUT or DELETE
  // fails with a reset (only idempotent requests are retried by such clients).
  server.keepAliveTimeout = config.GATEWAY_KEEPALIVE_TIMEOUT_S * 1000;
  server.on('clientError', (_err, socket) => {
    if (socket.writable) socket.end(clientErrorResponse());
    else socket.destroy();
  });
  const addr = await listen(server, config.GATEWAY_PORT, config.GATEWAY_HOST);
  const url = `http://${config.GATEWAY_HOST}:${addr.port}`;

  let metricsServer: Server | undefined;
  let metricsUrl: string | undefined;
  if (config.METRICS_PORT !== 0 && rt.metricsListener !== false) {
    metricsServer = createServer((req, res) => {
      if (req.url !== '/metrics') {
        res.writeHead(404).end();
        return;
      }
      registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
        () => res.writeHead(500).end(),
      );
    });
    const maddr = await listen(metricsServer, config.METRICS_PORT, config.METRICS_HOST);
    metricsUrl = `http://${config.METRICS_HOST}:${maddr.port}/metrics`;
  }

  return {
    url,
    ...(metricsUrl ? { metricsUrl } : {}),
    assertionJwks: signer.jwks,
    registry,
    cache,
    policy,
    ...(shadow ? { shadow } : {}),
    async close() {
      policy.close();
      await Promise.all([closeServer(server), metricsServer ? closeServer(metricsServer) : Promise.resolve()]);
      await Promise.all([denialAudit.close(), crossLevelAudit.close()]);
      await shadow?.settled();
      await cache.close();
      await api.close();
    },
  };
}

