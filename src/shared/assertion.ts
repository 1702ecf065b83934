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
 */
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
});
export type AssertionClaims = z.infer<typeof assertionClaimsSchema>;

/** Where the gateway serves its assertion keys (GATEWAY_JWKS_URL defaults to this path on the gateway). */
export const GATEWAY_JWKS_PATH = '/.well-known/tiergate/jwks.json';
