import { hashSecret, newClientId, newToken } from '../domain/secrets.ts';
import type { ClientRow, Store } from '../store/types.ts';

/** A client's name: no control characters (a NUL cannot be stored by PostgreSQL; a line break breaks logs and tables). */
export const NAME_CHARACTERS = /^\P{Cc}*$/u;

/** Creates an API client; the secret is returned once and stored only as a hash. */
export async function createApiClient(store: Store, input: { name: string; premium: boolean; now?: number }): Promise<{ client: ClientRow; secret: string }> {
  const name = input.name.trim();
  if (!name) throw new Error('A client needs a name');
  // Characters as the admin API's schema counts them (code points: an emoji is one, not two UTF-16 units).
  if ([...name].length > 200) throw new Error('A client name must be at most 200 characters');
  if (!NAME_CHARACTERS.test(name)) throw new Error('A client name must not contain control characters (NUL, line breaks, tabs...)');
  const secret = newToken();
  const client = await store.createClient({ id: newClientId(), name, secretHash: await hashSecret(secret), premium: input.premium, createdAt: input.now ?? Date.now() });
  return { client, secret };
}

/** The public view of a client: never its secret hash. */
export function clientView(c: ClientRow) {
  return {
    id: c.id, name: c.name, premium: c.premium,
    created: new Date(c.createdAt).toISOString(),
    revoked: c.revokedAt === null ? null : new Date(c.revokedAt).toISOString(),
  };
}
