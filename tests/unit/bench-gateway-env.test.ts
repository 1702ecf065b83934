// `npm run bench -- --gateway-env "K=V …"`: the settings an A/B run gives every gateway.
import { describe, expect, it } from 'vitest';
import { parseGatewayEnv } from '../../load/lib/stack.js';

describe('parseGatewayEnv', () => {
  it('reads tiergate settings as KEY=VALUE pairs separated by spaces (a value may hold "=")', () => {
    expect(parseGatewayEnv('  ASSERTION_TTL_S=600   LOG_LEVEL=info ')).toEqual({ ASSERTION_TTL_S: '600', LOG_LEVEL: 'info' });
    expect(parseGatewayEnv('TRUSTED_PROXIES=a=b')).toEqual({ TRUSTED_PROXIES: 'a=b' });
    expect(parseGatewayEnv('')).toEqual({});
  });

  it('refuses what is not KEY=VALUE, a name tiergate does not know, and what the bench wires itself', () => {
    expect(() => parseGatewayEnv('ASSERTION_TTL_S')).toThrow(/"ASSERTION_TTL_S" is not KEY=VALUE/);
    expect(() => parseGatewayEnv('=600')).toThrow(/not KEY=VALUE/);
    expect(() => parseGatewayEnv('ASSERTION_TTL=600')).toThrow(/ASSERTION_TTL is not a tiergate setting/);
    expect(() => parseGatewayEnv('REDIS_URL=redis://elsewhere')).toThrow(/REDIS_URL is set by the bench itself/);
    expect(() => parseGatewayEnv('CACHE_L1_ENABLED=false')).toThrow(/set by the bench itself/);
  });
});
