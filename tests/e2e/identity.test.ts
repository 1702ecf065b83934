// Forged identity never reaches the upstream: a real gateway forwards to a recording
// server, which shows exactly which header lines arrived. The one identity the
// upstream receives is the gateway's signed assertion, verified here with the JWKS
// the gateway serves. And the real tenant service, trusting that JWKS by URL,
// refuses anything but a valid assertion issued for the very request.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createLocalJWKSet, decodeJwt, generateKeyPair, importJWK, jwtVerify, SignJWT, UnsecuredJWT, type CryptoKey, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ASSERTION_KEY_FILE } from '../../src/gateway/assertion-signer.js';
import { ASSERTION_HEADER, GATEWAY_JWKS_PATH } from '../../src/shared/assertion.js';
import { PROBLEM_CONTENT_TYPE } from '../../src/shared/problem.js';
import { startTenantService, type RunningTenantService } from '../../src/tenant-service/server.js';
import { useCleanup } from '../support/cleanup.js';
import { call } from '../support/json-call.js';
import { sendRaw } from '../support/raw-http.js';
import { startRecordingUpstream, type RecordedRequest, type RecordingUpstream } from '../support/recording-upstream.js';
import { adminOk, startTestStack, type TestStack } from '../support/test-stack.js';

useCleanup();

let s: TestStack;
let upstream: RecordingUpstream;
let tenantService: RunningTenantService;
let tomToken: string;
/** A key the gateway has never seen: what an attacker can sign with. */
let attackerKey: CryptoKey;
/** The gateway's own assertion key, read from its data dir (only a test can do this). */
let gatewayKey: CryptoKey;
let gatewayKid: string;

const PATH = '/api/v1/tenants/t1/agents';

beforeAll(async () => {
  upstream = await startRecordingUpstream();
  s = await startTestStack({ platformAdmins: ['pat'], upstreamUrl: upstream.url, captureLogs: true });
  const ok = (sub: string, method: string, path: string, body?: unknown) => adminOk(s, sub, method, path, body);
  await ok('pat', 'POST', '/organizations', { id: 'acme', name: 'Acme', admins: ['olivia'] });
  await ok('olivia', 'POST', '/organizations/acme/divisions', { id: 'd1', name: 'D1' });
  await ok('olivia', 'POST', '/divisions/d1/tenants', { id: 't1', name: 'T1' });
  await ok('olivia', 'POST', '/divisions/d1/tenants', { id: 't2', name: 'T2' });
  await ok('olivia', 'PUT', '/tenants/t1/roles/admin/tom');
  tomToken = (await s.authHeader('tom')).slice('Bearer '.length);

  // The real tenant service, on its own in-memory database, trusting the gateway's JWKS by URL.
  tenantService = await startTenantService({ audience: s.config.ASSERTION_AUDIENCE, jwksUrl: `${s.gatewayUrl}${GATEWAY_JWKS_PATH}` });

  attackerKey = (await generateKeyPair('EdDSA', { crv: 'Ed25519' })).privateKey;
  const jwk = JSON.parse(readFileSync(join(s.dataDir, ASSERTION_KEY_FILE), 'utf8')) as JWK;
  gatewayKey = (await importJWK(jwk, 'EdDSA')) as CryptoKey;
  gatewayKid = jwk.kid!;
});

afterAll(async () => {
  await tenantService?.close();
});

/** Every header line the upstream received, names lower-cased with `_`/`.` folded to `-`. */
function lines(r: RecordedRequest): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (let i = 0; i < r.rawHeaders.length; i += 2) out.push([r.rawHeaders[i]!.toLowerCase().replace(/[_.]/g, '-'), r.rawHeaders[i + 1]!]);
  return out;
}
const valuesOf = (r: RecordedRequest, name: string) => lines(r).filter(([n]) => n === name).map(([, v]) => v);

async function forgedAssertion(sub: string, tenant: string, method: string, path: string): Promise<string> {
  return new SignJWT({ scope: { type: 'tenant', id: tenant }, tenants: [tenant], htm: method, htu: path })
    .setProtectedHeader({ alg: 'EdDSA', kid: gatewayKid })
    .setIssuer('tiergate')
    .setAudience(s.config.ASSERTION_AUDIENCE)
    .setSubject(sub)
    .setIssuedAt()
    .setExpirationTime('1m')
    .sign(attackerKey);
}

async function gatewayJwks(): Promise<ReturnType<typeof createLocalJWKSet>> {
  const res = await fetch(`${s.gatewayUrl}${GATEWAY_JWKS_PATH}`);
  expect(res.status).toBe(200);
  return createLocalJWKSet((await res.json()) as { keys: JWK[] });
}

describe('through the gateway: forged identity headers never reach the upstream', () => {
  it('strips every spelling and duplicate, and the only identity upstream is the gateway-signed assertion for the token subject', async () => {
    upstream.clear();
    const forged = await forgedAssertion('olivia', 't2', 'GET', '/api/v1/tenants/t2/agents');
    const res = await sendRaw(s.gatewayPort, `GET ${PATH}`, [
      `Authorization: Bearer ${tomToken}`,
      'X-User-Id: olivia',
      'X-User-Id: pat',
      'X-Tenant-Id: t2',
      'X-Forwarded-User: olivia',
      'X-Remote-User: olivia',
      'X-Authenticated-User: olivia',
      `X-Tiergate-Assertion: ${forged}`,
      `X-Tiergate-Assertion: ${forged}`,
      'X-Tiergate-Subject: olivia',
      'X-Tiergate-Tenants: t2',
      'X_User_Id: olivia',
      'x.tenant.id: t2',
      'X_Tiergate_Subject: olivia',
      `x.tiergate.assertion: ${forged}`,
      'X-Auth-Request-User: olivia',
      'Forwarded: for=10.0.0.66;host=evil.example;proto=https',
      'X-Forwarded-For: 10.0.0.66',
      'X-Forwarded-Host: evil.example',
      'X-Forwarded-Proto: https',
      'X-Real-IP: 10.0.0.66',
      'X-Request-Id: forged-request-id',
      // Hop-by-hop names may not remove what the gateway sets.
      'Connection: close, x-tiergate-assertion, x-tiergate-subject, x-request-id',
    ]);
    expect(res.status, res.body).toBe(200);
    expect(upstream.received).toHaveLength(1);
    const got = upstream.received[0]!;
    expect(`${got.method} ${got.url}`).toBe(`GET ${PATH}`);

    const names = lines(got).map(([n]) => n);
    const forbidden = names.filter(
      (n) =>
        ['x-user-id', 'x-tenant-id', 'x-forwarded-user', 'x-remote-user', 'x-authenticated-user', 'forwarded', 'x-real-ip', 'authorization'].includes(n) ||
        n.startsWith('x-auth-request-') ||
        (n.startsWith('x-tiergate-') && n !== ASSERTION_HEADER && n !== 'x-tiergate-subject'),
    );
    expect(forbidden, `the upstream received ${names.join(', ')}`).toEqual([]);
    // Exactly one of each header the gateway sets, with the gateway's values.
    expect(valuesOf(got, 'x-tiergate-subject')).toEqual(['tom']);
    expect(valuesOf(got, 'x-request-id')).toEqual([res.headers['x-request-id']]);
    expect(res.headers['x-request-id']).not.toBe('forged-request-id');
    // X-Forwarded-* are the gateway's own account of the real connection (the client's were dropped).
    expect(valuesOf(got, 'x-forwarded-for')).toEqual(['127.0.0.1']);
    expect(valuesOf(got, 'x-forwarded-host')).toEqual([`127.0.0.1:${s.gatewayPort}`]);
    expect(valuesOf(got, 'x-forwarded-proto')).toEqual(['http']);
    expect(valuesOf(got, 'x-forwarded-port')).toEqual([String(s.gatewayPort)]);
    const assertions = valuesOf(got, ASSERTION_HEADER);
    expect(assertions).toHaveLength(1);
    expect(assertions[0]).not.toBe(forged);

    // The assertion verifies with the key set the gateway serves, and says what the token said.
    const { payload, protectedHeader } = await jwtVerify(assertions[0]!, await gatewayJwks(), {
      issuer: 'tiergate',
      audience: s.config.ASSERTION_AUDIENCE,
      algorithms: ['EdDSA'],
    });
    expect(protectedHeader.alg).toBe('EdDSA');
    expect(payload).toMatchObject({ sub: 'tom', scope: { type: 'tenant', id: 't1' }, tenants: ['t1'], htm: 'GET', htu: PATH });
    expect(payload.exp! - payload.iat!).toBe(s.config.ASSERTION_TTL_S);
    // …and the forged one does not.
    await expect(jwtVerify(forged, await gatewayJwks(), { issuer: 'tiergate', audience: s.config.ASSERTION_AUDIENCE })).rejects.toThrow();
  });

  it('identity headers are no substitute for a token: 401, nothing forwarded', async () => {
    upstream.clear();
    const forged = await forgedAssertion('tom', 't1', 'GET', PATH);
    const results = await Promise.all([
      sendRaw(s.gatewayPort, `GET ${PATH}`, ['X-User-Id: tom', 'X-Tenant-Id: t1']),
      sendRaw(s.gatewayPort, `GET ${PATH}`, [`X-Tiergate-Assertion: ${forged}`, 'X-Tiergate-Subject: tom']),
      sendRaw(s.gatewayPort, `GET ${PATH}`, ['X-Forwarded-User: tom', 'Forwarded: for=127.0.0.1']),
    ]);
    expect(results.map((r) => [r.status, r.headers['content-type']])).toEqual(Array(3).fill([401, PROBLEM_CONTENT_TYPE]));
    expect(upstream.received).toEqual([]);
  });

  it('an identity header cannot move a request to another tenant: the decision follows the token', async () => {
    upstream.clear();
    const res = await sendRaw(s.gatewayPort, 'GET /api/v1/tenants/t2/agents', [`Authorization: Bearer ${tomToken}`, 'X-Tenant-Id: t2', 'X-User-Id: olivia', 'X-Tiergate-Subject: olivia']);
    expect(res.status).toBe(403);
    expect(res.json.permission).toBe('can_read_operational');
    expect(upstream.received).toEqual([]);
  });

  it('the request log names the principal and never holds the token or the assertion', async () => {
    upstream.clear();
    const res = await sendRaw(s.gatewayPort, `GET ${PATH}?limit=5`, [`Authorization: Bearer ${tomToken}`]);
    expect(res.status).toBe(200);
    const [assertion] = valuesOf(upstream.received[0]!, ASSERTION_HEADER);
    expect(assertion).toBeDefined();
    const requestLines = s.logs.filter((l) => l.includes('"msg":"request"'));
    expect(requestLines.filter((l) => l.includes('"principal":"user:tom"') && l.includes(`"path":"${PATH}"`)).length).toBeGreaterThan(0);
    expect(s.logs.filter((l) => l.includes(tomToken) || l.includes(assertion!))).toEqual([]);
  });
});

describe('directly at the tenant service: nothing but a valid assertion for this very request', () => {
  /** A real assertion, captured from what the gateway forwarded for tom's GET of PATH. */
  async function capturedAssertion(): Promise<string> {
    upstream.clear();
    const res = await sendRaw(s.gatewayPort, `GET ${PATH}`, [`Authorization: Bearer ${tomToken}`]);
    expect(res.status).toBe(200);
    const [value] = valuesOf(upstream.received[0]!, ASSERTION_HEADER);
    expect(value).toBeDefined();
    return value!;
  }

  async function direct(method: string, path: string, headers: Record<string, string>) {
    const res = await call(tenantService.url, method, path, { headers });
    return { status: res.status, type: res.body?.type as string | undefined, detail: res.body?.detail as string | undefined, contentType: res.contentType };
  }

  it('accepts the assertion the gateway issued, for the same method and path (the control)', async () => {
    const assertion = await capturedAssertion();
    const res = await call(tenantService.url, 'GET', PATH, { headers: { [ASSERTION_HEADER]: assertion } });
    expect(res.status, res.text).toBe(200);
    expect(res.body).toEqual({ items: [], nextCursor: null });
  });

  it('refuses a call without an assertion, even with identity headers', async () => {
    const forgedOnly: Record<string, string>[] = [{}, { 'x-user-id': 'tom', 'x-tenant-id': 't1', 'x-tiergate-subject': 'tom', 'x-forwarded-user': 'tom' }];
    for (const headers of forgedOnly) {
      expect(await direct('GET', PATH, headers)).toEqual({
        status: 401,
        type: 'https://tiergate.dev/problems/invalid-assertion',
        detail: 'missing gateway assertion',
        contentType: PROBLEM_CONTENT_TYPE,
      });
    }
  });

  it('refuses an expired assertion, even one signed with the gateway key', async () => {
    const now = Math.floor(Date.now() / 1000);
    const expired = await new SignJWT({ scope: { type: 'tenant', id: 't1' }, tenants: ['t1'], htm: 'GET', htu: PATH })
      .setProtectedHeader({ alg: 'EdDSA', kid: gatewayKid })
      .setIssuer('tiergate')
      .setAudience(s.config.ASSERTION_AUDIENCE)
      .setSubject('tom')
      .setIssuedAt(now - 600)
      .setExpirationTime(now - 120)
      .sign(gatewayKey);
    expect(await direct('GET', PATH, { [ASSERTION_HEADER]: expired })).toMatchObject({ status: 401, detail: 'assertion expired' });
    // The same claims, not expired, are accepted: only the expiry was wrong.
    const fresh = await new SignJWT({ scope: { type: 'tenant', id: 't1' }, tenants: ['t1'], htm: 'GET', htu: PATH })
      .setProtectedHeader({ alg: 'EdDSA', kid: gatewayKid })
      .setIssuer('tiergate')
      .setAudience(s.config.ASSERTION_AUDIENCE)
      .setSubject('tom')
      .setIssuedAt(now)
      .setExpirationTime(now + 60)
      .sign(gatewayKey);
    expect((await direct('GET', PATH, { [ASSERTION_HEADER]: fresh })).status).toBe(200);
  });

  it('refuses an assertion signed by another key, unsigned, or for another audience', async () => {
    const foreign = await forgedAssertion('tom', 't1', 'GET', PATH);
    expect(await direct('GET', PATH, { [ASSERTION_HEADER]: foreign })).toMatchObject({ status: 401, detail: 'assertion signature not from the gateway' });

    const unsigned = new UnsecuredJWT({ scope: { type: 'tenant', id: 't1' }, tenants: ['t1'], htm: 'GET', htu: PATH })
      .setIssuer('tiergate')
      .setAudience(s.config.ASSERTION_AUDIENCE)
      .setSubject('tom')
      .setIssuedAt()
      .setExpirationTime('1m')
      .encode();
    expect((await direct('GET', PATH, { [ASSERTION_HEADER]: unsigned })).status).toBe(401);

    const otherAudience = await new SignJWT({ scope: { type: 'tenant', id: 't1' }, tenants: ['t1'], htm: 'GET', htu: PATH })
      .setProtectedHeader({ alg: 'EdDSA', kid: gatewayKid })
      .setIssuer('tiergate')
      .setAudience('another-service')
      .setSubject('tom')
      .setIssuedAt()
      .setExpirationTime('1m')
      .sign(gatewayKey);
    expect(await direct('GET', PATH, { [ASSERTION_HEADER]: otherAudience })).toMatchObject({ status: 401, detail: 'assertion claim "aud" rejected' });

    // The client's bearer token is not an assertion either.
    expect((await direct('GET', PATH, { [ASSERTION_HEADER]: tomToken })).status).toBe(401);
  });

  it('refuses a real gateway assertion replayed for another method or path', async () => {
    const assertion = await capturedAssertion();
    expect(decodeJwt(assertion)).toMatchObject({ htm: 'GET', htu: PATH });
    const replays = await Promise.all([
      direct('DELETE', `${PATH}/a1`, { [ASSERTION_HEADER]: assertion }),
      direct('POST', PATH, { [ASSERTION_HEADER]: assertion, 'content-type': 'application/json' }),
      direct('GET', '/api/v1/tenants/t2/agents', { [ASSERTION_HEADER]: assertion }),
      direct('GET', '/api/v1/tenants/t1/reports/summary', { [ASSERTION_HEADER]: assertion }),
    ]);
    for (const r of replays) expect(r).toMatchObject({ status: 401, detail: 'assertion was issued for another request' });
  });

  it('refuses two assertion headers, even two valid ones', async () => {
    const assertion = await capturedAssertion();
    const res = await sendRaw(Number(new URL(tenantService.url).port), `GET ${PATH}`, [`${ASSERTION_HEADER}: ${assertion}`, `${ASSERTION_HEADER}: ${assertion}`]);
    expect(res.status).toBe(401);
  });
});
