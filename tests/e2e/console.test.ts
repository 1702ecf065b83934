// The web console in a real browser: Debian's Chromium (playwright-core) against the
// real `npm start -- --demo` stack. Every demo role signs in through the development
// issuer's authorization code + PKCE flow, sees exactly its subtree, does one thing the
// model allows and one it refuses, and the audit shows both. Screenshots of the main
// pages land in test-results/console/.
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useCleanup, tempDir } from '../support/cleanup.js';
import { launchChromium, openPage, screenshot, type ConsolePage } from '../support/browser.js';
import { call } from '../support/json-call.js';
import { npmRun, npmStartEnv, startMain, type NpmStart } from '../support/npm-start.js';

useCleanup();

let main: NpmStart;
let env: NodeJS.ProcessEnv;
let browser: Browser;
let base: string;
const opened: ConsolePage[] = [];

beforeAll(async () => {
  env = await npmStartEnv(tempDir('tiergate-console-'));
  main = await startMain(env, ['--demo'], 110_000);
  expect(main.readyLine !== undefined && main.exitCode() === null, `the demo stack did not start:\n${main.output()}`).toBe(true);
  base = main.gatewayUrl;
  browser = await launchChromium();
}, 180_000);

afterAll(() => {
  // A CSP violation or an uncaught error in any page fails the file.
  const errors = opened.flatMap((p) => p.errors).filter((e) => !e.startsWith('Failed to load resource'));
  expect(errors).toEqual([]);
});

/** A fresh browser context, every request it makes recorded (they must all stay on the gateway's origin). */
async function fresh(width?: number): Promise<ConsolePage & { requests: string[] }> {
  const p = await openPage(browser, width);
  const requests: string[] = [];
  p.page.on('request', (r) => requests.push(r.url()));
  opened.push(p);
  return { ...p, requests };
}

/** Signs in through the console: Sign in → the dev issuer's page → pick the user → back, token in memory. */
async function signIn(user: string, width?: number): Promise<ConsolePage & { requests: string[] }> {
  const p = await fresh(width);
  await p.page.goto(`${base}/console/`);
  await p.page.getByRole('button', { name: 'Sign in' }).click();
  await p.page.waitForURL(/\/dev-issuer\/authorize\?/);
  await p.page.getByRole('button', { name: user, exact: true }).click();
  await expect.poll(() => p.page.getByTestId('user').textContent().catch(() => null), { timeout: 20_000 }).toBe(user);
  await p.page.getByRole('list', { name: 'Hierarchy' }).waitFor();
  return p;
}

/** The ids of the nodes in the explorer tree. */
async function treeIds(page: Page): Promise<string[]> {
  const texts = await page.locator('ul.tree a.node .muted').allTextContents();
  return texts.map((t) => t.replace(/[()]/g, '')).sort();
}

/** In-app navigation (as a link would): the page is not reloaded, so the in-memory token stays. */
async function go(page: Page, path: string): Promise<void> {
  await page.evaluate((p) => {
    history.pushState(null, '', p);
    dispatchEvent(new PopStateEvent('popstate'));
  }, path);
}

async function openNode(page: Page, id: string): Promise<void> {
  await page.locator('ul.tree a.node', { hasText: `(${id})` }).click();
  await page.locator('#node-h').waitFor();
}

async function expectRefused(page: Page, status = 403): Promise<string> {
  const alert = page.getByRole('alert');
  await alert.waitFor();
  const text = (await alert.textContent()) ?? '';
  expect(text).toContain(`(${status})`);
  return text;
}

describe('the console (Chromium, npm start -- --demo)', () => {
  it('serves a bundled page under a strict CSP, signs in with code + PKCE, keeps the token out of storage and loads nothing from elsewhere', async () => {
    const res = await fetch(`${base}/console/`);
    expect(res.status).toBe(200);
    const csp = res.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toMatch(/https?:/);
    expect(res.headers.get('referrer-policy')).toBe('no-referrer');

    const p = await fresh();
    await p.page.goto(`${base}/console/`);
    await p.page.getByRole('button', { name: 'Sign in' }).waitFor();
    await screenshot(p.page, '01-sign-in');
    await p.page.getByRole('button', { name: 'Sign in' }).click();
    await p.page.waitForURL(/\/dev-issuer\/authorize\?/);
    const authorize = new URL(p.page.url());
    expect(authorize.searchParams.get('code_challenge_method')).toBe('S256');
    expect(authorize.searchParams.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    await screenshot(p.page, '02-dev-issuer-sign-in');
    // Keyboard only: the user buttons are reachable with Tab and pressed with Enter.
    await p.page.getByRole('button', { name: 'olivia', exact: true }).focus();
    await p.page.keyboard.press('Enter');
    await expect.poll(() => p.page.getByTestId('user').textContent().catch(() => null), { timeout: 20_000 }).toBe('olivia');
    expect(new URL(p.page.url()).search, 'the code is gone from the address bar').toBe('');
    const stored = await p.page.evaluate(() => ({ local: localStorage.length, session: sessionStorage.length, cookie: document.cookie }));
    expect(stored).toEqual({ local: 0, session: 0, cookie: '' });
    const origins = new Set(p.requests.map((u) => new URL(u).origin));
    expect([...origins]).toEqual([base]);
    await p.context.close();
  }, 120_000);

  it('dana (division admin emea) sees the EMEA subtree only, grants a tenant admin in emea-north, the Why page explains tom on acme-sales, the audit shows the grant', async () => {
    const { page, context } = await signIn('dana');
    expect(await treeIds(page)).toEqual(['acme-sales', 'emea', 'emea-north', 'north-support']);
    await expect.poll(() => page.locator('ul.tree').textContent()).toContain('2 tenants');
    await screenshot(page, '03-explorer-dana');

    await openNode(page, 'north-support');
    await page.getByLabel('Grant').fill('nora');
    await page.getByLabel('role', { exact: true }).selectOption('admin');
    await page.getByRole('button', { name: 'Grant', exact: true }).click();
    await page.getByText('Granted admin to nora').waitFor();
    await page.getByRole('row', { name: /nora admin here/ }).waitFor();
    // Inherited from above: dana's own grant on emea shows as inherited.
    await page.getByRole('row', { name: /dana admin inherited from division:emea/ }).waitFor();
    await screenshot(page, '04-people-and-roles');

    await page.getByRole('link', { name: 'Why' }).click();
    await page.getByLabel('User', { exact: true }).fill('tom');
    await page.getByLabel('Request', { exact: true }).fill('GET /api/v1/tenants/acme-sales/agents');
    await page.getByRole('button', { name: 'Explain' }).click();
    const answer = page.locator('.panel h2');
    await answer.waitFor();
    expect(await answer.textContent()).toBe('Allowed: tom can_read_operational on tenant:acme-sales');
    expect(await page.locator('ol.reasons').textContent()).toContain('role admin on tenant:acme-sales — direct grant');
    await screenshot(page, '05-why');

    await page.getByRole('link', { name: 'Audit' }).click();
    const grant = page.getByRole('row', { name: /dana role\.grant tenant:north-support success/ });
    await grant.waitFor();
    await grant.getByText('details').click();
    expect(await grant.locator('table.diff').textContent()).toContain('"user:nora"');
    await screenshot(page, '06-audit');

    // Refused: a division outside her subtree, addressed directly.
    await go(page, '/console/division/apac');
    expect(await expectRefused(page)).toContain('Forbidden');
    await context.close();
  }, 180_000);

  it('sam (emea-north) sees his subdivision only, creates a tenant in it, and is refused a tenant beside it', async () => {
    const { page, context } = await signIn('sam');
    expect(await treeIds(page)).toEqual(['emea-north', 'north-support']);
    await openNode(page, 'emea-north');
    await page.getByLabel('Create').selectOption('tenant');
    await page.getByLabel('id', { exact: true }).fill('north-sales');
    await page.getByLabel('name', { exact: true }).fill('North Sales');
    await page.getByRole('button', { name: 'Create', exact: true }).click();
    await page.getByText('Created tenant north-sales').waitFor();
    // Not his to move or delete: the model says so, the console offers neither.
    expect(await page.getByRole('button', { name: 'Delete…' }).count()).toBe(0);
    await go(page, '/console/tenant/acme-sales');
    await expectRefused(page);
    await context.close();
  }, 120_000);

  it('tom (tenant admin acme-sales) sees his tenant only, grants a tenant user, and is refused another tenant', async () => {
    const { page, context } = await signIn('tom');
    expect(await treeIds(page)).toEqual(['acme-sales']);
    await openNode(page, 'acme-sales');
    const roles = await page.getByLabel('role', { exact: true }).locator('option').allTextContents();
    expect(roles).toEqual(['admin', 'member (tenant user)']);
    await page.getByLabel('Grant').fill('ursula');
    await page.getByLabel('role', { exact: true }).selectOption('member');
    await page.getByRole('button', { name: 'Grant', exact: true }).click();
    await page.getByText('Granted member to ursula').waitFor();
    await screenshot(page, '07-tenant-tom');
    await go(page, '/console/tenant/north-support');
    await expectRefused(page);
    await context.close();
  }, 120_000);

  it('uma (tenant user) sees her tenant and its settings read-only, no roles, and is refused another tenant and the audit', async () => {
    const { page, context } = await signIn('uma', 390);
    expect(await treeIds(page)).toEqual(['acme-sales']);
    await screenshot(page, '08-phone-explorer-uma');
    await openNode(page, 'acme-sales');
    await page.getByText('Only admins of this tenant see who holds roles here.').waitFor();
    await page.getByRole('table', { name: 'Effective settings at tenant:acme-sales' }).waitFor();
    expect(await page.getByRole('button', { name: /^Edit / }).count()).toBe(0);
    expect(await page.getByRole('button', { name: 'Grant' }).count()).toBe(0);
    await screenshot(page, '09-phone-tenant-uma');
    await go(page, '/console/tenant/apac-sales');
    await expectRefused(page);
    await page.getByRole('link', { name: 'Audit' }).click();
    await expectRefused(page);
    await context.close();
  }, 120_000);

  it('olivia (organization admin) sees all of acme, renames a tenant, previews and applies a setting, is refused the platform, and her audit shows every role', async () => {
    const { page, context } = await signIn('olivia');
    expect(await treeIds(page)).toEqual(['acme', 'acme-sales', 'apac', 'apac-sales', 'emea', 'emea-north', 'north-sales', 'north-support']);
    expect(await page.locator('ul.tree > li > .count').textContent()).toContain('4 tenants');

    await openNode(page, 'apac-sales');
    await page.getByLabel('New name').fill('APAC Sales Team');
    await page.getByRole('button', { name: 'Rename' }).click();
    await page.getByText('Renamed to APAC Sales Team').waitFor();

    await go(page, '/console/organization/acme');
    await page.locator('#node-h').waitFor();
    // The model gives organization delete to platform admins only.
    expect(await page.getByRole('button', { name: 'Delete…' }).count()).toBe(0);
    await page.getByRole('button', { name: 'Edit recording.retention_days' }).click();
    await page.getByLabel('recording.retention_days =').fill('400');
    await page.getByRole('button', { name: 'Preview' }).click();
    const preview = page.locator('.dialog', { hasText: 'Dry run' });
    await preview.waitFor();
    const previewText = (await preview.textContent()) ?? '';
    expect(previewText).toContain('tenant:apac-sales: recording.retention_days 365 → 400');
    expect(previewText).not.toContain('tenant:acme-sales');
    await screenshot(page, '10-settings-dry-run');
    await page.getByRole('button', { name: 'Apply' }).click();
    await page.getByText('Set recording.retention_days').waitFor();

    await page.getByRole('link', { name: 'Why' }).click();
    await page.getByLabel('a permission on an object').check();
    await page.getByLabel('User', { exact: true }).fill('olivia');
    await page.getByLabel('Permission', { exact: true }).selectOption('can_read_audit');
    await page.getByLabel('Object', { exact: true }).fill('platform:root');
    await page.getByRole('button', { name: 'Explain' }).click();
    await expectRefused(page);

    await page.getByRole('link', { name: 'Audit' }).click();
    await page.getByLabel('outcome').selectOption('denied');
    await page.getByRole('button', { name: 'Filter' }).click();
    for (const actor of ['dana', 'sam', 'tom', 'uma']) await page.getByRole('row', { name: new RegExp(`^\\S+ \\S+ ${actor} \\S+ \\S+ denied`) }).first().waitFor();
    await page.getByLabel('outcome').selectOption('success');
    await page.getByRole('button', { name: 'Filter' }).click();
    for (const row of [
      /dana role\.grant tenant:north-support success/,
      /sam tenant\.create tenant:north-sales success/,
      /tom role\.grant tenant:acme-sales success/,
      /olivia tenant\.rename tenant:apac-sales success/,
    ]) {
      await page.getByRole('row', { name: row }).first().waitFor();
    }
    await screenshot(page, '11-audit-olivia');
    await context.close();
  }, 180_000);

  it('the API reference is Swagger UI from this origin, not a CDN', async () => {
    const p = await fresh();
    await p.page.goto(`${base}/admin/v1/docs`);
    await p.page.getByText('tiergate admin API').first().waitFor();
    expect([...new Set(p.requests.map((u) => new URL(u).origin))]).toEqual([base]);
    await screenshot(p.page, '12-api-reference');
    await p.context.close();
  }, 120_000);

  it("answers the console's two questions: my permissions on a node, and what a request line maps to", async () => {
    const token = async (sub: string) => `Bearer ${(await npmRun('token', [sub], env)).stdout.trim()}`;
    const [tom, uma, dana] = await Promise.all(['tom', 'uma', 'dana'].map(token));
    const admin = `${base}/admin/v1`;
    const perms = async (auth: string, object: string) =>
      ((await call(admin, 'GET', `/me/permissions?object=${object}`, { auth })).body as { permissions: Record<string, boolean> }).permissions;
    expect(await perms(tom!, 'tenant:acme-sales')).toMatchObject({ can_assign_admin: true, can_assign_member: true, can_delete: false, can_view: true });
    expect(Object.values(await perms(tom!, 'tenant:apac-sales')).some(Boolean)).toBe(false);
    expect(await perms(uma!, 'tenant:acme-sales')).toMatchObject({ can_view: true, can_read_settings: true, can_assign_admin: false, can_write_settings: false });
    expect((await call(admin, 'GET', '/me/permissions?object=agent:acme-sales/1', { auth: tom! })).status).toBe(422);

    const explainLine = (auth: string, method: string, target: string) => call(admin, 'POST', '/check/request', { auth, body: { user: 'tom', method, target } });
    const ok = await explainLine(dana!, 'GET', '/api/v1/tenants/acme-sales/agents');
    expect(ok.status, ok.text).toBe(200);
    expect(ok.body).toMatchObject({
      allowed: true,
      permission: 'can_read_operational',
      object: 'tenant:acme-sales',
      request: { method: 'GET', path: '/api/v1/tenants/acme-sales/agents', permission: 'can_read_operational', object: 'tenant:acme-sales' },
      reasons: [{ role: 'admin', on: 'tenant:acme-sales', via: 'direct grant' }],
    });
    expect((await explainLine(dana!, 'POST', '/api/v1/tenants/north-support/queues')).body).toMatchObject({ allowed: false, missing: 'can_manage_resources' });
    expect((await explainLine(dana!, 'GET', '/api/v1/tenants/apac-sales/../acme-sales/agents')).body).toMatchObject({ status: 400, type: 'https://tiergate.dev/problems/dot-segment' });
    expect((await explainLine(dana!, 'GET', '/api/v1/nothing-here')).body).toMatchObject({ status: 404, type: 'https://tiergate.dev/problems/no-route' });
    expect((await explainLine(dana!, 'get', '/api/v1/tenants/acme-sales/agents')).status).toBe(422);
    // Explaining needs the audit reader's role on the node, as POST /check does.
    expect((await explainLine(uma!, 'GET', '/api/v1/tenants/acme-sales/agents')).status).toBe(403);
  }, 60_000);
});
