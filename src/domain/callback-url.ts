import { isIP } from 'node:net';
import type { TargetPolicy } from './ssrf.ts';

export type CallbackUrlCheck = { ok: true; url: string; host: string } | { ok: false; reason: string };

export const MAX_CALLBACK_URL_LENGTH = 2048;

/**
 * Checks a callback URI at registration. The URL is kept exactly as given (ORCID stores it that
 * way and integrators unregister with the same string); `host` is the lower-cased host[:port] the
 * delivery side uses to limit concurrency per receiver.
 */
export function validateCallbackUrl(raw: string, policy: TargetPolicy): CallbackUrlCheck {
  const syntax = (why: string): CallbackUrlCheck => ({ ok: false, reason: `Webhook uri: ${shorten(raw)} is syntactically incorrect: ${why}` });
  const refused = (why: string): CallbackUrlCheck => ({ ok: false, reason: `Webhook uri: ${shorten(raw)} is not allowed: ${why}` });

  if (raw.length > MAX_CALLBACK_URL_LENGTH) return syntax(`it is ${raw.length} characters long, the limit is ${MAX_CALLBACK_URL_LENGTH}`);
  // WHATWG parsing silently strips or escapes these, so the stored string and the URL called would differ.
  if (/\s/.test(raw) || hasControlCharacter(raw)) return syntax('it contains spaces or control characters');

  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return syntax('it is not an absolute URL such as https://example.com/orcid-updated');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return syntax('only http and https callbacks are supported');
  if (policy.httpsOnly && url.protocol !== 'https:') return refused('this server only calls https callbacks');
  if (url.hostname === '') return syntax('it has no host');
  if (url.username !== '' || url.password !== '') return syntax('it must not contain a user name or password');

  // After WHATWG normalisation every numeric host spelling (2130706433, 0x7f.1, 127.1) is dotted IPv4.
  const hostname = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  if (isIP(hostname) !== 0) {
    const check = policy.checkAddress(hostname);
    if (!check.allowed) return refused(check.reason);
  } else if (isLocalhostName(hostname)) {
    // Resolvers answer localhost without DNS; refuse it here rather than only at delivery time.
    const check = policy.checkAddress('127.0.0.1');
    if (!check.allowed) return refused(`${hostname} is a loopback address`);
  }

  return { ok: true, url: raw, host: url.host.toLowerCase() };
}

function hasControlCharacter(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}

function isLocalhostName(hostname: string): boolean {
  const name = hostname.endsWith('.') ? hostname.slice(0, -1) : hostname;
  return name === 'localhost' || name.endsWith('.localhost');
}

/** Keeps error messages readable when the rejected URL is enormous. */
function shorten(raw: string): string {
  return raw.length > 200 ? `${raw.slice(0, 200)}…` : raw;
}
