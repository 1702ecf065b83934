// model.fga -> the JSON OpenFGA takes, via @openfga/syntax-transformer, plus a
// content hash over a canonical form so bootstrap writes a model only when it changed.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { transformer } from '@openfga/syntax-transformer';
import type { AuthorizationModel, WriteAuthorizationModelRequest } from '@openfga/sdk';
import { REPO_ROOT } from '../shared/repo-root.js';

export const MODEL_FILE = join(REPO_ROOT, 'model.fga');

export interface LoadedModel {
  request: WriteAuthorizationModelRequest;
  hash: string;
}

/**
 * A field the server and the transformer may disagree on while meaning the same:
 * OpenFGA answers with every proto3 default filled in (`""`, `null`, `[]`), the
 * transformer leaves them out. Empty objects are NOT defaults: `this: {}` and
 * `wildcard: {}` carry meaning (`[user]` and `[user:*]` must hash apart).
 */
function isProtoDefault(v: unknown): boolean {
  return v === undefined || v === null || v === '' || (Array.isArray(v) && v.length === 0);
}

/** JSON with sorted keys and no proto3 default values: equal models give equal strings. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => !isProtoDefault(v))
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** Hash of what decides behaviour: schema version, type definitions, conditions. */
export function modelHash(model: Pick<AuthorizationModel, 'schema_version' | 'type_definitions' | 'conditions'>): string {
  const body = canonicalJson({
    schema_version: model.schema_version,
    type_definitions: model.type_definitions,
    conditions: model.conditions ?? {},
  });
  return createHash('sha256').update(body).digest('hex');
}

export function parseModel(dsl: string): LoadedModel {
  const request = transformer.transformDSLToJSONObject(dsl) as unknown as WriteAuthorizationModelRequest;
  return { request, hash: modelHash(request) };
}

export function loadModel(file = MODEL_FILE): LoadedModel {
  return parseModel(readFileSync(file, 'utf8'));
}
