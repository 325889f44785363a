import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseIsoTime } from '../src/domain/time.ts';
import { checkCharacter, checkOrcid, isValidOrcid, MINT_RANGE, mintOrcid, orcidFromBase } from '../src/domain/orcid-id.ts';

/**
 * The ISO/IEC 7064 MOD 11-2 primitive exactly as ../shared/ORCID.md spells it, independent of the
 * code under test: `total = (total + d) * 2` per digit, `r = total % 11`, `c = (12 - r) % 11`.
 */
function mod112(baseDigits: string): string {
  let total = 0;
  for (const ch of baseDigits) total = (total + ch.charCodeAt(0) - 48) * 2;
  const r = total % 11;
  const c = (12 - r) % 11;
  return c === 10 ? 'X' : String(c);
}

const digitsOf = (id: string) => id.replaceAll('-', '');
const group = (sixteen: string) => `${sixteen.slice(0, 4)}-${sixteen.slice(4, 8)}-${sixteen.slice(8, 12)}-${sixteen.slice(12)}`;

/** iDs known to be valid (ORCID's documentation and well-known public records). */
const KNOWN_VALID = ['0000-0002-1825-0097', '0000-0002-7465-2162', '0000-0001-5109-3700', '0000-0002-1694-233X'];

describe('MOD 11-2 reference primitive (sanity of the test itself)', () => {
  it('agrees with the last character of every known valid iD', () => {
    for (const id of KNOWN_VALID) {
      const d = digitsOf(id);
      assert.equal(mod112(d.slice(0, 15)), d[15], id);
    }
  });

  it('computes X for 0000-0002-1694-233X by hand: remainder 2 gives 10', () => {
    let total = 0;
    for (const ch of '000000021694233') total = (total + Number(ch)) * 2;
    assert.equal(total % 11, 2);
    assert.equal((12 - (total % 11)) % 11, 10);
  });
});

describe('checkCharacter', () => {
  it('gives the check character of each known valid iD', () => {
    for (const id of KNOWN_VALID) {
      const d = digitsOf(id);
      assert.equal(checkCharacter(d.slice(0, 15)), mod112(d.slice(0, 15)), id);
      assert.equal(checkCharacter(d.slice(0, 15)), d[15], id);
    }
  });

  it('agrees with the reference primitive over many base numbers, X included', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 5000; i++) {
      const base = String(900_000_000_000 + i * 7919).padStart(15, '0');
      const c = checkCharacter(base);
      assert.equal(c, mod112(base), base);
      seen.add(c);
    }
    // Every one of the 11 possible check characters (0-9 and X) came up.
    assert.deepEqual([...seen].sort(), ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9', 'X']);
  });

  it('refuses anything but exactly 15 ASCII digits', () => {
    for (const bad of ['', '00000002182500', '0000000218250097', '0000-0002-1825-009', '00000002182500a', '٠٠٠٠٠٠٠٢١٨٢٥٠٠٩']) {
      assert.throws(() => checkCharacter(bad), /expected 15 digits/, JSON.stringify(bad));
    }
  });
});

describe('checkOrcid / isValidOrcid', () => {
  it('accepts the known valid iDs', () => {
    for (const id of KNOWN_VALID) {
      assert.deepEqual(checkOrcid(id), { ok: true }, id);
      assert.equal(isValidOrcid(id), true, id);
    }
  });

  it('accepts iDs whose check character is X (found with the reference primitive)', () => {
    const xs: string[] = [];
    for (let base = 1_000_000; xs.length < 20; base++) {
      const d = String(base).padStart(15, '0');
      if (mod112(d) === 'X') xs.push(group(`${d}X`));
    }
    for (const id of xs) {
      assert.equal(isValidOrcid(id), true, id);
      // The same digits with any other final character are wrong.
      assert.equal(isValidOrcid(`${id.slice(0, -1)}0`), false, id);
    }
  });

  it('rejects a wrong check character and names the right one', () => {
    for (const id of KNOWN_VALID) {
      const d = digitsOf(id);
      const right = mod112(d.slice(0, 15));
      for (const wrong of ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9', 'X'].filter((c) => c !== right)) {
        const bad = group(d.slice(0, 15) + wrong);
        const r = checkOrcid(bad);
        assert.equal(r.ok, false, bad);
        assert.equal(isValidOrcid(bad), false, bad);
        if (!r.ok) {
          assert.match(r.reason, /wrong check character/);
          assert.ok(r.reason.includes(bad), r.reason);
          assert.ok(r.reason.endsWith(` is ${right}`), r.reason);
        }
      }
    }
  });

  it('rejects a transposition of two base digits (what the checksum is for)', () => {
    // 1825 -> 8125 in 0000-0002-1825-0097
    assert.equal(isValidOrcid('0000-0002-8125-0097'), false);
  });

  it('rejects a lower-case x', () => {
    assert.equal(isValidOrcid('0000-0002-1694-233x'), false);
    const r = checkOrcid('0000-0002-1694-233x');
    assert.equal(r.ok, false);
    if (!r.ok) assert.match(r.reason, /is not an ORCID iD/);
  });

  const malformed: Array<[string, string]> = [
    ['no hyphens', '0000000218250097'],
    ['groups of 3-5-4-4', '000-00002-1825-0097'],
    ['groups of 4-4-4-2-2', '0000-0002-1825-00-97'],
    ['hyphens elsewhere', '00000-002-1825-0097'],
    ['15 digits', '0000-0002-1825-009'],
    ['17 digits', '0000-0002-1825-00970'],
    ['17 digits in the first group', '00000-0002-1825-0097'],
    ['leading space', ' 0000-0002-1825-0097'],
    ['trailing space', '0000-0002-1825-0097 '],
    ['trailing newline', '0000-0002-1825-0097\n'],
    ['spaces instead of hyphens', '0000 0002 1825 0097'],
    ['space inside a group', '0000-0002-18 5-0097'],
    ['a URL', 'https://orcid.org/0000-0002-1825-0097'],
    ['X before the end', '0000-0002-1825-X097'],
    ['a letter in a group', '0000-000A-1825-0097'],
    ['the empty string', ''],
    ['non-ASCII digits', '٠٠٠٠-٠٠٠٢-١٨٢٥-٠٠٩٧'],
  ];
  for (const [what, id] of malformed) {
    it(`rejects ${what}: ${JSON.stringify(id)}`, () => {
      const r = checkOrcid(id);
      assert.equal(r.ok, false);
      assert.equal(isValidOrcid(id), false);
      if (!r.ok) assert.match(r.reason, /is not an ORCID iD: expected the form 0000-0002-1825-0097/);
    });
  }
});

describe('orcidFromBase', () => {
  it('formats the first iD of the current range', () => {
    assert.equal(orcidFromBase(900_000_000_000), '0009-0000-0000-0009');
  });

  it('formats the last iD of the current range', () => {
    assert.equal(orcidFromBase(900_100_000_000), '0009-0010-0000-0003');
  });

  it('pads with leading zeros and appends the MOD 11-2 check character', () => {
    assert.equal(orcidFromBase(21_825_009), '0000-0002-1825-0097');
    assert.equal(orcidFromBase(21_694_233), '0000-0002-1694-233X');
    for (const base of [0, 1, 15_000_000, 350_000_000, 900_012_345_678]) {
      const d = String(base).padStart(15, '0');
      assert.equal(orcidFromBase(base), group(d + mod112(d)), String(base));
    }
  });
});

describe('mintOrcid', () => {
  it('mints 1,000 valid iDs inside 0009-0000-0000-0009 ... 0009-0010-0000-0003', () => {
    const low = BigInt(MINT_RANGE.from);
    const high = BigInt(MINT_RANGE.to);
    assert.equal(low, 900_000_000_000n);
    assert.equal(high, 900_100_000_000n);
    const ids = new Set<string>();
    for (let i = 0; i < 1000; i++) {
      const id = mintOrcid();
      assert.match(id, /^0009-00\d\d-\d{4}-\d{3}[\dX]$/, id);
      const d = digitsOf(id);
      assert.equal(d[15], mod112(d.slice(0, 15)), id);
      assert.equal(isValidOrcid(id), true, id);
      const base = BigInt(d.slice(0, 15));
      assert.ok(base >= low && base <= high, id);
      // Lexical order of iDs in the range equals numeric order, so the range bounds compare as strings.
      assert.ok(id >= '0009-0000-0000-0009' && id <= '0009-0010-0000-0003', id);
      ids.add(id);
    }
    // Drawn at random from 10^11 numbers: 1,000 draws practically never collide.
    assert.ok(ids.size >= 999, `only ${ids.size} distinct iDs`);
  });

  it('spreads over the range rather than counting up from its start', () => {
    const bases = Array.from({ length: 200 }, () => Number(digitsOf(mintOrcid()).slice(0, 15)) - MINT_RANGE.from);
    const span = MINT_RANGE.to - MINT_RANGE.from;
    assert.ok(bases.some((b) => b < span / 4), 'nothing in the lowest quarter');
    assert.ok(bases.some((b) => b > (3 * span) / 4), 'nothing in the highest quarter');
  });
});

it('ISO times: zone-less times are UTC; garbage is refused', () => {
  assert.equal(parseIsoTime('2026-01-31T12:00:00Z'), Date.UTC(2026, 0, 31, 12));
  assert.equal(parseIsoTime('2026-01-31T12:00:00'), Date.UTC(2026, 0, 31, 12));
  assert.equal(parseIsoTime('2026-01-31T12:00:00.250+02:00'), Date.UTC(2026, 0, 31, 10, 0, 0, 250));
  assert.equal(parseIsoTime('2026-01-31'), Date.UTC(2026, 0, 31));
  for (const bad of ['yesterday', '31/01/2026', '2026-13-01T00:00:00Z', '', '1700000000']) assert.equal(parseIsoTime(bad), null, bad);
  // Impossible dates and times are refused, not rolled over into the next month or day.
  for (const bad of ['2026-02-31T00:00:00Z', '2026-02-29', '2026-04-31T12:00:00Z', '2026-01-31T24:00:00Z', '2026-01-31T23:60:00Z', '2026-01-31T23:59:60Z', '2026-00-10']) {
    assert.equal(parseIsoTime(bad), null, bad);
  }
  assert.equal(parseIsoTime('2028-02-29T23:59:59Z'), Date.UTC(2028, 1, 29, 23, 59, 59), 'a leap day');
});
