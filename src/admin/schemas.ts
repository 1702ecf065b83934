// The admin API's zod schemas: one source for validation, TypeScript types and
// the OpenAPI document. Every object is strict (unknown fields are refused).
import { z } from '@hono/zod-openapi';
import { SUBJECT_ID } from '../config.js';
import { ID_PATTERN, RESOURCE_KINDS } from '../shared/resource-kinds.js';

/** Hierarchy node kinds, as OpenFGA types. */
export const NODE_KINDS = ['organization', 'division', 'tenant'] as const;
export type NodeKind = (typeof NODE_KINDS)[number];

/** The only relations a person can be granted; structural links are tiergate's alone. */
export const ROLE_NAMES = ['admin', 'member'] as const;
export type RoleName = (typeof ROLE_NAMES)[number];

/** OpenFGA's per-Write limit on writes + deletes: the largest batch that is still atomic. */
export const MAX_TUPLES_PER_WRITE = 100;

export const NodeId = z
  .string()
  .regex(ID_PATTERN, 'must match ^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$')
  .openapi({ example: 'emea' });

/** A user id as it appears in paths and bodies (`alice` or `user:alice`), normalised to `user:<id>`. */
export const UserRef = z
  .string()
  .transform((v) => (v.startsWith('user:') ? v.slice(5) : v))
  .pipe(z.string().regex(SUBJECT_ID, 'must be a user id: letters, digits and _@.|- (max 128), optionally prefixed with user:'))
  .transform((id) => `user:${id}`)
  .openapi({ type: 'string', example: 'user:alice' });

/** Bare user id for path segments (no `user:` prefix: a colon is not welcome in a path). */
export const UserIdParam = z
  .string()
  .regex(SUBJECT_ID, 'must be a user id: letters, digits and _@.|- (max 128)')
  .openapi({ example: 'alice' });

export const NodeName = z
  .string()
  .trim()
  .min(1, 'must not be empty')
  .max(200, 'at most 200 characters')
  // eslint-disable-next-line no-control-regex -- refusing control characters is the point
  .refine((s) => !/[\u0000-\u001f\u007f]/.test(s), 'control characters are not allowed')
  .openapi({ example: 'EMEA' });

export const RoleParam = z.enum(ROLE_NAMES).openapi({ example: 'admin' });

const limitParam = (max: number, dflt: number) => z.coerce.number().int().min(1).max(max).default(dflt).openapi({ type: 'integer', example: dflt });
const cursorParam = z.string().min(1).max(2048).optional();

// ---------------------------------------------------------------- path params

export const OrganizationParams = z.strictObject({ organizationId: NodeId });
export const DivisionParams = z.strictObject({ divisionId: NodeId });
export const TenantParams = z.strictObject({ tenantId: NodeId });
export const NodeParams = {
  organization: OrganizationParams,
  division: DivisionParams,
  tenant: TenantParams,
} as const;

// ---------------------------------------------------------------- hierarchy

export const CreateOrganizationBody = z
  .strictObject({
    id: NodeId,
    name: NodeName,
    /** The first organization admins, named by the platform admin that creates it: an organization never starts without one. */
    admins: z.array(UserRef).min(1, 'name at least one first admin').max(20, 'at most 20 first admins'),
  })
  .openapi('CreateOrganization');

export const CreateNodeBody = z.strictObject({ id: NodeId, name: NodeName }).openapi('CreateNode');
/** POST /divisions/{id}/tenants/batch: tenants of one division, ids unique within the batch. */
export const CreateTenantsBody = z
  .strictObject({ tenants: z.array(CreateNodeBody).min(1).max(MAX_TUPLES_PER_WRITE) })
  .superRefine((body, ctx) => {
    const seen = new Set<string>();
    body.tenants.forEach((t, i) => {
      if (seen.has(t.id)) ctx.addIssue({ code: 'custom', path: ['tenants', i, 'id'], message: `${t.id} appears twice in the batch` });
      seen.add(t.id);
    });
  })
  .openapi('CreateTenants');
export const RenameBody = z.strictObject({ name: NodeName }).openapi('Rename');

/** `organization:<id>` (top-level division) or `division:<id>`. */
export const ParentRef = z
  .string()
  .regex(/^(organization|division):[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/, 'must be organization:<id> or division:<id>')
  .openapi({ example: 'division:emea' });
export const MoveBody = z.strictObject({ parent: ParentRef }).openapi('Move');

export const NodeSchema = z
  .object({
    type: z.enum(NODE_KINDS),
    id: z.string(),
    name: z.string(),
    /** The organization the node belongs to (the node itself for organizations). */
    organizationId: z.string(),
    /** `organization:<id>` or `division:<id>`; null for organizations. */
    parent: z.string().nullable(),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .openapi('Node');
export type NodeView = z.infer<typeof NodeSchema>;

export const MutationResult = z.object({ changed: z.boolean(), node: NodeSchema }).openapi('NodeMutation');
export const CreatedNodes = z.object({ items: z.array(NodeSchema) }).openapi('CreatedNodes');
export const DeleteResult = z.object({ deleted: z.string() }).openapi('Deleted');

// ---------------------------------------------------------------- roles

export const RoleGrantSchema = z
  .object({ object: z.string(), role: z.enum(ROLE_NAMES), user: z.string() })
  .openapi('RoleGrant');
export const RoleChangeResult = RoleGrantSchema.extend({ changed: z.boolean() }).openapi('RoleChange');
export const RoleListQuery = z.strictObject({ limit: limitParam(100, 100), cursor: cursorParam });
export const RoleList = z.object({ items: z.array(RoleGrantSchema), nextCursor: z.string().nullable() }).openapi('RoleList');

// ---------------------------------------------------------------- break-glass

export const BreakGlassBody = z
  .strictObject({
    /** Who becomes the organization's admin: never the caller. */
    user: UserRef,
    /** Why, kept in the audit trail that the organization and the platform read. */
    reason: z
      .string()
      .trim()
      .min(1, 'must not be empty')
      .max(1000, 'at most 1000 characters')
      // eslint-disable-next-line no-control-regex -- refusing control characters is the point
      .refine((s) => !/[\u0000-\u001f\u007f]/.test(s), 'control characters are not allowed')
      .openapi({ example: 'all admins left the company; ticket OPS-1234' }),
  })
  .openapi('BreakGlass');
export const BreakGlassResult = z
  .object({ object: z.string(), role: z.literal('admin'), user: z.string(), reason: z.string() })
  .openapi('BreakGlassGrant');

// ---------------------------------------------------------------- tuples

/** Object types a role relation may be written on, per relation (the allow-list). */
export const ROLE_OBJECT_TYPES: Record<RoleName, readonly string[]> = {
  admin: ['platform', 'organization', 'division', 'tenant'],
  member: ['tenant'],
};

export const TupleSchema = z
  .strictObject({
    user: z.string().regex(/^user:[A-Za-z0-9][A-Za-z0-9_@.|-]{0,127}$/, 'must be user:<id>'),
    relation: z.enum(ROLE_NAMES, 'only role relations (admin, member) may be written; structural links are tiergate\'s'),
    object: z.string().regex(/^(platform|organization|division|tenant):[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/, 'must be <platform|organization|division|tenant>:<id>'),
  })
  .superRefine((t, ctx) => {
    const type = t.object.split(':')[0] ?? '';
    const allowed = ROLE_OBJECT_TYPES[t.relation] as readonly string[] | undefined; // undefined when relation itself failed
    if (allowed && !allowed.includes(type)) {
      ctx.addIssue({ code: 'custom', path: ['relation'], message: `${t.relation} cannot be granted on ${type}` });
    }
  })
  .openapi('Tuple');
export type TupleInput = z.infer<typeof TupleSchema>;

export const TupleBatchBody = z
  .strictObject({
    writes: z.array(TupleSchema).max(MAX_TUPLES_PER_WRITE).default([]),
    deletes: z.array(TupleSchema).max(MAX_TUPLES_PER_WRITE).default([]),
  })
  .superRefine((b, ctx) => {
    const total = b.writes.length + b.deletes.length;
    if (total === 0) ctx.addIssue({ code: 'custom', path: [], message: 'give at least one tuple in writes or deletes' });
    if (total > MAX_TUPLES_PER_WRITE) {
      ctx.addIssue({
        code: 'custom',
        path: [],
        message: `${total} changes: at most ${MAX_TUPLES_PER_WRITE} writes + deletes per request (OpenFGA's atomic write limit); split the batch`,
      });
    }
  })
  .openapi('TupleBatch');

export const TupleBatchResult = z
  .object({ written: z.array(TupleSchema), deleted: z.array(TupleSchema) })
  .openapi('TupleBatchResult');

export const TupleReadQuery = z
  .strictObject({
    object: z
      .string()
      .regex(/^(platform|organization|division|tenant):([A-Za-z0-9][A-Za-z0-9_-]{0,63})?$/, 'must be <type>:<id> or <type>: (every object of a type)')
      .optional(),
    relation: z.enum(ROLE_NAMES).optional(),
    user: z.string().regex(/^user:[A-Za-z0-9][A-Za-z0-9_@.|-]{0,127}$/, 'must be user:<id>').optional(),
    limit: limitParam(100, 50),
    cursor: cursorParam,
  })
  .superRefine((q, ctx) => {
    // OpenFGA's Read: an object is needed; a type-only object needs a user.
    if (!q.object) ctx.addIssue({ code: 'custom', path: ['object'], message: 'required (OpenFGA reads by object or object type)' });
    else if (q.object.endsWith(':') && !q.user) {
      ctx.addIssue({ code: 'custom', path: ['user'], message: 'required when object is only a type' });
    }
  });

export const TupleReadResult = z
  .object({ items: z.array(z.object({ user: z.string(), relation: z.string(), object: z.string() })), nextCursor: z.string().nullable() })
  .openapi('TupleList');

// ---------------------------------------------------------------- me

export const MeListQuery = z.strictObject({ limit: limitParam(1000, 100), cursor: cursorParam });
export const MeList = z
  .object({
    items: z.array(NodeSchema),
    nextCursor: z.string().nullable(),
    /** How the list is computed: the stored hierarchy under the caller's direct grants, each item confirmed by the model ('list-objects' is no longer answered). */
    source: z.enum(['list-objects', 'hierarchy-walk']),
    /** Candidates under the caller's direct grants; equal to the visible count while the stored hierarchy matches the model's. */
    total: z.number().int(),
  })
  .openapi('VisibleNodes');
export const MeResult = z.object({ subject: z.string() }).openapi('Me');
export const MePermissionsQuery = z.strictObject({
  object: z
    .string()
    .regex(/^(?:platform:root|(?:organization|division|tenant):[A-Za-z0-9][A-Za-z0-9_-]{0,63})$/, 'must be platform:root or <organization|division|tenant>:<id>')
    .openapi({ example: 'tenant:acme-sales' }),
});
export const MePermissions = z
  .object({ object: z.string(), permissions: z.record(z.string(), z.boolean()).openapi({ example: { can_assign_admin: true, can_assign_member: true } }) })
  .openapi('MyPermissions');

// ---------------------------------------------------------------- check / explain

/** OpenFGA types that live inside a tenant (ids `<tenantId>/<businessId>`): the API's resource kinds, plus reports. */
export const TENANT_RESOURCE_TYPES: readonly string[] = [...new Set([...RESOURCE_KINDS.map((k) => k.fgaType), 'report'])];
const RESOURCE_TYPES = TENANT_RESOURCE_TYPES;
const OBJECT_REF = new RegExp(
  `^(?:platform:root|(?:organization|division|tenant):[A-Za-z0-9][A-Za-z0-9_-]{0,63}|(?:${RESOURCE_TYPES.join('|')}):[A-Za-z0-9][A-Za-z0-9_-]{0,63}/[A-Za-z0-9][A-Za-z0-9_-]{0,63})$`,
);

export const CheckBody = z
  .strictObject({
    user: UserRef,
    permission: z.string().regex(/^[a-z][a-z0-9_]{0,63}$/, 'must be a relation name such as can_view'),
    object: z
      .string()
      .regex(OBJECT_REF, 'must be platform:root, <organization|division|tenant>:<id>, or <resource type>:<tenantId>/<businessId>')
      .openapi({ example: 'tenant:acme-sales' }),
  })
  .openapi('CheckRequest');

export const ReasonSchema = z
  .object({
    role: z.string(),
    on: z
      .string()
      .nullable()
      .openapi({ description: 'The node holding the grant; null when the caller does not administer it (lacks can_assign_admin there)', example: 'division:emea' }),
    via: z.string().openapi({
      description: '`direct grant`, `inherited by <object>`, or `inherited from a node you do not administer` (then `on` is null)',
      example: 'inherited by tenant:acme-sales',
    }),
    path: z.array(z.string()).openapi({ description: 'From the node holding the grant down to the object, only the nodes the caller administers' }),
  })
  .openapi('Reason');
export const CheckResult = z
  .object({
    allowed: z.boolean(),
    user: z.string(),
    permission: z.string(),
    object: z.string(),
    reasons: z.array(ReasonSchema),
    missing: z.string().optional(),
    /** The edge policies at the object's node, which the gateway checks before the permission. */
    edgePolicies: z
      .array(
        z.object({
          policy: z.string(),
          value: z.unknown(),
          /** Whether it restricts anything (a non-empty allowlist, MFA required; the session age always). */
          inForce: z.boolean(),
          /** The node whose entry decided the value, or `default`. */
          source: z.string(),
          lockedBy: z.string().nullable(),
        }),
      )
      .optional(),
  })
  .openapi('CheckResult');

export const CheckRequestBody = z
  .strictObject({
    user: UserRef,
    method: z.string().regex(/^[A-Z]{1,16}$/, 'must be an HTTP method in upper case, e.g. GET').openapi({ example: 'GET' }),
    target: z
      .string()
      .min(1)
      .max(4096)
      .regex(/^\/[\x21-\x7e]*$/, 'must be a request target starting with /, e.g. /api/v1/tenants/acme-sales/agents')
      .openapi({ example: '/api/v1/tenants/acme-sales/agents' }),
  })
  .openapi('CheckRequestLine');
export const CheckRequestResult = CheckResult.extend({
  request: z.object({ method: z.string(), path: z.string(), rule: z.string(), permission: z.string(), object: z.string() }),
}).openapi('CheckRequestResult');

// ---------------------------------------------------------------- audit

export const AUDIT_OUTCOMES = ['success', 'denied', 'failed'] as const;
export type AuditOutcome = (typeof AUDIT_OUTCOMES)[number];

export const AuditQuery = z
  .strictObject({
    actor: UserRef.optional(),
    action: z.string().regex(/^[a-z][a-z0-9_.-]{0,63}$/, 'must be an action name such as division.create').optional(),
    // Compared as text in PostgreSQL, which refuses NUL (a 500): control characters are refused here.
    // eslint-disable-next-line no-control-regex -- refusing control characters is the point
    target: z.string().min(3).max(200).regex(/^[^\u0000-\u001f\u007f]*$/, 'must not contain control characters').optional(),
    /** Only entries about this node or anything beneath it. */
    under: z.string().regex(/^(platform|organization|division|tenant):[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/).optional(),
    outcome: z.enum(AUDIT_OUTCOMES).optional(),
    since: z.iso.datetime({ offset: true }).optional(),
    until: z.iso.datetime({ offset: true }).optional(),
    limit: limitParam(500, 100),
    cursor: z.string().regex(/^[0-9]{1,18}$/, 'must be a nextCursor from a previous page').optional(),
  });

export const AuditEntrySchema = z
  .object({
    seq: z.string(),
    at: z.string(),
    actor: z.string(),
    action: z.string(),
    target: z.string(),
    outcome: z.enum(AUDIT_OUTCOMES),
    requestId: z.string().nullable(),
    before: z.unknown().nullable(),
    after: z.unknown().nullable(),
    detail: z.unknown().nullable(),
    scope: z.array(z.string()),
    count: z.number().int().min(1).openapi({
      description:
        'How many events the entry stands for. A gateway.deny entry is the first of one principal\'s denials for one policy rule and scope node in one minute (detail.rule, detail.node, detail.minute), and count is how many there were in that minute, over every gateway; 1 for every other entry.',
      example: 1,
    }),
  })
  .openapi('AuditEntry');
export const AuditPage = z.object({ items: z.array(AuditEntrySchema), nextCursor: z.string().nullable() }).openapi('AuditPage');

// ---------------------------------------------------------------- problems

export const ProblemSchema = z
  .object({
    type: z.string(),
    title: z.string(),
    status: z.number().int(),
    detail: z.string().optional(),
    requestId: z.string().optional(),
    'invalid-params': z.array(z.object({ name: z.string(), reason: z.string() })).optional(),
  })
  .openapi('Problem');
