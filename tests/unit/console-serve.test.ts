// The console's static serving: only the bundle's files, the page for every other
// path, the strict CSP on each, and the sign-in settings the page reads.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Hono } from 'hono';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { renderGatewayError } from '../../src/gateway/app.js';
import type { GatewayEnv } from '../../src/gateway/types.js';
import { consoleApp, consoleCsp, consoleSignIn, hierarchyUsers } from '../../src/server/console.js';
import { tempDir, useCleanup } from '../support/cleanup.js';

useCleanup();

function bundle(): string {
  const dir = tempDir('tiergate-console-dist-');
  mkdirSync(join(dir, 'assets'));
  writeFileSync(join(dir, 'index.html'), '<!doctype html><title>console</title>');
  writeFileSync(join(dir, 'assets', 'index-abc.js'), 'console.log(1)');
  return dir;
}

function app(distDir: string, signIn = consoleSignIn(loadConfig({}), true)): Hono<GatewayEnv> {
  const a = new Hono<GatewayEnv>();
  a.route('/console', consoleApp({ signIn, distDir }));
  a.onError(renderGatewayError);
  return a;
}

describe('the console under /console', () => {
  it('serves the page for its own paths and hashed assets for a year, each under the CSP', async () => {
    const a = app(bundle());
    for (const path of ['/console/', '/console/why', '/console/tenant/acme-sales', '/console/callback']) {
      const res = await a.request(path);
      expect(res.status, path).toBe(200);
      expect(await res.text()).toContain('<title>console</title>');
      expect(res.headers.get('cache-control')).toBe('no-cache');
      expect(res.headers.get('content-security-policy')).toContain("script-src 'self'");
      expect(res.headers.get('referrer-policy')).toBe('no-referrer');
      expect(res.headers.get('x-frame-options')).toBe('DENY');
    }
    const js = await a.request('/console/assets/index-abc.js');
    expect(js.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(js.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect((await a.request('/console/assets/nope.js')).status).toBe(404);
    expect((await a.request('/console/assets/../index.html')).status).not.toBe(500);
  });

  it('answers 503 not-ready while the bundle is missing', async () => {
    const res = await app(join(tempDir(), 'none')).request('/console/');
    expect(res.status).toBe(503);
    expect(((await res.json()) as { type: string }).type).toBe('https://tiergate.dev/problems/not-ready');
  });

  it('tells the page how to sign in: the dev issuer, a configured provider, or not at all', async () => {
    const dev = await (await app(bundle()).request('/console/config.json')).json();
    expect(dev).toMatchObject({ mode: 'dev', clientId: 'tiergate-console', devIssuerPath: '/dev-issuer', apiDocs: '/admin/v1/docs' });
    const oidc = consoleSignIn(loadConfig({ CONSOLE_OIDC_ISSUER: 'https://idp.example/realms/acme', CONSOLE_OIDC_CLIENT_ID: 'console' }), true);
    expect(oidc).toEqual({ mode: 'oidc', issuer: 'https://idp.example/realms/acme', clientId: 'console', scope: 'openid' });
    expect(consoleSignIn(loadConfig({}), false).mode).toBe('off');
  });

  it("allows no other origin, except the identity provider's for the token exchange", () => {
    const dev = consoleCsp(consoleSignIn(loadConfig({}), true));
    expect(dev).not.toMatch(/https?:/);
    expect(dev).toContain("frame-ancestors 'none'");
    const oidc = consoleCsp(consoleSignIn(loadConfig({ CONSOLE_OIDC_ISSUER: 'https://idp.example/realms/acme' }), false));
    expect(oidc).toContain("connect-src 'self' https://idp.example;");
    expect(oidc).toContain("script-src 'self';");
  });

  it('offers the users the demo hierarchy names on the sign-in page', () => {
    expect(hierarchyUsers()).toEqual(['platform-ops', 'olivia', 'dana', 'sam', 'tom', 'uma']);
    expect(hierarchyUsers(join(tempDir(), 'missing.yaml'))).toEqual([]);
  });
});
