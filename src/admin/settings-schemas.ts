// The settings routes' schemas (docs/settings.md), for validation and the OpenAPI
// document. Entries are checked against the registry in the handler, so every bad key
// is reported by name (`body.settings.<key>.set`).
import { z } from '@hono/zod-openapi';
import { KEY_PATTERN } from '../settings/registry.js';

const Value = z.unknown().openapi({ description: 'A value of the key\'s type (see GET /settings/registry)', example: true });

export const SettingEntrySchema = z
  .object({
    set: Value.optional(),
    append: z.array(z.string()).optional(),
    remove: z.array(z.string()).optional(),
    reset: z.literal(true).optional(),
    lock: z.boolean().optional(),
  })
  .openapi('SettingEntry', {
    description:
      'One of: {set: value}, {append: [...], remove: [...]} (list-merged keys), {reset: true}, or {lock: true} alone; lock may accompany any of them (lockable keys, not on tenants).',
    example: { set: true, lock: true },
  });

/** Entries are objects whose shape the handler checks against the registry (all problems at once). */
export const DocumentBody = z
  .strictObject({
    settings: z.record(z.string(), z.unknown()).openapi({ example: { 'security.require_mfa': { set: true, lock: true }, timezone: { set: 'Europe/Berlin' } } }),
  })
  .openapi('SettingsDocumentBody');

export const KeyParam = z.string().regex(KEY_PATTERN, 'must be a setting key, e.g. security.require_mfa').openapi({ example: 'security.require_mfa' });

const StoredEntrySchema = z.object({ entry: SettingEntrySchema, author: z.string(), at: z.string() }).openapi('StoredSettingEntry');

export const DocumentSchema = z
  .object({ node: z.string(), entries: z.record(z.string(), StoredEntrySchema) })
  .openapi('SettingsDocument');

export const DocumentWriteResult = z
  .object({ node: z.string(), changed: z.array(z.string()), entries: z.record(z.string(), StoredEntrySchema) })
  .openapi('SettingsDocumentWrite');

const StepSchema = z
  .object({
    node: z.string(),
    op: z.enum(['set', 'merge', 'reset', 'lock']),
    lock: z.boolean(),
    author: z.string().nullable().openapi({ description: 'null when the caller may not read that node\'s settings' }),
    at: z.string().nullable(),
    set: Value.optional(),
    append: z.array(z.string()).optional(),
    remove: z.array(z.string()).optional(),
  })
  .openapi('SettingProvenanceStep');

export const EffectiveSchema = z
  .object({
    key: z.string(),
    value: Value,
    source: z.string().openapi({ description: 'The node whose entry decided the value, or `default`' }),
    locked: z
      .object({ by: z.string(), above: z.boolean() })
      .nullable()
      .openapi({ description: 'Which node locked the key; `above` when it is a node above this one (writes here get 409)' }),
    chain: z.array(StepSchema),
    overridden: z.array(z.object({ node: z.string(), author: z.string().nullable(), at: z.string() })),
  })
  .openapi('EffectiveSetting');

export const EffectiveList = z.object({ node: z.string(), path: z.array(z.string()), items: z.array(EffectiveSchema) }).openapi('EffectiveSettings');

export const DryRunSchema = z
  .object({
    node: z.string(),
    changes: z.array(
      z.object({
        node: z.string(),
        changes: z.array(z.object({ key: z.string(), before: Value, after: Value, sourceBefore: z.string(), sourceAfter: z.string() })),
      }),
    ),
    overriddenByLock: z.array(z.object({ node: z.string(), key: z.string(), lockedBy: z.string(), entry: SettingEntrySchema, author: z.string(), at: z.string() })),
  })
  .openapi('SettingsDryRun');

export const RegistrySchema = z
  .object({
    items: z.array(
      z.object({
        key: z.string(),
        description: z.string(),
        type: z.string(),
        default: Value,
        merge: z.enum(['replace', 'list', 'tighten', 'min']),
        lockable: z.boolean(),
        lowest: z.enum(['organization', 'division', 'tenant']),
      }).passthrough(),
    ),
  })
  .openapi('SettingsRegistry');
