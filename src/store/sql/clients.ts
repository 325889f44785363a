import { num, type Dialect, type Row } from '../dialect.ts';
import type { ClientRow, TokenRow } from '../types.ts';

/* API clients and their tokens. */

export const INSERT_CLIENT = 'INSERT INTO clients (id, name, secret_hash, premium, created_at) VALUES (@id, @name, @secretHash, @premium, @createdAt)';
export const GET_CLIENT = 'SELECT * FROM clients WHERE id = @id';
/** The client's row, locked until the transaction ends (SQLite's single writer needs no lock). */
export const lockClientSql = (d: Dialect): string => `SELECT id FROM clients WHERE id = @id${d.lock('NO KEY UPDATE')}`;
export const LIST_CLIENTS = 'SELECT * FROM clients ORDER BY created_at, id';
export const REVOKE_CLIENT = 'UPDATE clients SET revoked_at = COALESCE(revoked_at, @now::bigint) WHERE id = @id';
export const DELETE_TOKENS = 'DELETE FROM tokens WHERE client_id = @id';
export const INSERT_TOKEN = 'INSERT INTO tokens (token_hash, client_id, scope, created_at, expires_at) VALUES (@tokenHash, @clientId, @scope, @createdAt, @expiresAt)';
export const FIND_TOKEN = `SELECT t.token_hash, t.client_id, t.scope, t.created_at AS t_created, t.expires_at, c.*
  FROM tokens t JOIN clients c ON c.id = t.client_id WHERE t.token_hash = @tokenHash`;

export function toClient(r: Row): ClientRow {
  return {
    id: String(r.id), name: String(r.name), secretHash: String(r.secret_hash), premium: Boolean(r.premium),
    createdAt: Number(r.created_at), revokedAt: num(r.revoked_at),
  };
}

export function toToken(r: Row): TokenRow {
  return { tokenHash: String(r.token_hash), clientId: String(r.client_id), scope: String(r.scope), createdAt: Number(r.t_created), expiresAt: Number(r.expires_at) };
}
