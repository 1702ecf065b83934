// Validation failures answer once, with every invalid field: when zod-openapi's
// validator stops at the first failing part (path, query or body), the hook
// validates the other parts too, so a caller fixes everything in one go.
import type { Context } from 'hono';
import type { RouteConfig } from '@hono/zod-openapi';
import type { ZodError, ZodType } from 'zod';
import type { InvalidParam } from '../shared/problem.js';
import { issuesToInvalidParams, TARGET_LOCATION, validationProblem } from './errors.js';
import { ProblemSchema } from './schemas.js';

type HookResult = { target: string } & ({ success: true } | { success: false; error: ZodError });

function parts(route: RouteConfig): { target: string; schema: ZodType }[] {
  const out: { target: string; schema: ZodType }[] = [];
  const req = route.request;
  if (req?.params) out.push({ target: 'param', schema: req.params as ZodType });
  if (req?.query) out.push({ target: 'query', schema: req.query as ZodType });
  const media = req?.body?.content?.['application/json'];
  if (media && 'schema' in media && media.schema) out.push({ target: 'json', schema: media.schema as ZodType });
  return out;
}

async function valueOf(c: Context, target: string): Promise<{ ok: true; value: unknown } | { ok: false }> {
  if (target === 'param') return { ok: true, value: c.req.param() };
  if (target === 'query') return { ok: true, value: c.req.query() };
  try {
    return { ok: true, value: await c.req.json() };
  } catch {
    return { ok: false }; // absent or malformed body: the body validator reports it on its own
  }
}

/**
 * A per-route hook (for app.openapi's third argument) that reports all invalid fields.
 * zod-openapi types a hook's answer as the route's success response, but at run
 * time any returned Response ends the request — hence the `Promise<never>` cast.
 */
export function allFieldsHook(route: RouteConfig) {
  return (result: HookResult, c: Context): Promise<never> | undefined => {
    if (result.success) return undefined;
    return reportAll(route, result, c) as Promise<never>;
  };
}

async function reportAll(route: RouteConfig, result: HookResult & { success: false }, c: Context): Promise<Response> {
  const invalid: InvalidParam[] = issuesToInvalidParams(TARGET_LOCATION[result.target] ?? result.target, result.error);
  for (const part of parts(route)) {
    if (part.target === result.target) continue;
    const v = await valueOf(c, part.target);
    if (!v.ok) continue;
    const parsed = await part.schema.safeParseAsync(v.value);
    if (!parsed.success) invalid.push(...issuesToInvalidParams(TARGET_LOCATION[part.target] ?? part.target, parsed.error));
  }
  return validationProblem(c, invalid);
}

const problemContent = { 'application/problem+json': { schema: ProblemSchema } };

/** The error answers every admin route can give, for the OpenAPI document. */
export const ERROR_RESPONSES = {
  401: { description: 'Missing or invalid bearer token', content: problemContent },
  403: { description: 'The model does not give the caller the required permission (audited)', content: problemContent },
  422: { description: 'Invalid path, query or body: `invalid-params` lists each invalid field', content: problemContent },
  503: { description: 'OpenFGA unavailable: nothing was changed', content: problemContent },
} as const;
export const NOT_FOUND = { 404: { description: 'No such node', content: problemContent } } as const;
export const CONFLICT = { 409: { description: 'Conflict (id taken or retired, node has children, last admin, a concurrent change got there first, …)', content: problemContent } } as const;
