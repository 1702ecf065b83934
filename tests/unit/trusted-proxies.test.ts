import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';
import { parseTrustedProxies, trustedPeers } from '../../src/shared/trusted-proxies.js';

const problemsOf = (entries: string[]) => parseTrustedProxies(entries).problems;

describe('TRUSTED_PROXIES: parsing', () => {
  it('accepts exact addresses and CIDR ranges, IPv4 and IPv6', () => {
    expect(problemsOf(['10.0.0.1', '10.0.0.0/8', '192.168.1.0/24', '::1', 'fd00::/8', '2001:db8::1/128', '::ffff:10.1.0.0/112'])).toEqual([]);
  });

  it.each([
    ['not an address', 'proxy.example.com'],
    ['a short IPv4 form inet_aton would read', '127.1'],
    ['a hex IPv4 form', '0x7f.0.0.1'],
    ['a prefix too long', '10.0.0.0/33'],
    ['an IPv6 prefix too long', 'fd00::/129'],
    ['a zone id', 'fe80::1%eth0'],
    ['an empty prefix', '10.0.0.0/'],
  ])('refuses %s (%s)', (_name, entry) => {
    const problems = problemsOf([entry]);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain(entry);
  });

  it.each([
    ['0.0.0.0/0'],
    ['::/0'],
    ['::ffff:0:0/96'],
    ['::ffff:0.0.0.0/96'],
    ['0.0.0.0/1,128.0.0.0/1'],
    ['::ffff:0:0/97,128.0.0.0/1'],
    ['::/1,8000::/1'],
    ['::/80'],
    ['64:ff9b::/96'],
    ['2002::/16'],
    ['::/96'],
  ])('refuses a list that trusts everyone: %s', (list) => {
    const problems = problemsOf(list.split(','));
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/covers every IPv[46] address/);
  });

  it('accepts large ranges that still leave addresses out', () => {
    expect(problemsOf(['0.0.0.0/1'])).toEqual([]);
    expect(problemsOf(['::ffff:0:0/97'])).toEqual([]);
    expect(problemsOf(['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', 'fc00::/7'])).toEqual([]);
  });
});

describe('TRUSTED_PROXIES: matching', () => {
  const peers = trustedPeers(['10.0.0.0/8', '192.168.1.7', 'fd00::/16', '::ffff:172.16.0.0/116']);

  it.each([
    ['10.1.2.3', true],
    ['::ffff:10.1.2.3', true],
    ['11.0.0.1', false],
    ['192.168.1.7', true],
    ['::ffff:192.168.1.7', true],
    ['192.168.1.8', false],
    ['fd00:1::5', true],
    ['fd01::5', false],
    ['172.16.0.9', true],
    ['172.16.16.9', false],
    ['', false],
    ['not-an-ip', false],
  ])('%s → %s', (address, trusted) => {
    expect(peers.has(address)).toBe(trusted);
    // Asked again (remembered): the same answer.
    expect(peers.has(address)).toBe(trusted);
  });

  it('an empty list trusts no one', () => {
    expect(trustedPeers([]).has('127.0.0.1')).toBe(false);
  });

  it('throws on a list the configuration would refuse', () => {
    expect(() => trustedPeers(['0.0.0.0/0'])).toThrow(/covers every IPv4 address/);
  });
});

describe('TRUSTED_PROXIES in the configuration', () => {
  it('a range that trusts everyone stops the start with a ConfigError naming the variable', () => {
    for (const value of ['0.0.0.0/0', '::/0', '::ffff:0:0/96', '10.0.0.1, 0.0.0.0/0']) {
      let err: unknown;
      try {
        loadConfig({ TRUSTED_PROXIES: value });
      } catch (e) {
        err = e;
      }
      expect(err, value).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).problems.join('\n')).toMatch(/^TRUSTED_PROXIES: .*trusts every client/);
    }
  });

  it('a valid list is kept as written', () => {
    expect(loadConfig({ TRUSTED_PROXIES: '10.0.0.0/8, ::1' }).TRUSTED_PROXIES).toEqual(['10.0.0.0/8', '::1']);
  });
});

describe('forward-auth configuration', () => {
  it('defaults: the /forward-auth prefix and the X-Original-Method / X-Original-URI headers', () => {
    const c = loadConfig({});
    expect([c.FORWARD_AUTH_PREFIX, c.FORWARD_AUTH_METHOD_HEADER, c.FORWARD_AUTH_URI_HEADER]).toEqual(['/forward-auth', 'X-Original-Method', 'X-Original-URI']);
  });

  it.each([
    ['FORWARD_AUTH_PREFIX', 'forward-auth'],
    ['FORWARD_AUTH_PREFIX', '/api/v1/auth'],
    ['FORWARD_AUTH_PREFIX', '/admin'],
    ['FORWARD_AUTH_PREFIX', '/a/../b'],
    ['FORWARD_AUTH_URI_HEADER', 'Authorization'],
    ['FORWARD_AUTH_URI_HEADER', 'X Original'],
    ['FORWARD_AUTH_METHOD_HEADER', 'X-Original-URI'],
  ])('refuses %s=%s', (name, value) => {
    expect(() => loadConfig({ [name]: value })).toThrow(ConfigError);
  });

  it('an empty prefix disables the endpoints', () => {
    expect(loadConfig({ FORWARD_AUTH_PREFIX: '' }).FORWARD_AUTH_PREFIX).toBe('');
  });
});
