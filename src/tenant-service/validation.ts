// What a request may say: ids, paging, and per-kind bodies. Bodies are strict
// (unknown fields refused) and every failure is a 400 listing each bad field.
import { z } from 'zod';
import { ID_PATTERN, type ResourceKind } from '../shared/resource-kinds.js';
import { dottedPath, parseJsonBody } from '../shared/json-body.js';
import type { InvalidParam } from '../shared/problem.js';
import { Problem } from '../shared/problem.js';
import { type TsContext } from './http.js';

// eslint-disable-next-line no-control-regex -- refusing control characters is the point
const NO_CONTROL_CHARS = /^[^\u0000-\u001f\u007f]*$/;

const businessId = z.string().regex(ID_PATTERN, 'must match ^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$');
const name = z.string().min(1).max(128).regex(NO_CONTROL_CHARS, 'must not contain control characters');
const text = (max: number) => z.string().max(max).regex(NO_CONTROL_CHARS, 'must not contain control characters');
const e164 = z.string().regex(/^\+[1-9][0-9]{6,14}$/, 'must be an E.164 number such as +14155550100');
const target = z.strictObject({
  type: z.enum(['agent', 'queue', 'extension', 'tel-group', 'ivr']),
  id: businessId,
});

export const AGENT_STATUSES = ['available', 'busy', 'away', 'offline'] as const;
export type AgentStatus = (typeof AGENT_STATUSES)[number];

interface KindFields {
  /** Writable fields besides the business id. */
  fields: z.ZodRawShape;
  /** Values for omitted optional fields, applied on create and on replace. */
  defaults: Record<string, unknown>;
  /**
   * Operational state owned by a dedicated route (agent status), not by resource
   * writes: set to this value on create, kept as is by PUT, never accepted in a body.
   */
  operational: Record<string, unknown>;
}

/** Per-kind fields of the writable kinds (call records are written by the platform only). */
const KIND_FIELDS: Record<string, KindFields> = {
  agents: {
    fields: {
      name,
      extension: businessId.optional(),
      skills: z.array(text(64).min(1)).max(32).optional(),
      enabled: z.boolean().optional(),
    },
    defaults: { enabled: true },
    operational: { status: 'offline' satisfies AgentStatus },
  },
  queues: {
    fields: {
      name,
      strategy: z.enum(['ring-all', 'longest-idle', 'round-robin', 'fewest-calls']).optional(),
      maxWaitSeconds: z.int().min(0).max(86_400).optional(),
      agents: z.array(businessId).max(1000).optional(),
    },
    defaults: { strategy: 'longest-idle' },
    operational: {},
  },
  extensions: {
    fields: {
      name: name.optional(),
      type: z.enum(['sip', 'webrtc', 'pstn']).optional(),
      enabled: z.boolean().optional(),
    },
    defaults: { type: 'sip', enabled: true },
    operational: {},
  },
  'tel-groups': {
    fields: {
      name,
      strategy: z.enum(['sequential', 'simultaneous']).optional(),
      members: z.array(businessId).max(200).optional(),
    },
    defaults: { strategy: 'sequential' },
    operational: {},
  },
  ivrs: {
    fields: {
      name,
      greeting: text(1024).optional(),
      options: z
        .array(z.strictObject({ digit: z.string().regex(/^[0-9*#]$/, 'must be one key: 0-9, * or #'), target }))
        .max(12)
        .optional(),
    },
    defaults: {},
    operational: {},
  },
  'phone-numbers': {
    fields: {
      number: e164,
      name: name.optional(),
      target: target.optional(),
    },
    defaults: {},
    operational: {},
  },
  'routing-rules': {
    fields: {
      name,
      priority: z.int().min(0).max(10_000).optional(),
      match: z
        .strictObject({
          callerPrefix: z.string().regex(/^\+?[0-9]{1,15}$/, 'must be digits, optionally after +').optional(),
          numberId: businessId.optional(),
        })
        .optional(),
      target,
      enabled: z.boolean().optional(),
    },
    defaults: { priority: 100, enabled: true },
    operational: {},
  },
  configurations: {
    fields: {
      value: z.union([text(4096), z.number(), z.boolean()]),
      description: text(512).optional(),
    },
    defaults: {},
    operational: {},
  },
};

export interface KindSchemas {
  kind: ResourceKind;
  /** POST: the business id is required. */
  create: z.ZodType<Record<string, unknown>>;
  /** PUT: full representation; the business id may be repeated but not changed. */
  replace: z.ZodType<Record<string, unknown>>;
  /** PATCH: any subset of the fields. */
  patch: z.ZodType<Record<string, unknown>>;
  defaults: Record<string, unknown>;
  operational: Record<string, unknown>;
}

export function kindSchemas(kind: ResourceKind): KindSchemas {
  const spec = KIND_FIELDS[kind.segment];
  if (!spec) throw new Error(`no body schema for resource kind ${kind.segment}`);
  const optionalFields = Object.fromEntries(Object.entries(spec.fields).map(([k, v]) => [k, (v as z.ZodType).optional()]));
  return {
    kind,
    create: z.strictObject({ ...spec.fields, [kind.idParam]: businessId }),
    replace: z.strictObject({ ...spec.fields, [kind.idParam]: businessId.optional() }),
    patch: z.strictObject({ ...optionalFields, [kind.idParam]: businessId.optional() }),
    defaults: spec.defaults,
    operational: spec.operational,
  };
}

export const agentStatusBodySchema = z.strictObject({ status: z.enum(AGENT_STATUSES) });

/** Turns zod issues into RFC 9457 `invalid-params`, one entry per bad or unknown field. */
export function invalidParams(error: z.ZodError, where: string): InvalidParam[] {
  return error.issues.flatMap((issue) => {
    const base = [where, ...issue.path.map(String)].join('.');
    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((k) => ({ name: `${base}.${k}`, reason: 'unknown field' }));
    }
    return [{ name: base, reason: issue.message }];
  });
}

export function parseOr400<T>(schema: z.ZodType<T>, value: unknown, where: string): T {
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    throw new Problem(400, 'invalid-request', 'Bad Request', {
      detail: `invalid ${where}`,
      'invalid-params': invalidParams(parsed.error, where),
    });
  }
  return parsed.data;
}

/**
 * JSON bodies only (application/json, or a +json type such as merge-patch+json), read
 * strictly (src/shared/json-body.ts): invalid UTF-8, invalid JSON or a lone surrogate is a 400.
 */
export async function readJsonBody(c: TsContext): Promise<unknown> {
  const type = (c.req.header('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/json' && !/^application\/[a-z0-9.+-]+\+json$/.test(type)) {
    throw new Problem(415, 'unsupported-media-type', 'Unsupported Media Type', {
      detail: 'send the body as application/json',
    });
  }
  const parsed = parseJsonBody(new Uint8Array(await c.req.arrayBuffer()));
  if (!parsed.ok) {
    throw new Problem(400, 'invalid-json', 'Bad Request', {
      detail: parsed.detail,
      ...(parsed.at ? { 'invalid-params': [{ name: dottedPath('body', parsed.at.path), reason: parsed.at.reason }] } : {}),
    });
  }
  return parsed.value;
}

/** A path id (tenant, resource) outside the id grammar is refused, never looked up. */
export function pathId(value: string | undefined, param: string): string {
  if (value === undefined || !ID_PATTERN.test(value)) {
    throw new Problem(400, 'invalid-request', 'Bad Request', {
      detail: `invalid ${param}`,
      'invalid-params': [{ name: `path.${param}`, reason: 'must match ^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$' }],
    });
  }
  return value;
}

export const MAX_PAGE_SIZE = 200;
export const DEFAULT_PAGE_SIZE = 50;

export interface PageRequest {
  limit: number;
  /** Business id after which the page starts (decoded cursor). */
  after?: string;
}

const pageQuerySchema = z.strictObject({
  limit: z
    .string()
    .regex(/^[0-9]{1,4}$/, `must be an integer from 1 to ${MAX_PAGE_SIZE}`)
    .transform(Number)
    .pipe(z.int().min(1, `must be from 1 to ${MAX_PAGE_SIZE}`).max(MAX_PAGE_SIZE, `must be from 1 to ${MAX_PAGE_SIZE}`))
    .optional(),
  cursor: z.string().max(128).optional(),
});

/** Keyset paging: the cursor is the last id of the previous page, base64url-encoded. */
export function pageRequest(c: TsContext): PageRequest {
  const q = parseOr400(pageQuerySchema, c.req.query(), 'query');
  const page: PageRequest = { limit: q.limit ?? DEFAULT_PAGE_SIZE };
  if (q.cursor !== undefined) {
    const after = Buffer.from(q.cursor, 'base64url').toString('utf8');
    if (!ID_PATTERN.test(after) || encodeCursor(after) !== q.cursor) {
      throw new Problem(400, 'invalid-request', 'Bad Request', {
        detail: 'invalid cursor',
        'invalid-params': [{ name: 'query.cursor', reason: 'use the nextCursor of a previous page' }],
      });
    }
    page.after = after;
  }
  return page;
}

export function encodeCursor(lastId: string): string {
  return Buffer.from(lastId, 'utf8').toString('base64url');
}
