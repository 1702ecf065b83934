// CIDR lists of `cidr_list` settings (security.ip_allowlist): parsing, matching and
// intersecting, with ipaddr.js.
//
// - An IPv4-mapped IPv6 range (`::ffff:10.0.0.0/104`) and an IPv4-mapped address are
//   the IPv4 range or address they stand for, so `::ffff:10.1.2.3` matches `10.0.0.0/8`.
// - Two CIDR ranges are either nested or disjoint, so the intersection of two lists is,
//   for each nested pair, the more specific range of the pair.
// - NO_NETWORK (`none`) is the effective value of an allowlist whose levels admit no
//   network in common: a list that is not empty and matches nothing. It cannot be
//   written in a document (it is not a CIDR); an item that does not parse admits nothing.
import ipaddr from 'ipaddr.js';

/** The allowlist that admits nothing: levels that each restrict the networks, with none in common. */
export const NO_NETWORK = 'none';

type Addr = ipaddr.IPv4 | ipaddr.IPv6;
export interface CidrRange {
  /** The item as written. */
  text: string;
  addr: Addr;
  bits: number;
}

/** A parsed list: the ranges by family; items that do not parse admit nothing. */
export interface CidrMatcher {
  v4: ReadonlyArray<[ipaddr.IPv4, number]>;
  v6: ReadonlyArray<[ipaddr.IPv6, number]>;
}

/** One item (`10.0.0.0/8`, `2001:db8::/32`, a bare address), IPv4-mapped IPv6 as IPv4; undefined when not one. */
export function parseCidr(text: string): CidrRange | undefined {
  let addr: Addr;
  let bits: number;
  try {
    if (text.includes('/')) {
      if (ipaddr.IPv4.isValidCIDRFourPartDecimal(text)) [addr, bits] = ipaddr.IPv4.parseCIDR(text);
      else if (ipaddr.IPv6.isValidCIDR(text) && !text.includes('%')) [addr, bits] = ipaddr.IPv6.parseCIDR(text);
      else return undefined;
    } else if (ipaddr.IPv4.isValidFourPartDecimal(text)) {
      [addr, bits] = [ipaddr.IPv4.parse(text), 32];
    } else if (ipaddr.IPv6.isValid(text) && !text.includes('%')) {
      [addr, bits] = [ipaddr.IPv6.parse(text), 128];
    } else {
      return undefined;
    }
  } catch {
    return undefined;
  }
  if (addr.kind() === 'ipv6' && bits >= 96 && (addr as ipaddr.IPv6).isIPv4MappedAddress()) {
    return { text, addr: (addr as ipaddr.IPv6).toIPv4Address(), bits: bits - 96 };
  }
  return { text, addr, bits };
}

/** Whether `outer` contains `inner` (same family, shorter or equal prefix, inner's network inside). */
function contains(outer: CidrRange, inner: CidrRange): boolean {
  if (outer.addr.kind() !== inner.addr.kind() || outer.bits > inner.bits) return false;
  return inner.addr.kind() === 'ipv4'
    ? (inner.addr as ipaddr.IPv4).match(outer.addr as ipaddr.IPv4, outer.bits)
    : (inner.addr as ipaddr.IPv6).match(outer.addr as ipaddr.IPv6, outer.bits);
}

/**
 * The networks both lists admit, as items of theirs: for every nested pair, the more
 * specific one (`a`'s item when both are the same range). Empty when they have none in
 * common; items that do not parse (NO_NETWORK) admit nothing.
 */
export function intersectCidrs(a: readonly string[], b: readonly string[]): string[] {
  const pa = a.map(parseCidr).filter((r): r is CidrRange => r !== undefined);
  const pb = b.map(parseCidr).filter((r): r is CidrRange => r !== undefined);
  const out: CidrRange[] = [];
  const add = (r: CidrRange) => {
    if (!out.some((o) => contains(o, r) && contains(r, o))) out.push(r);
  };
  for (const x of pa) {
    for (const y of pb) {
      if (contains(y, x)) add(x);
      else if (contains(x, y)) add(y);
    }
  }
  // A range inside another kept range adds nothing: keep the list minimal.
  return out.filter((r) => !out.some((o) => o !== r && contains(o, r) && !contains(r, o))).map((r) => r.text);
}

/** The matcher of a list (parse once per settings snapshot). */
export function cidrMatcher(items: readonly string[]): CidrMatcher {
  const v4: Array<[ipaddr.IPv4, number]> = [];
  const v6: Array<[ipaddr.IPv6, number]> = [];
  for (const item of items) {
    const r = parseCidr(item);
    if (r === undefined) continue;
    if (r.addr.kind() === 'ipv4') v4.push([r.addr as ipaddr.IPv4, r.bits]);
    else v6.push([r.addr as ipaddr.IPv6, r.bits]);
  }
  return { v4, v6 };
}

/** A client address as ipaddr.js reads it (IPv4-mapped IPv6 as IPv4); undefined when not an address. */
export function parseAddress(text: string): Addr | undefined {
  if (text.includes('%')) return undefined;
  let addr: Addr;
  if (ipaddr.IPv4.isValidFourPartDecimal(text)) addr = ipaddr.IPv4.parse(text);
  else if (ipaddr.IPv6.isValid(text)) addr = ipaddr.IPv6.parse(text);
  else return undefined;
  return addr.kind() === 'ipv6' && (addr as ipaddr.IPv6).isIPv4MappedAddress() ? (addr as ipaddr.IPv6).toIPv4Address() : addr;
}

/** Whether the matcher admits `addr`. */
export function admits(m: CidrMatcher, addr: Addr): boolean {
  if (addr.kind() === 'ipv4') {
    const a = addr as ipaddr.IPv4;
    return m.v4.some((r) => a.match(r));
  }
  const a = addr as ipaddr.IPv6;
  return m.v6.some((r) => a.match(r));
}
