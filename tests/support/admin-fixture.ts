// The admin app on a real OpenFGA store and an in-memory PGlite, called with
// real signed tokens through the gateway's authenticate stage.
import { OpenAPIHono } from '@hono/zod-openapi';
import type { OpenFgaClient } from '@openfga/sdk';
import { expect } from 'vitest';
import { ADMIN_BASE_PATH, createAdminApp, migrateAdmin, type AdminDeps } from '../../src/admin/app.js';
import { openDb, type Db } from '../../src/db/index.js';
import type { DecisionInvalidator, TupleChange, WriteAnnouncement } from '../../src/authz/types.js';
import type { RequestEnv } from '../../src/authz/types.js';
import { createTestAuth, type TestAuth } from './auth.js';
import { createTestStore, type TestStore } from './fga.js';

/**
 * Records every tuplesChanged call. Each call completes only after a short delay,
 * and is recorded when it completes: a handler that answered without awaiting
 * the invalidation would leave the record missing when the response arrives.
 */
export class RecordingInvalidator implements DecisionInvalidator {
  readonly changes: TupleChange[] = [];
  modelChanges = 0;
  /** Nodes whose settings documents changed, in order, recorded on completion like tuple changes. */
  readonly settings: string[][] = [];
  /** Changes announced before their write, in order (the decision cache marks them for its poller). */
  readonly announced: TupleChange[] = [];
  /** What each recorded tuplesChanged call was given with its change: the announcement, if any. */
  readonly handles: Array<WriteAnnouncement | undefined> = [];
  private announcements = 0;
  async announce(change: TupleChange): Promise<WriteAnnouncement> {
    this.announced.push({ writes: [...change.writes], deletes: [...change.deletes] });
    return { id: String(++this.announcements) };
  }
  async tuplesChanged(change: TupleChange, announced?: WriteAnnouncement): Promise<void> {
    await new Promise((r) => setTimeout(r, 5));
    this.changes.push({ writes: [...change.writes], deletes: [...change.deletes] });
    this.handles.push(announced);
  }
  async modelChanged(): Promise<void> {
    this.modelChanges += 1;
  }
  async settingsChanged(nodes: readonly string[]): Promise<void> {
    await new Promise((r) => setTimeout(r, 5));
    this.settings.push([...nodes]);
  }
  /** Takes (and clears) what was recorded since the last call; the announcements and handles are cleared with it. */
  take(): TupleChange[] {
    this.announced.splice(0);
    this.handles.splice(0);
    return this.changes.splice(0, this.changes.length);
  }
}

export interface ApiResponse {
  status: number;
  contentType: string;
  // Response bodies are whatever JSON the API sent; tests assert on their shape.
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

export interface AdminFixture {
  app: OpenAPIHono<RequestEnv>;
  db: Db;
  store: TestStore;
  auth: TestAuth;
  invalidator: RecordingInvalidator;
  /** Calls the admin API as `sub` (a bare user id) — or without a token when sub is null. */
  call(sub: string | null, method: string, path: string, body?: unknown): Promise<ApiResponse>;
  close(): Promise<void>;
}

export interface FixtureOptions {
  platformAdmins?: string[];
  /** A different OpenFGA client than the test store's (e.g. one that points at a stopped server). */
  fga?: OpenFgaClient;
  store?: TestStore;
  /** Wraps the database the app sees (e.g. to stop OpenFGA at a precise moment). */
  wrapDb?: (db: Db) => Db;
  deps?: Partial<AdminDeps>;
}

export async function createAdminFixture(opts: FixtureOptions = {}): Promise<AdminFixture> {
  const [store, auth, db] = await Promise.all([
    opts.store ?? createTestStore({ platformAdmins: opts.platformAdmins ?? ['pat'] }),
    createTestAuth(),
    openDb({}),
  ]);
  await migrateAdmin(db);
  const invalidator = new RecordingInvalidator();
  const admin = createAdminApp({
    fga: opts.fga ?? store.client,
    db: opts.wrapDb ? opts.wrapDb(db) : db,
    invalidator,
    authenticate: auth.authenticate,
    ...opts.deps,
  });
  const app = new OpenAPIHono<RequestEnv>().route(ADMIN_BASE_PATH, admin);
  const tokens = new Map<string, string>();
  return {
    app,
    db,
    store,
    auth,
    invalidator,
    async call(sub, method, path, body) {
      const headers: Record<string, string> = {};
      if (sub !== null) {
        if (!tokens.has(sub)) tokens.set(sub, await auth.token(sub));
        headers.authorization = `Bearer ${tokens.get(sub)}`;
      }
      if (body !== undefined) headers['content-type'] = 'application/json';
      const res = await app.request(`${ADMIN_BASE_PATH}${path}`, {
        method,
        headers,
        ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
      });
      const contentType = res.headers.get('content-type') ?? '';
      const text = await res.text();
      return { status: res.status, contentType, body: contentType.includes('json') && text ? JSON.parse(text) : text };
    },
    close: () => db.close(),
  };
}

/** Asserts a call succeeded with `status`, showing the problem when it did not. */
export function expectStatus(res: ApiResponse, status: number): void {
  expect({ status: res.status, body: res.status === status ? 'ok' : res.body }).toEqual({ status, body: 'ok' });
}

/**
 * The shared test hierarchy:
 *
 *   organization:acme (admin olivia)            organization:globex (admin gina)
 *     division:emea (admin dana)                  division:gx
 *       division:emea-north (admin sam)             tenant:gx-sales
 *         tenant:north-sales
 *       division:emea-south
 *       tenant:emea-sales (admin tara, member uma)
 *       tenant:emea-support
 *     division:apac
 *       tenant:apac-sales
 */
export async function seedTree(fx: AdminFixture): Promise<void> {
  const ok = async (sub: string, method: string, path: string, body?: unknown, status = 201) => expectStatus(await fx.call(sub, method, path, body), status);
  await ok('pat', 'POST', '/organizations', { id: 'acme', name: 'Acme Group', admins: ['olivia'] });
  await ok('pat', 'POST', '/organizations', { id: 'globex', name: 'Globex', admins: ['gina'] });
  await ok('olivia', 'POST', '/organizations/acme/divisions', { id: 'emea', name: 'EMEA' });
  await ok('olivia', 'POST', '/organizations/acme/divisions', { id: 'apac', name: 'APAC' });
  await ok('olivia', 'POST', '/divisions/emea/divisions', { id: 'emea-north', name: 'EMEA North' });
  await ok('olivia', 'POST', '/divisions/emea/divisions', { id: 'emea-south', name: 'EMEA South' });
  await ok('olivia', 'POST', '/divisions/emea-north/tenants', { id: 'north-sales', name: 'North Sales' });
  await ok('olivia', 'POST', '/divisions/emea/tenants', { id: 'emea-sales', name: 'EMEA Sales' });
  await ok('olivia', 'POST', '/divisions/emea/tenants', { id: 'emea-support', name: 'EMEA Support' });
  await ok('olivia', 'POST', '/divisions/apac/tenants', { id: 'apac-sales', name: 'APAC Sales' });
  await ok('gina', 'POST', '/organizations/globex/divisions', { id: 'gx', name: 'Globex Ops' });
  await ok('gina', 'POST', '/divisions/gx/tenants', { id: 'gx-sales', name: 'Globex Sales' });
  await ok('olivia', 'PUT', '/divisions/emea/roles/admin/dana', undefined, 200);
  await ok('olivia', 'PUT', '/divisions/emea-north/roles/admin/sam', undefined, 200);
  await ok('olivia', 'PUT', '/tenants/emea-sales/roles/admin/tara', undefined, 200);
  await ok('olivia', 'PUT', '/tenants/emea-sales/roles/member/uma', undefined, 200);
  fx.invalidator.take();
}

/** Every audit row, oldest first, straight from the table. */
export async function auditRows(db: Db): Promise<{ actor: string; action: string; target: string; outcome: string; scope: string[]; request_id: string | null }[]> {
  const r = await db.query<{ actor: string; action: string; target: string; outcome: string; scope: string[]; request_id: string | null }>(
    'select actor, action, target, outcome, scope, request_id from admin_audit order by seq',
  );
  return r.rows;
}
