// Token claims jose leaves to the gateway, through the real gateway and tenant service:
// a `sub` that is not a string and time claims that are not finite are refused before
// anything is authorized, signed or cached.
import { beforeAll, describe, expect, it } from 'vitest';
import { useCleanup } from '../support/cleanup.js';
import { call } from '../support/json-call.js';
import { seedTenantT1, startTestStack, type TestStack } from '../support/test-stack.js';

useCleanup();

let s: TestStack;
let tom: string;
const PATH = '/api/v1/tenants/t1/agents';

beforeAll(async () => {
  s = await startTestStack({ platformAdmins: ['pat'] });
  tom = await seedTenantT1(s);
});

const claims = (members: string) => {
  const now = Math.floor(Date.now() / 1000);
  return `{"iss":${JSON.stringify(s.issuer.issuer)},"aud":${JSON.stringify(s.issuer.audience)},"iat":${now},${members}}`;
};

describe('token claims through the gateway', () => {
  it("a token whose sub is [\"tom\"] is refused, and tom's own requests keep working (his cached assertion is not replaced)", async () => {
    const exp = Math.floor(Date.now() / 1000) + 600;
    const forged = await s.issuer.tokenFromJson(claims(`"sub":["tom"],"exp":${exp}`));
    // Twice, on the path tom then uses: each would sign (or reuse) tom's assertion if accepted.
    for (let i = 0; i < 2; i++) {
      const res = await call(s.gatewayUrl, 'GET', PATH, { auth: `Bearer ${forged}` });
      expect(res.status, res.text).toBe(401);
      expect(res.headers.get('www-authenticate')).toBe('Bearer error="invalid_token", error_description="sub claim must be a string"');
    }
    for (let i = 0; i < 3; i++) {
      const res = await call(s.gatewayUrl, 'GET', PATH, { auth: tom });
      expect(res.status, res.text).toBe(200);
      expect(res.body).toEqual({ items: [], nextCursor: null });
    }
  });

  it('a numeric sub is refused on the admin API as on the data path', async () => {
    const exp = Math.floor(Date.now() / 1000) + 600;
    const forged = await s.issuer.tokenFromJson(claims(`"sub":42,"exp":${exp}`));
    for (const path of ['/admin/v1/me/tenants', PATH]) {
      const res = await call(s.gatewayUrl, 'GET', path, { auth: `Bearer ${forged}` });
      expect(res.status, `${path}: ${res.text}`).toBe(401);
      expect(res.body).toMatchObject({ type: 'https://tiergate.dev/problems/invalid-token', detail: 'sub claim must be a string' });
    }
  });

  it('exp 1e309 (parsed as Infinity) is refused', async () => {
    const forged = await s.issuer.tokenFromJson(claims('"sub":"tom","exp":1e309'));
    const res = await call(s.gatewayUrl, 'GET', PATH, { auth: `Bearer ${forged}` });
    expect(res.status, res.text).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe('Bearer error="invalid_token", error_description="exp claim must be a finite number"');
  });
});
