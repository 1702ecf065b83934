// TRUSTED_PROXIES: the peers whose forwarding headers (X-Forwarded-*, Forwarded,
// X-Request-Id) and forward-auth questions are believed. Each entry is one address
// or one CIDR range, IPv4 or IPv6, parsed and matched with ipaddr.js.
//
// - IPv4 only in four-part decimal (`10.0.0.1`, `10.0.0.0/8`): ipaddr.js (like
//   inet_aton) would also read `127.1`, `0x7f.1` or `0177.0.0.1`, shapes an operator
//   rarely means and a reviewer easily misreads.
// - An IPv4 peer on a dual-stack socket is reported as `::ffff:a.b.c.d`: addresses
//   and ranges inside ::ffff:0:0/96 are matched as the IPv4 they stand for, so
//   `10.0.0.0/8` and `::ffff:10.0.0.0/104` mean the same peers.
// - A list that trusts everyone is refused: one range or several together covering
//   the whole IPv6 space, or every IPv4 address in any of the forms an IPv4 peer can
//   take in IPv6 (IPv4-mapped ::ffff:0:0/96, IPv4-compatible ::/96, NAT64
//   64:ff9b::/96, SIIT ::ffff:0:0:0/96, 6to4 2002::/16). `0.0.0.0/0`,
//   `0.0.0.0/1,128.0.0.0/1` and `::ffff:0:0/96` are all "anyone with an IPv4
//   address", which makes every forwarding header a client's claim.
// - Zone ids (`fe80::1%eth0`) are refused: a zone is not part of what is matched.
import ipaddr from 'ipaddr.js';

/** Whether a peer address is trusted. A ReadonlySet<string> of exact addresses fits too. */
export interface TrustedPeers {
  has(address: string): boolean;
}

type Range = [ipaddr.IPv4 | ipaddr.IPv6, number];

const V6_BITS = 128n;
const ALL = (1n << V6_BITS) - 1n;

/** Prefixes through which every IPv4 host can appear as an IPv6 peer. */
const IPV4_EMBEDDINGS: ReadonlyArray<readonly [string, string]> = [
  ['::ffff:0:0/96', 'IPv4-mapped'],
  ['::/96', 'IPv4-compatible'],
  ['64:ff9b::/96', 'NAT64'],
  ['::ffff:0:0:0/96', 'SIIT'],
  ['2002::/16', '6to4'],
];

function bigOf(bytes: number[]): bigint {
  let n = 0n;
  for (const b of bytes) n = (n << 8n) | BigInt(b);
  return n;
}

/** The range as an interval of the 128-bit space (IPv4 as its IPv4-mapped IPv6 form). */
function interval([addr, bits]: Range): [bigint, bigint] {
  const v6 = addr.kind() === 'ipv4' ? (addr as ipaddr.IPv4).toIPv4MappedAddress() : (addr as ipaddr.IPv6);
  const prefix = addr.kind() === 'ipv4' ? bits + 96 : bits;
  const host = (1n << (V6_BITS - BigInt(prefix))) - 1n;
  const start = bigOf(v6.toByteArray()) & ~host & ALL;
  return [start, start | host];
}

/** Merged, sorted intervals. */
function merge(intervals: Array<[bigint, bigint]>): Array<[bigint, bigint]> {
  const sorted = [...intervals].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const out: Array<[bigint, bigint]> = [];
  for (const [s, e] of sorted) {
    const last = out[out.length - 1];
    if (last !== undefined && s <= last[1] + 1n) {
      if (e > last[1]) last[1] = e;
    } else {
      out.push([s, e]);
    }
  }
  return out;
}

function covers(merged: ReadonlyArray<[bigint, bigint]>, [s, e]: [bigint, bigint]): boolean {
  return merged.some(([ms, me]) => ms <= s && me >= e);
}

/** An entry as a range; IPv4-mapped IPv6 ranges of /96 or longer become the IPv4 range they are. */
function parseEntry(entry: string): Range | string {
  if (entry.includes('%')) return `"${entry}": zone ids are not accepted`;
  const slash = entry.indexOf('/');
  let range: Range;
  if (slash < 0) {
    if (ipaddr.IPv4.isValidFourPartDecimal(entry)) range = [ipaddr.IPv4.parse(entry), 32];
    else if (ipaddr.IPv6.isValid(entry)) range = [ipaddr.IPv6.parse(entry), 128];
    else return `"${entry}" is not an IPv4 address (four decimal parts), an IPv6 address or a CIDR range`;
  } else if (ipaddr.IPv4.isValidCIDRFourPartDecimal(entry)) {
    range = ipaddr.IPv4.parseCIDR(entry);
  } else if (ipaddr.IPv6.isValidCIDR(entry)) {
    range = ipaddr.IPv6.parseCIDR(entry);
  } else {
    return `"${entry}" is not a CIDR range (e.g. 10.0.0.0/8 or fd00::/8)`;
  }
  const [addr, bits] = range;
  if (addr.kind() === 'ipv6' && bits >= 96 && (addr as ipaddr.IPv6).isIPv4MappedAddress()) {
    return [(addr as ipaddr.IPv6).toIPv4Address(), bits - 96];
  }
  return range;
}

/**
 * The ranges of TRUSTED_PROXIES, or what is wrong with them (each problem names its
 * entry). Used by the configuration schema, so a bad list stops the start.
 */
export function parseTrustedProxies(entries: readonly string[]): { ranges: Range[]; problems: string[] } {
  const ranges: Range[] = [];
  const problems: string[] = [];
  for (const entry of entries) {
    const r = parseEntry(entry);
    if (typeof r === 'string') problems.push(r);
    else ranges.push(r);
  }
  if (problems.length > 0 || ranges.length === 0) return { ranges, problems };
  const merged = merge(ranges.map(interval));
  if (covers(merged, [0n, ALL])) {
    problems.push('the list covers every IPv6 address (e.g. ::/0): that trusts every client');
  } else {
    for (const [cidr, name] of IPV4_EMBEDDINGS) {
      if (covers(merged, interval(ipaddr.IPv6.parseCIDR(cidr)))) {
        problems.push(
          name === 'IPv4-mapped'
            ? 'the list covers every IPv4 address (0.0.0.0/0, or ::ffff:0:0/96): that trusts every client'
            : `the list covers every IPv4 address in its ${name} form (${cidr}): that trusts every client`,
        );
        break;
      }
    }
  }
  return { ranges, problems };
}

/** Remembered answers per peer address; peers are few (the proxies and load balancers in front). */
const REMEMBERED = 1024;

/** A matcher for TRUSTED_PROXIES; throws when the list is invalid (the configuration schema refuses it first). */
export function trustedPeers(entries: readonly string[]): TrustedPeers {
  const { ranges, problems } = parseTrustedProxies(entries);
  if (problems.length > 0) throw new Error(`TRUSTED_PROXIES: ${problems.join('; ')}`);
  const v4 = ranges.filter((r) => r[0].kind() === 'ipv4');
  const v6 = ranges.filter((r) => r[0].kind() === 'ipv6');
  const seen = new Map<string, boolean>();
  function match(address: string): boolean {
    let addr: ipaddr.IPv4 | ipaddr.IPv6;
    try {
      addr = ipaddr.parse(address);
    } catch {
      return false;
    }
    if (addr.kind() === 'ipv6' && (addr as ipaddr.IPv6).isIPv4MappedAddress()) addr = (addr as ipaddr.IPv6).toIPv4Address();
    const list = addr.kind() === 'ipv4' ? v4 : v6;
    return list.some((r) => addr.match(r));
  }
  return {
    has(address) {
      if (ranges.length === 0 || address === '') return false;
      const known = seen.get(address);
      if (known !== undefined) return known;
      const trusted = match(address);
      if (seen.size >= REMEMBERED) seen.clear();
      seen.set(address, trusted);
      return trusted;
    },
  };
}

/**
 * The client's address: the socket `peer`, or, only when the peer is a trusted proxy,
 * the rightmost hop of X-Forwarded-For (`forwardedFor`, every line joined by commas)
 * that is not itself a trusted proxy (all trusted: the leftmost). A hop that is not a
 * plain address (`unknown`, an obfuscated name, garbage) makes the answer undefined: the
 * address cannot be known, and a caller deciding by it refuses. `[v6]:port` and
 * `v4:port` hops are read without the port.
 */
export function clientAddress(peer: string, forwardedFor: string | undefined, trusted: TrustedPeers): string | undefined {
  if (forwardedFor === undefined || !trusted.has(peer)) return peer === '' ? undefined : peer;
  const hops = forwardedFor.split(',');
  let hop: string | undefined;
  for (let i = hops.length - 1; i >= 0; i--) {
    const text = hopAddress(hops[i]!.trim());
    if (text === undefined) return undefined;
    hop = text;
    if (!trusted.has(text)) return text;
  }
  return hop ?? peer;
}

function hopAddress(hop: string): string | undefined {
  let text = hop;
  if (text.startsWith('[')) {
    const end = text.indexOf(']');
    if (end < 0) return undefined;
    text = text.slice(1, end);
  } else if (text.indexOf(':') > 0 && text.indexOf(':') === text.lastIndexOf(':')) {
    text = text.slice(0, text.indexOf(':'));
  }
  if (text.includes('%')) return undefined;
  return ipaddr.IPv4.isValidFourPartDecimal(text) || ipaddr.IPv6.isValid(text) ? text : undefined;
}
