import { isIPv6 } from 'node:net';

/**
 * The grammar of `new java.net.URI(String)` (RFC 2396 with Java's deviations), which ORCID applies
 * to a callback before anything else (WebhooksServiceDelegatorImpl.registerWebhook): whatever it
 * rejects is 400 / 9012. WHATWG URL parsing is no substitute: it silently repairs `|`, `{`, `^`,
 * spaces and bad `%` escapes. This mirrors java.net.URI.Parser; it returns why the string is not a
 * URI (as the JDK words it), or null when Java accepts it.
 */
export function javaUriSyntaxError(s: string): string | null {
  try {
    parse(s);
    return null;
  } catch (e) {
    if (e instanceof UriSyntax) return e.message;
    throw e;
  }
}

class UriSyntax extends Error {}

const set = (chars: string) => new Set(chars);
const DIGIT = set('0123456789');
const ALPHA = set('abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ');
const HEX = set('0123456789abcdefABCDEF');
const union = (...sets: Set<string>[]) => new Set(sets.flatMap((x) => [...x]));
const ALPHANUM = union(DIGIT, ALPHA);
const UNRESERVED = union(ALPHANUM, set("-_.!~*'()"));
const RESERVED = set(';/?:@&=+$,[]');

/** A character class; `escaped` admits %XX and visible non-ASCII characters, as Java does. */
interface CharClass { chars: Set<string>; escaped: boolean }
const cls = (chars: Set<string>, escaped = true): CharClass => ({ chars, escaped });
const URIC = cls(union(RESERVED, UNRESERVED));
const PCHAR = union(UNRESERVED, set(':@&=+$,'));
const PATH = cls(union(PCHAR, set(';/')));
const USERINFO = cls(union(UNRESERVED, set(';:&=+$,')));
const REG_NAME = cls(union(UNRESERVED, set('$,;:@&=+')));
const SERVER = cls(union(USERINFO.chars, ALPHANUM, set('-.:@[]')));
const SERVER_PERCENT = cls(union(SERVER.chars, set('%')));
const SCHEME = cls(union(ALPHA, DIGIT, set('+-.')), false);

const fail = (what: string, s: string, p: number): never => {
  throw new UriSyntax(`${what} at index ${p}: ${s}`);
};

/** Index of the first character of `stop` from `start`, or `end`; -1 when a character of `err` comes first. */
function scanFor(s: string, start: number, end: number, err: string, stop: string): number {
  for (let p = start; p < end; p++) {
    if (err.includes(s[p]!)) return -1;
    if (stop.includes(s[p]!)) return p;
  }
  return end;
}

/** Java's scanEscape: a %XX pair, or one visible non-ASCII character. */
function escapeEnd(s: string, p: number, end: number): number {
  const c = s[p]!;
  if (c === '%') {
    if (p + 3 <= end && HEX.has(s[p + 1]!) && HEX.has(s[p + 2]!)) return p + 3;
    fail('Malformed escape pair', s, p);
  }
  const code = c.charCodeAt(0);
  if (code > 128 && !/[\p{Zs}\u2028\u2029]/u.test(c) && !isIsoControl(code)) return p + 1;
  return p;
}

const isIsoControl = (code: number) => code <= 0x1f || (code >= 0x7f && code <= 0x9f);

/** How far the characters from `start` belong to the class. */
function scanClass(s: string, start: number, end: number, k: CharClass): number {
  let p = start;
  while (p < end) {
    if (k.chars.has(s[p]!)) { p++; continue; }
    if (k.escaped) {
      const q = escapeEnd(s, p, end);
      if (q > p) { p = q; continue; }
    }
    break;
  }
  return p;
}

function checkChars(s: string, start: number, end: number, k: CharClass, what: string): void {
  const p = scanClass(s, start, end, k);
  if (p < end) fail(`Illegal character in ${what}`, s, p);
}

function parse(s: string): void {
  const n = s.length;
  let p = scanFor(s, 0, n, '/?#', ':');
  if (p >= 0 && s[p] === ':') {
    if (p === 0) fail('Expected scheme name', s, 0);
    if (!ALPHA.has(s[0]!)) fail('Illegal character in scheme name', s, 0);
    checkChars(s, 1, p, SCHEME, 'scheme name');
    p++;
    if (s[p] === '/') {
      p = parseHierarchical(s, p, n);
    } else {
      // Opaque: mailto:x, urn:y
      const q = scanFor(s, p, n, '', '#');
      if (q <= p) fail('Expected scheme-specific part', s, p);
      checkChars(s, p, q, URIC, 'opaque part');
      p = q;
    }
  } else {
    p = parseHierarchical(s, 0, n);
  }
  if (s[p] === '#') {
    checkChars(s, p + 1, n, URIC, 'fragment');
    p = n;
  }
  if (p < n) fail('Expected end of URI', s, p);
}

function parseHierarchical(s: string, start: number, n: number): number {
  let p = start;
  if (s[p] === '/' && s[p + 1] === '/') {
    p += 2;
    const q = scanFor(s, p, n, '', '/?#');
    if (q > p) p = parseAuthority(s, p, q);
    // Java allows an empty authority before a path, query or fragment, not at the end.
    else if (q >= n) fail('Expected authority', s, p);
  }
  let q = scanFor(s, p, n, '', '?#');
  checkChars(s, p, q, PATH, 'path');
  p = q;
  if (s[p] === '?') {
    p++;
    q = scanFor(s, p, n, '', '#');
    checkChars(s, p, q, URIC, 'query');
    p = q;
  }
  return p;
}

/** Server-based (user@host:port) or, failing that, registry-based authority, as Java decides. */
function parseAuthority(s: string, start: number, end: number): number {
  const bracketed = scanFor(s, start, end, '', ']') < end;
  const serverChars = scanClass(s, start, end, bracketed ? SERVER_PERCENT : SERVER) === end;
  const regChars = scanClass(s, start, end, REG_NAME) === end;
  if (regChars) return end;
  if (!serverChars) fail('Illegal character in authority', s, scanClass(s, start, end, REG_NAME));
  parseServer(s, start, end);
  return end;
}

/** Only reached when the authority holds `[` or `]`: it must be [user@][IPv6(%scope)](:port). */
function parseServer(s: string, start: number, end: number): void {
  let p = start;
  const at = scanFor(s, p, end, '/?#', '@');
  if (at >= 0 && at < end && s[at] === '@') {
    checkChars(s, p, at, USERINFO, 'user info');
    p = at + 1;
  }
  if (s[p] !== '[') fail('Illegal character in hostname', s, p);
  p++;
  const close = scanFor(s, p, end, '/?#', ']');
  if (close < 0 || close >= end || close <= p) fail('Expected closing bracket for IPv6 address', s, p);
  const address = s.slice(p, close);
  const pct = address.indexOf('%');
  const ip = pct < 0 ? address : address.slice(0, pct);
  if (!isIPv6(ip)) fail('Malformed IPv6 address', s, p);
  if (pct >= 0) {
    if (pct === address.length - 1) fail('scope id expected', s, p + pct);
    checkChars(s, p + pct + 1, close, cls(ALPHANUM, false), 'scope id');
  }
  p = close + 1;
  if (s[p] === ':') {
    p++;
    checkChars(s, p, end, cls(DIGIT, false), 'port number');
    p = end;
  }
  if (p < end) fail('Expected port number', s, p);
}
