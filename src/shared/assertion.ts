// The identity assertion the gateway adds to every forwarded request: a short-lived
// JWT signed with the gateway's own key (EdDSA), audience = the upstream. The upstream
// verifies it against the gateway's JWKS and trusts nothing else the client sent.
import { z } from 'zod';

export const ASSERTION_HEADER = 'x-tiergate-assertion';
export const ASSERTION_ISSUER = 'tiergate';
export const ASSERTION_ALG = 'EdDSA';

/**
 * What the gateway vouches for. `scope` is the hierarchy node the request was
 * authorized on; `tenants` are the tenants the upstream may read for it: the
 * tenant itself, or every tenant under a division or organization (for reports).
 *
 * `htm` and `htu` bind the assertion to the one request that was authorized, so an
 * assertion captured from `GET …/agents` is worthless for `DELETE …/agents/2000`.
 * The names and meaning are borrowed from DPoP (RFC 9449 §4.2): `htm` is the HTTP
 * method (uppercase, as sent); `htu` differs from DPoP's in holding only the
 * canonical path the gateway forwarded (decoded, e.g. `/api/v1/tenants/t1/agents/2000`,
 * less the upstream's `stripPrefix` if it has one), with no scheme, host or query: the
 * upstream compares it with the path it routes on.
 * The query is not bound (a list's cursor or limit may differ), and within its short
 * lifetime an assertion may be replayed for the same method and path (no jti/nonce).
 */
/**
 * The effective settings of the request's scope node (docs/settings.md): each key's
 * value and the node that set it (`default` when none did), for every key or only those
 * the route policy lists for the upstream (its `settings`). The upstream reads them
 * from the assertion instead of asking for them.
 */
export const settingsClaimSchema = z.object({
  node: z.string().min(1),
  values: z.record(z.string(), z.unknown()),
  sources: z.record(z.string(), z.string()),
});
export type SettingsClaim = z.infer<typeof settingsClaimSchema>;

export const assertionClaimsSchema = z.object({
  iss: z.literal(ASSERTION_ISSUER),
  aud: z.union([z.string(), z.array(z.string())]),
  sub: z.string().min(1),
  iat: z.number(),
  exp: z.number(),
  scope: z.object({
    type: z.enum(['tenant', 'division', 'organization']),
    id: z.string().min(1),
  }),
  tenants: z.array(z.string().min(1)),
  htm: z.string().regex(/^[A-Z]+$/),
  htu: z.string().regex(/^\/[^?#]*$/),
  settings: settingsClaimSchema.optional(),
});
export type AssertionClaims = z.infer<typeof assertionClaimsSchema>;

/** Where the gateway serves its assertion keys (GATEWAY_JWKS_URL defaults to this path on the gateway). */
export const GATEWAY_JWKS_PATH = '/.well-known/tiergate/jwks.json';
