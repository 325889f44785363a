import { isIP } from 'node:net';
import { javaUriSyntaxError } from './java-uri.ts';
import type { TargetPolicy } from './ssrf.ts';

export type CallbackUrlCheck = { ok: true; url: string; host: string } | { ok: false; reason: string };

const MAX_CALLBACK_URL_LENGTH = 2048;

/**
 * The URL a stored callback is called at. ORCID (WebhookManagerImpl.doPost) calls a callback that
 * does not start with "http" as `http://` + the callback; every callback we accept without
 * --compat orcid starts with http, so this only changes scheme-less ones accepted under it.
 */
export function deliveryUrl(uri: string): string {
  return uri.toLowerCase().startsWith('http') ? uri : `http://${uri}`;
}

/**
 * Checks a callback URI at registration. First ORCID's own check, `new java.net.URI(uri)`, with
 * ORCID's message (apiError.badrequest_incorrect_webhook.exception); then ours: an absolute http(s)
 * URL with a host, no credentials, not URL-encoded twice, at most 2,048 characters, and a target
 * the address policy allows. With `compat` (--compat orcid) a scheme-less callback is accepted as
 * ORCID accepts it, and checked as the http:// URL it will be called at.
 *
 * The URL is kept exactly as given (ORCID stores it that way and integrators unregister with the
 * same string); `host` is the lower-cased host[:port] the delivery side uses to limit concurrency
 * per receiver.
 */
export function validateCallbackUrl(raw: string, policy: TargetPolicy, opts: { compat?: boolean } = {}): CallbackUrlCheck {
  if (javaUriSyntaxError(raw) !== null) return { ok: false, reason: `Webhook uri: ${raw} is syntactically incorrect` };
  const syntax = (why: string): CallbackUrlCheck => ({ ok: false, reason: `Webhook uri: ${shorten(raw)} is syntactically incorrect: ${why}` });
  const refused = (why: string): CallbackUrlCheck => ({ ok: false, reason: `Webhook uri: ${shorten(raw)} is not allowed: ${why}` });

  if (raw.length > MAX_CALLBACK_URL_LENGTH) return syntax(`it is ${raw.length} characters long, the limit is ${MAX_CALLBACK_URL_LENGTH}`);
  // Decoded once it still reads as an encoded URL: the integrator encoded it twice.
  if (/^https?%3a/i.test(raw)) return syntax('it is URL-encoded twice; encode the callback URL once');

  const target = opts.compat ? deliveryUrl(raw) : raw;
  let url: URL;
  try {
    url = new URL(target);
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

function isLocalhostName(hostname: string): boolean {
  const name = hostname.endsWith('.') ? hostname.slice(0, -1) : hostname;
  return name === 'localhost' || name.endsWith('.localhost');
}

/** Keeps error messages readable when the rejected URL is enormous. */
function shorten(raw: string): string {
  return raw.length > 200 ? `${raw.slice(0, 200)}…` : raw;
}
