import { randomInt } from 'node:crypto';

/** `dddd-dddd-dddd-dddX`: four groups of four, the last character a digit or an upper-case X. */
const ORCID_PATTERN = /^\d{4}-\d{4}-\d{4}-\d{3}[\dX]$/;

/** ISO/IEC 7064 MOD 11-2 check character over the 15 base digits. */
export function checkCharacter(baseDigits: string): string {
  if (!/^\d{15}$/.test(baseDigits)) throw new Error(`expected 15 digits, got "${baseDigits}"`);
  let total = 0;
  for (const ch of baseDigits) total = (total + Number(ch)) * 2;
  const c = (12 - (total % 11)) % 11;
  return c === 10 ? 'X' : String(c);
}

export type OrcidCheck = { ok: true } | { ok: false; reason: string };

export function checkOrcid(id: string): OrcidCheck {
  if (!ORCID_PATTERN.test(id)) {
    return { ok: false, reason: `"${id}" is not an ORCID iD: expected the form 0000-0002-1825-0097 (16 characters in four groups of four, the last a digit or X)` };
  }
  const digits = id.replaceAll('-', '');
  const expected = checkCharacter(digits.slice(0, 15));
  if (digits[15] !== expected) {
    return { ok: false, reason: `"${id}" has a wrong check character: the MOD 11-2 check character for these digits is ${expected}` };
  }
  return { ok: true };
}

export function isValidOrcid(id: string): boolean {
  return checkOrcid(id).ok;
}

function format(base: number | bigint): string {
  const digits = String(base).padStart(15, '0');
  const all = digits + checkCharacter(digits);
  return `${all.slice(0, 4)}-${all.slice(4, 8)}-${all.slice(8, 12)}-${all.slice(12)}`;
}

/** ORCID's current range of new iDs: 0009-0000-0000-0009 ... 0009-0010-0000-0003 (base digits 000900000000000 ... 000900100000000). */
export const MINT_RANGE = { from: 900_000_000_000, to: 900_100_000_000 } as const;

/** A new random valid iD in ORCID's current range (as ORCID draws new iDs). */
export function mintOrcid(): string {
  return format(MINT_RANGE.from + randomInt(0, MINT_RANGE.to - MINT_RANGE.from + 1));
}

export function orcidFromBase(base: number): string {
  return format(base);
}
