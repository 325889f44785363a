import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TargetPolicy, parseCidrList } from '../src/domain/ssrf.ts';

const strict = new TargetPolicy({});

function reasonFor(policy: TargetPolicy, ip: string): string {
  const check = policy.checkAddress(ip);
  assert.equal(check.allowed, false, `${ip} should be refused`);
  return check.allowed ? '' : check.reason;
}

describe('TargetPolicy.checkAddress', () => {
  const refused: Array<[string, RegExp]> = [
    ['127.0.0.1', /^127\.0\.0\.1 is a loopback address$/],
    ['10.1.2.3', /private/],
    ['172.16.0.1', /private/],
    ['192.168.1.1', /private/],
    ['169.254.169.254', /link-local/],
    ['100.64.0.1', /carrier-grade NAT/],
    ['224.0.0.1', /multicast/],
    ['0.0.0.0', /unspecified/],
    ['255.255.255.255', /broadcast/],
    ['198.18.0.1', /reserved/],
    ['192.0.2.1', /reserved/],
    ['192.0.0.8', /reserved/],
    ['240.0.0.1', /reserved/],
    ['::1', /loopback/],
    ['::', /unspecified/],
    ['fe80::1', /link-local/],
    ['fc00::1', /unique-local/],
    ['fd12::1', /unique-local/],
    ['ff02::1', /multicast/],
    ['::ffff:127.0.0.1', /^::ffff:127\.0\.0\.1 maps to 127\.0\.0\.1, a loopback address$/],
    ['::ffff:7f00:1', /^::ffff:7f00:1 maps to 127\.0\.0\.1, a loopback address$/],
    ['::ffff:a9fe:a9fe', /maps to 169\.254\.169\.254, a link-local address/],
    ['64:ff9b::7f00:1', /NAT64/],
    ['::ffff:0:7f00:1', /IPv4-translated/],
    ['2002:7f00:1::', /6to4/],
    ['2001:0:4136:e378::1', /Teredo/],
    ['2001:db8::1', /reserved/],
    ['::7f00:1', /not a global unicast/],
    ['not-an-ip', /not an IP address/],
  ];
  for (const [ip, reason] of refused) {
    it(`refuses ${ip}`, () => assert.match(reasonFor(strict, ip), reason));
  }

  for (const ip of ['93.184.216.34', '2606:4700::1111', '8.8.8.8', '::ffff:93.184.216.34']) {
    it(`allows ${ip}`, () => assert.deepEqual(strict.checkAddress(ip), { allowed: true }));
  }

  it('allows addresses inside an allowed CIDR, including IPv4-mapped ones', () => {
    const policy = new TargetPolicy({ allowedCidrs: ['127.0.0.0/8'] });
    assert.deepEqual(policy.checkAddress('127.0.0.1'), { allowed: true });
    assert.deepEqual(policy.checkAddress('127.9.9.9'), { allowed: true });
    assert.deepEqual(policy.checkAddress('::ffff:127.0.0.1'), { allowed: true });
    assert.match(reasonFor(policy, '10.0.0.1'), /private/);
    assert.match(reasonFor(policy, '::1'), /loopback/);
  });

  it('a bare allowed IP covers only that address', () => {
    const policy = new TargetPolicy({ allowedCidrs: ['10.0.0.5', 'fd00::1'] });
    assert.deepEqual(policy.checkAddress('10.0.0.5'), { allowed: true });
    assert.deepEqual(policy.checkAddress('fd00::1'), { allowed: true });
    assert.equal(policy.checkAddress('10.0.0.6').allowed, false);
    assert.equal(policy.checkAddress('fd00::2').allowed, false);
  });

  it('exposes httpsOnly, false by default', () => {
    assert.equal(strict.httpsOnly, false);
    assert.equal(new TargetPolicy({ httpsOnly: true }).httpsOnly, true);
  });

  it('refuses to build with an invalid CIDR', () => {
    assert.throws(() => new TargetPolicy({ allowedCidrs: ['10.0.0.0/33'] }), /"10\.0\.0\.0\/33" is not a CIDR range/);
  });
});

describe('parseCidrList', () => {
  it('splits on commas and spaces and normalises', () => {
    assert.deepEqual(parseCidrList('127.0.0.0/8, 10.1.2.3  ::1,fd00::/8'), ['127.0.0.0/8', '10.1.2.3/32', '::1/128', 'fd00::/8']);
  });

  it('returns nothing for an empty list', () => {
    assert.deepEqual(parseCidrList(''), []);
    assert.deepEqual(parseCidrList(' , '), []);
  });

  for (const bad of ['x', '10.0.0.0/33', '::/129', '10.0.0.0/', '10.0.0.0/8/8', '0x7f.1', '10', '256.0.0.1', '127.0.0.0/x']) {
    it(`names the bad entry "${bad}"`, () => {
      assert.throws(() => parseCidrList(`127.0.0.0/8, ${bad}`), {
        message: `allowed-targets: "${bad}" is not a CIDR range such as 127.0.0.0/8`,
      });
    });
  }
});
