import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { validateCallbackUrl } from '../src/domain/callback-url.ts';
import { TargetPolicy } from '../src/domain/ssrf.ts';

const policy = new TargetPolicy({});

function refusal(raw: string, p: TargetPolicy = policy): string {
  const result = validateCallbackUrl(raw, p);
  assert.equal(result.ok, false, `${raw.slice(0, 80)} should be refused`);
  return result.ok ? '' : result.reason;
}

describe('validateCallbackUrl accepts', () => {
  const cases: Array<[string, string]> = [
    ['https://nowhere2.com/0000-0002-7465-2162/updated', 'nowhere2.com'],
    ['http://example.com/', 'example.com'],
    ['https://Example.COM/Hook/Path?orcid=0000-0002-7465-2162&x=1', 'example.com'],
    ['https://example.com:8443/hook', 'example.com:8443'],
    ['http://example.com:80/hook', 'example.com'],
    ['http://93.184.216.34:8080/cb', '93.184.216.34:8080'],
    ['https://[2606:4700::1111]/cb', '[2606:4700::1111]'],
  ];
  for (const [raw, host] of cases) {
    it(raw, () => assert.deepEqual(validateCallbackUrl(raw, policy), { ok: true, url: raw, host }));
  }

  it('returns the URL exactly as given, not normalised', () => {
    const raw = 'HTTPS://Example.com:443/a/../b';
    assert.deepEqual(validateCallbackUrl(raw, policy), { ok: true, url: raw, host: 'example.com' });
  });

  it('accepts exactly 2,048 characters', () => {
    const raw = `https://example.com/${'a'.repeat(2048 - 'https://example.com/'.length)}`;
    assert.equal(raw.length, 2048);
    assert.equal(validateCallbackUrl(raw, policy).ok, true);
  });
});

describe('validateCallbackUrl refuses', () => {
  it('other schemes, with an ORCID-style sentence', () => {
    assert.equal(refusal('ftp://x'), 'Webhook uri: ftp://x is syntactically incorrect: only http and https callbacks are supported');
    assert.match(refusal('javascript:alert(1)'), /only http and https/);
    assert.match(refusal('file:///etc/passwd'), /only http and https/);
  });

  it('a URL without a scheme', () => {
    assert.match(refusal('example.com/hook'), /^Webhook uri: example\.com\/hook is syntactically incorrect: it is not an absolute URL/);
    assert.match(refusal('//example.com/hook'), /not an absolute URL/);
    assert.match(refusal(''), /not an absolute URL/);
  });

  it('credentials in the URL', () => {
    assert.match(refusal('https://user:pw@x.com/'), /user name or password/);
    assert.match(refusal('https://user@x.com/'), /user name or password/);
  });

  it('more than 2,048 characters, without echoing them all', () => {
    const reason = refusal(`https://example.com/${'a'.repeat(2100)}`);
    assert.match(reason, /2120 characters long, the limit is 2048/);
    assert.ok(reason.length < 400);
  });

  // Updated for issue 9: java.net.URI refuses these first, with ORCID's own sentence.
  it('spaces and control characters, as java.net.URI refuses them', () => {
    assert.equal(refusal('https://example.com/a b'), 'Webhook uri: https://example.com/a b is syntactically incorrect');
    assert.equal(refusal(' https://example.com/'), 'Webhook uri:  https://example.com/ is syntactically incorrect');
    assert.equal(refusal('https://exa\tmple.com/'), 'Webhook uri: https://exa\tmple.com/ is syntactically incorrect');
  });

  const internal: Array<[string, RegExp]> = [
    ['http://localhost/', /^Webhook uri: http:\/\/localhost\/ is not allowed: localhost is a loopback address$/],
    ['http://LOCALHOST:8080/', /localhost is a loopback address/],
    ['http://api.localhost./', /api\.localhost\. is a loopback address/],
    ['http://0.0.0.0/', /0\.0\.0\.0 is an unspecified address/],
    ['http://[::1]/', /::1 is a loopback address/],
    ['http://[::ffff:127.0.0.1]/', /::ffff:7f00:1 maps to 127\.0\.0\.1, a loopback address/],
    ['http://2130706433/', /127\.0\.0\.1 is a loopback address/],
    ['http://0x7f.1/', /127\.0\.0\.1 is a loopback address/],
    ['http://127.1/', /127\.0\.0\.1 is a loopback address/],
    ['http://169.254.169.254/latest/meta-data', /169\.254\.169\.254 is a link-local address/],
    ['http://10.0.0.1/', /10\.0\.0\.1 is a private address/],
    ['http://[fd00::1]/', /unique-local/],
  ];
  for (const [raw, reason] of internal) {
    it(`internal target ${raw}`, () => assert.match(refusal(raw), reason));
  }

  it('http when the policy is https-only', () => {
    const httpsOnly = new TargetPolicy({ httpsOnly: true });
    assert.match(refusal('http://example.com/', httpsOnly), /only calls https callbacks/);
    assert.equal(validateCallbackUrl('https://example.com/', httpsOnly).ok, true);
  });
});

describe('validateCallbackUrl with allowed CIDRs', () => {
  const local = new TargetPolicy({ allowedCidrs: ['127.0.0.0/8'] });

  it('accepts loopback targets the operator allowed', () => {
    assert.deepEqual(validateCallbackUrl('http://127.0.0.1:3000/cb', local), { ok: true, url: 'http://127.0.0.1:3000/cb', host: '127.0.0.1:3000' });
    assert.equal(validateCallbackUrl('http://localhost:3000/cb', local).ok, true);
    assert.equal(validateCallbackUrl('http://[::ffff:127.0.0.1]/', local).ok, true);
  });

  it('still refuses what is outside them', () => {
    assert.match(refusal('http://10.0.0.1/', local), /private/);
  });
});
