// Bootstrap against the run's real OpenFGA: store creation, model writes only on
// change (content hash), the pinned model id, and PLATFORM_ADMINS tuples.
import { randomUUID } from 'node:crypto';
import { describe, expect, inject, it } from 'vitest';
import type { OpenFgaClient } from '@openfga/sdk';
import { loadConfig } from '../../src/config.js';
import { bootstrap, PLATFORM_OBJECT, type BootstrapOptions } from '../../src/fga/bootstrap.js';
import { createFgaClient } from '../../src/fga/client.js';
import { MODEL_FILE, loadModel, modelHash, parseModel } from '../../src/fga/model.js';
import { readFileSync } from 'node:fs';

const apiUrl = () => inject('openfgaUrl');
const options = (extra: Partial<BootstrapOptions> = {}): BootstrapOptions => ({
  apiUrl: apiUrl(),
  apiToken: inject('openfgaToken'),
  storeName: `bootstrap-${randomUUID()}`,
  platformAdmins: [],
  timeoutMs: 5000,
  ...extra,
});
const storeClient = (storeId: string): OpenFgaClient => createFgaClient({ apiUrl: apiUrl(), apiToken: inject('openfgaToken'), storeId, timeoutMs: 5000 });

async function platformAdmins(client: OpenFgaClient): Promise<string[]> {
  const res = await client.read({ relation: 'admin', object: PLATFORM_OBJECT });
  return res.tuples.map((t) => t.key.user).sort();
}

async function modelIds(client: OpenFgaClient): Promise<string[]> {
  return (await client.readAuthorizationModels()).authorization_models.map((m) => m.id);
}

/** model.fga with one extra platform permission: a different model. */
function modelWithExtraRelation() {
  const dsl = readFileSync(MODEL_FILE, 'utf8').replace(
    '    define can_read_audit: admin\n\ntype organization',
    '    define can_read_audit: admin\n    define can_view_status: admin\n\ntype organization',
  );
  expect(dsl).toContain('can_view_status');
  return parseModel(dsl);
}

describe('bootstrap', () => {
  it('first run creates the store, writes model.fga, pins its id and makes the platform admins', async () => {
    const opts = options({ platformAdmins: ['alice'] });
    const result = await bootstrap(opts);

    expect(result).toMatchObject({ createdStore: true, wroteModel: true, modelHash: loadModel().hash });
    const client = storeClient(result.storeId);
    expect((await client.getStore()).name).toBe(opts.storeName);
    const latest = (await client.readLatestAuthorizationModel()).authorization_model;
    expect(latest?.id).toBe(result.authorizationModelId);
    // What the server hands back hashes like the local model.fga: the basis of "write only on change".
    expect(modelHash(latest!)).toBe(loadModel().hash);
    expect(await platformAdmins(client)).toEqual(['user:alice']);
    const check = await client.check(
      { user: 'user:alice', relation: 'can_create_organization', object: PLATFORM_OBJECT },
      { authorizationModelId: result.authorizationModelId },
    );
    expect(check.allowed).toBe(true);
  });

  it('is refused (401) by the shared OpenFGA without its preshared key: every test client sends it', async () => {
    await expect(bootstrap(options({ apiToken: undefined }))).rejects.toMatchObject({ statusCode: 401 });
  });

  it('second run with the same model writes nothing', async () => {
    const opts = options({ platformAdmins: ['alice'] });
    const first = await bootstrap(opts);
    const client = storeClient(first.storeId);
    const changesBefore = (await client.readChanges({ type: 'platform' })).changes.length;

    const second = await bootstrap(opts);

    expect(second).toEqual({ ...first, createdStore: false, wroteModel: false });
    expect(await modelIds(client)).toEqual([first.authorizationModelId]);
    expect(changesBefore).toBe(1);
    expect((await client.readChanges({ type: 'platform' })).changes).toHaveLength(1);
  });

  it('finds the store by name among many, and uses a configured store id as is', async () => {
    const opts = options();
    const first = await bootstrap(opts);
    const byId = await bootstrap({ ...opts, storeName: 'another-name', storeId: first.storeId });
    expect(byId).toMatchObject({ storeId: first.storeId, createdStore: false, wroteModel: false });
    await expect(bootstrap({ ...opts, storeId: '01ARZ3NDEKTSV4RRFFQ69G5FAV' })).rejects.toThrow();
  });

  it('a changed model writes a new model and pins the new id; the same change again writes nothing', async () => {
    const opts = options({ platformAdmins: ['alice'] });
    const original = await bootstrap(opts);
    const changed = modelWithExtraRelation();
    expect(changed.hash).not.toBe(original.modelHash);

    const afterChange = await bootstrap({ ...opts, model: changed });
    expect(afterChange).toMatchObject({ storeId: original.storeId, createdStore: false, wroteModel: true, modelHash: changed.hash });
    expect(afterChange.authorizationModelId).not.toBe(original.authorizationModelId);
    const client = storeClient(original.storeId);
    expect((await client.readLatestAuthorizationModel()).authorization_model?.id).toBe(afterChange.authorizationModelId);
    // The pinned id is the one holding the new relation.
    const allowed = await client.check(
      { user: 'user:alice', relation: 'can_view_status', object: PLATFORM_OBJECT },
      { authorizationModelId: afterChange.authorizationModelId },
    );
    expect(allowed.allowed).toBe(true);

    const again = await bootstrap({ ...opts, model: changed });
    expect(again).toMatchObject({ wroteModel: false, authorizationModelId: afterChange.authorizationModelId });

    // Going back to model.fga is a change too (latest differs), pinned anew.
    const back = await bootstrap(opts);
    expect(back.wroteModel).toBe(true);
    expect(new Set([original.authorizationModelId, afterChange.authorizationModelId, back.authorizationModelId]).size).toBe(3);
    expect(await modelIds(client)).toHaveLength(3);
  });

  it('tells [user] from [user:*]: a change only in a type restriction is a change', async () => {
    const opts = options();
    await bootstrap(opts);
    const wildcard = parseModel(readFileSync(MODEL_FILE, 'utf8').replace('    define member: [user]', '    define member: [user:*]'));
    expect(wildcard.hash).not.toBe(loadModel().hash);
    expect((await bootstrap({ ...opts, model: wildcard })).wroteModel).toBe(true);
  });
});

describe('bootstrap PLATFORM_ADMINS', () => {
  it('accepts `alice` and `user:alice` forms, as parsed from the environment', async () => {
    const { PLATFORM_ADMINS } = loadConfig({ PLATFORM_ADMINS: ' alice, user:bob ,' });
    expect(PLATFORM_ADMINS).toEqual(['alice', 'user:bob']);
    const result = await bootstrap(options({ platformAdmins: PLATFORM_ADMINS }));
    expect(await platformAdmins(storeClient(result.storeId))).toEqual(['user:alice', 'user:bob']);
  });

  it('writes one tuple when the same admin is named in both forms', async () => {
    const result = await bootstrap(options({ platformAdmins: ['alice', 'user:alice'] }));
    expect(await platformAdmins(storeClient(result.storeId))).toEqual(['user:alice']);
  });

  it('rewrites existing platform admins without a duplicate error, and adds new ones', async () => {
    const opts = options({ platformAdmins: ['alice'] });
    const first = await bootstrap(opts);
    await bootstrap(opts);
    await bootstrap({ ...opts, platformAdmins: ['user:alice', 'carol'] });
    expect(await platformAdmins(storeClient(first.storeId))).toEqual(['user:alice', 'user:carol']);
  });
});
