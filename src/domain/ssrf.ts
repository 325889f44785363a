import { lookup } from 'node:dns/promises';
import ipaddr from 'ipaddr.js';

/** Resolves a host name to its addresses (node:dns lookup with all: true), injectable for tests. */
export type Resolver = (hostname: string) => Promise<string[]>;

/**
 * Server-side request forgery policy: which IP addresses a callback may reach. Pure; the sender
 * applies it to every address a host resolves to, and to literal IP hosts.
 */

export type AddressCheck = { allowed: true } | { allowed: false; reason: string };

type Address = ipaddr.IPv4 | ipaddr.IPv6;
type Cidr = [Address, number];

/** How each ipaddr.js range name reads in a refusal; anything unlisted is "reserved". */
const RANGE_WORDS: Record<string, string> = {
  unspecified: 'an unspecified address',
  broadcast: 'a broadcast address',
  multicast: 'a multicast address',
  linkLocal: 'a link-local address',
  loopback: 'a loopback address',
  carrierGradeNat: 'a carrier-grade NAT address',
  private: 'a private address',
  uniqueLocal: 'a unique-local address',
  rfc6145: 'an IPv4-translated address',
  rfc6052: 'a NAT64 address',
  '6to4': 'a 6to4 address',
  teredo: 'a Teredo address',
  benchmarking: 'a benchmarking address',
  deprecatedSiteLocal: 'a site-local address',
  discard: 'a discard-only address',
};

/**
 * ipaddr.js calls everything outside its special ranges "unicast", including IPv6 space that is
 * not allocated (and the deprecated IPv4-compatible ::a.b.c.d form), so for IPv6 we also require
 * the global unicast block.
 */
const IPV6_GLOBAL_UNICAST = ipaddr.IPv6.parseCIDR('2000::/3');

export class TargetPolicy {
  readonly httpsOnly: boolean;
  private readonly allowed: Cidr[];
  private readonly resolve: Resolver | null;
  private readonly resolveTimeoutMs: number;

  constructor(opts: { allowedCidrs?: string[]; httpsOnly?: boolean; resolver?: Resolver | null; resolveTimeoutMs?: number }) {
    this.httpsOnly = opts.httpsOnly ?? false;
    this.allowed = (opts.allowedCidrs ?? []).map(parseCidr);
    this.resolve = opts.resolver === undefined ? systemResolver : opts.resolver;
    this.resolveTimeoutMs = opts.resolveTimeoutMs ?? 2000;
  }

  /**
   * Checks made at registration beyond the URL's syntax: port 0, names that are loopback by
   * definition (RFC 6761 `localhost` and `*.localhost`, and the usual /etc/hosts aliases), and
   * what the name resolves to now. A resolver failure or timeout is not a refusal: the name may
   * resolve later, and delivery checks every address again at connect time.
   */
  async checkRegistration(rawUrl: string): Promise<AddressCheck> {
    let url: URL;
    try {
      url = new URL(rawUrl);
    } catch {
      return { allowed: true }; // syntax is the URL validator's business
    }
    if (url.port === '0') return { allowed: false, reason: 'port 0 cannot be called' };
    const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    if (ipaddr.isValid(host) || host === '') return { allowed: true }; // literal IPs are checked with the syntax
    if (isLoopbackName(host)) {
      const check = this.checkAddress('127.0.0.1');
      return check.allowed ? check : { allowed: false, reason: `${host} is a loopback address` };
    }
    if (!this.resolve) return { allowed: true };
    const addresses = await withTimeout(this.resolve(host), this.resolveTimeoutMs).catch(() => null);
    for (const a of addresses ?? []) {
      const check = this.checkAddress(a);
      if (!check.allowed) return { allowed: false, reason: `${host} resolves to ${check.reason}` };
    }
    return { allowed: true };
  }

  checkAddress(ip: string): AddressCheck {
    let addr: Address;
    try {
      addr = ipaddr.parse(ip);
    } catch {
      return { allowed: false, reason: `${ip} is not an IP address` };
    }
    if (this.isAllowedByCidr(addr)) return { allowed: true };

    if (addr.kind() === 'ipv6' && (addr as ipaddr.IPv6).isIPv4MappedAddress()) {
      // A dual-stack socket connects ::ffff:a.b.c.d to a.b.c.d, so judge the embedded IPv4.
      const v4 = (addr as ipaddr.IPv6).toIPv4Address();
      if (this.isAllowedByCidr(v4)) return { allowed: true };
      const kind = refusedKind(v4);
      return kind === null ? { allowed: true } : { allowed: false, reason: `${ip} maps to ${v4.toString()}, ${kind}` };
    }

    const kind = refusedKind(addr);
    return kind === null ? { allowed: true } : { allowed: false, reason: `${ip} is ${kind}` };
  }

  private isAllowedByCidr(addr: Address): boolean {
    for (const cidr of this.allowed) {
      if (cidr[0].kind() === addr.kind() && addr.match(cidr)) return true;
    }
    return false;
  }
}

const LOOPBACK_NAMES = new Set(['localhost', 'localhost.localdomain', 'ip6-localhost', 'ip6-loopback', 'loopback']);

/** Loopback by definition, whatever a resolver says: `localhost`, `*.localhost`, the usual aliases, with or without the trailing dot. */
function isLoopbackName(hostname: string): boolean {
  const name = hostname.toLowerCase().replace(/\.$/, '');
  return LOOPBACK_NAMES.has(name) || name.endsWith('.localhost');
}

const systemResolver: Resolver = async (hostname) => (await lookup(hostname, { all: true, verbatim: true })).map((a) => a.address);

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<T>((_, reject) => { timer = setTimeout(() => reject(new Error('timeout')), ms); })])
    .finally(() => clearTimeout(timer));
}

/** null when the address is public unicast, otherwise what it is, e.g. "a loopback address". */
function refusedKind(addr: Address): string | null {
  const range: string = addr.range();
  if (range === 'unicast') {
    if (addr.kind() === 'ipv4' || addr.match(IPV6_GLOBAL_UNICAST)) return null;
    return 'not a global unicast address';
  }
  return RANGE_WORDS[range] ?? 'a reserved address';
}

/** Splits "127.0.0.0/8, 10.1.2.3 ::1" into normalised CIDRs; a bare IP means a single address. */
export function parseCidrList(spec: string): string[] {
  return spec
    .split(/[\s,]+/)
    .filter((entry) => entry !== '')
    .map((entry) => {
      const [addr, bits] = parseCidr(entry);
      return `${addr.toString()}/${bits}`;
    });
}

function parseCidr(entry: string): Cidr {
  const slash = entry.indexOf('/');
  const ip = slash === -1 ? entry : entry.slice(0, slash);
  // ipaddr.js also reads forms like "10" or "0x7f.1" as IPv4; in a config file that is a typo.
  const plainIp = ipaddr.IPv6.isValid(ip) || ipaddr.IPv4.isValidFourPartDecimal(ip);
  if (plainIp) {
    try {
      if (slash === -1) {
        const addr = ipaddr.parse(ip);
        return [addr, addr.kind() === 'ipv4' ? 32 : 128];
      }
      if (/^\d{1,3}$/.test(entry.slice(slash + 1))) return ipaddr.parseCIDR(entry);
    } catch {
      // fall through to the error below
    }
  }
  throw new Error(`allowed-targets: "${entry}" is not a CIDR range such as 127.0.0.0/8`);
}
