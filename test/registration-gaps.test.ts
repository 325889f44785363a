import assert from 'node:assert/strict';
import { hostname } from 'node:os';
import { lookup } from 'node:dns/promises';
import { after, before, describe, test } from 'node:test';
import { TargetPolicy } from '../src/domain/ssrf.ts';
import { SEED_ORCID, backends, snapshot, startHarness, webhookPath, type Harness } from './helpers/harness.ts';

describe('TargetPolicy.checkRegistration', () => {
  const fakeDns = new Map([['internal.example', ['10.1.2.3']], ['mixed.example', ['93.184.215.14', '::1']], ['public.example', ['93.184.215.14']]]);
  const policy = new TargetPolicy({
    resolver: async (name) => {
      const found = fakeDns.get(name);
      if (!found) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${name}`), { code: 'ENOTFOUND' });
      return found;
    },
  });

  test('a name resolving to a refused address is refused; public, unknown and slow names are not', async () => {
    assert.deepEqual(await policy.checkRegistration('https://internal.example/x'), { allowed: false, reason: 'internal.example resolves to 10.1.2.3 is a private address' });
    assert.equal((await policy.checkRegistration('https://mixed.example/x')).allowed, false);
    assert.equal((await policy.checkRegistration('https://public.example/x')).allowed, true);
    assert.equal((await policy.checkRegistration('https://unknown.example/x')).allowed, true, 'a resolver failure is not a refusal');
    const slow = new TargetPolicy({ resolver: () => new Promise(() => undefined), resolveTimeoutMs: 50 });
    assert.equal((await slow.checkRegistration('https://slow.example/x')).allowed, true, 'a resolver timeout is not a refusal');
  });

  test('allowed-targets opens loopback names and resolved addresses alike', async () => {
    const open = new TargetPolicy({ allowedCidrs: ['127.0.0.0/8', '10.0.0.0/8'], resolver: async () => ['10.1.2.3'] });
    assert.equal((await open.checkRegistration('http://localhost.localdomain:8080/x')).allowed, true);
    assert.equal((await open.checkRegistration('http://internal.example/x')).allowed, true);
  });
});

for (const { backend, skip } of await backends()) describe(`registration gaps on ${backend}`, { skip }, () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({}, { backend });
    await h.store.addRecords([SEED_ORCID], Date.now());
  });
  after(() => h.close());

  const put = (cb: string) => h.svc.app.inject({ method: 'PUT', url: webhookPath(SEED_ORCID, cb), headers: { accept: 'application/json', authorization: `Bearer ${h.token}` } });

  test('port 0 and names loopback by definition: 400 / 9012 "not allowed", nothing stored', async () => {
    const before = await snapshot(h.store);
    for (const cb of [
      'https://example.org:0/x', 'http://example.org:00/x',
      'http://localhost.localdomain/x', 'http://LOCALHOST.LOCALDOMAIN./x', 'http://ip6-localhost/x', 'http://ip6-loopback:8080/x',
      'http://a.b.localhost/x', 'http://localhost./x', 'http://foo.localhost./x',
    ]) {
      const res = await put(cb);
      assert.equal(res.statusCode, 400, `${cb}: ${res.body}`);
      assert.equal(res.json()['error-code'], 9012, cb);
      assert.match(res.json()['developer-message'], /is not allowed: .*(port 0|loopback)/, cb);
    }
    assert.deepEqual(await snapshot(h.store), before);
  });

  test('a name the system resolver maps to loopback (this host\'s own name) is refused at registration', async (t) => {
    const name = hostname();
    const addrs = await lookup(name, { all: true }).catch(() => []);
    const policy = new TargetPolicy({});
    if (!addrs.length || addrs.every((a) => policy.checkAddress(a.address).allowed)) return t.skip(`${name} does not resolve to a refused address here`);
    const res = await put(`http://${name}/x`);
    assert.equal(res.statusCode, 400, res.body);
    assert.match(res.json()['developer-message'], new RegExp(`${name} resolves to`));
  });
});
