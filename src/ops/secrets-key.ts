import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SecretBox, SecretBoxError, keyId, newKey, parseKey } from '../domain/secret-box.ts';

/**
 * Where the signing secrets' key comes from: the --secrets-key setting (ORCID_WEBHOOKS_SECRETS_KEY,
 * one key or several separated by commas, the first sealing), or else the file `secrets-key` in
 * the data directory, generated (mode 0600) on first use; one key per line, the first sealing.
 */
export const SECRETS_KEY_FILE = 'secrets-key';

export interface LoadedKeys {
  box: SecretBox;
  /** The key file, or null when the keys came from the setting. */
  file: string | null;
  keys: string[];
}

export function parseKeyList(text: string, where: string): string[] {
  const keys = text.split('\n').filter((line) => !line.trim().startsWith('#')).join('\n').split(/[\s,]+/).filter((k) => k !== '');
  if (!keys.length) throw new SecretBoxError(`${where}: no key`);
  for (const k of keys) parseKey(k, where);
  return keys;
}

function keyFileText(keys: string[]): string {
  return `# orcid-webhooks secrets key (AES-256-GCM for signing secrets at rest). Keep it with backups of\n# the database, but not in them. First line seals; any other line only opens (during a rotation).\n${keys.join('\n')}\n`;
}

/** Writes the key file atomically (a crash leaves the old or the new file, never half of one). */
function writeKeyFile(file: string, keys: string[]): void {
  const tmp = `${file}.tmp`;
  writeFileSync(tmp, keyFileText(keys), { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, file);
}

export function loadSecretBox(settingKeys: string | null, dataDir: string): LoadedKeys {
  if (settingKeys) {
    const keys = parseKeyList(settingKeys, '--secrets-key (ORCID_WEBHOOKS_SECRETS_KEY)');
    return { box: new SecretBox(keys.map((k) => parseKey(k, '--secrets-key'))), file: null, keys };
  }
  const file = join(dataDir, SECRETS_KEY_FILE);
  if (!existsSync(file)) {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    try {
      // 'wx': two processes starting at once on one data directory keep the first one's key.
      writeFileSync(file, keyFileText([newKey()]), { mode: 0o600, flag: 'wx' });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
  }
  chmodSync(file, 0o600);
  const keys = parseKeyList(readFileSync(file, 'utf8'), file);
  return { box: new SecretBox(keys.map((k) => parseKey(k, file))), file, keys };
}

/**
 * Rotation of the key file, safe against a crash at any step: (1) the file gets a new first key,
 * the old ones kept; (2) `reseal` re-encrypts every secret with it; (3) the old keys are dropped.
 */
export async function rotateKeyFile(file: string, reseal: (box: SecretBox) => Promise<number>): Promise<{ resealed: number; newKeyId: string; dropped: string[] }> {
  const old = parseKeyList(readFileSync(file, 'utf8'), file);
  const fresh = newKey();
  writeKeyFile(file, [fresh, ...old]);
  const resealed = await reseal(new SecretBox([fresh, ...old].map((k) => parseKey(k, file))));
  writeKeyFile(file, [fresh]);
  return { resealed, newKeyId: keyId(parseKey(fresh, file)), dropped: old.map((k) => keyId(parseKey(k, file))) };
}
