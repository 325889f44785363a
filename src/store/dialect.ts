/*
 * What differs between the SQL of SQLite and PostgreSQL, in one table (pg-boss keeps its flavours
 * as flags the same way). The SQL in store/sql/ is written once with named parameters, `@name`,
 * optionally cast, `@name::bigint`; `compile` turns it into the dialect's text once per statement.
 * A third database (MySQL/MariaDB) would be a third entry here, not a copy of the statements.
 */

export type Row = Record<string, unknown>;
export type Params = Record<string, unknown>;

export interface Compiled {
  text: string;
  /** Parameter names in the order of the text's placeholders (SQLite: each `?`; PostgreSQL: $1, $2, ...). */
  names: string[];
}

export interface Dialect {
  name: 'sqlite' | 'postgres';
  compile(sql: string): Compiled;
  /** The database's current time in epoch milliseconds. */
  now: string;
  /** The rows of a list parameter (bound as an array), as a subquery of one column `value`. */
  list(param: string, type: 'text' | 'bigint'): string;
  /** `a IS DISTINCT FROM b`: true when they differ, NULLs compared as values. */
  distinct(a: string, b: string): string;
  /** Whether `text` contains `part` (both already lower-cased by the caller if needed). */
  contains(text: string, part: string): string;
  /**
   * expr with A-Z lower-cased, nothing else: SQLite's lower(); PostgreSQL's lower() also folds
   * other letters, as its locale says (É matched é there only).
   */
  lowerAscii(expr: string): string;
  /** percentile_cont over expr (interpolated; NULLs ignored). */
  percentile(expr: string, p: number): string;
  /** The number a JSON object parameter holds under key (a column), NULL when absent. */
  entry(obj: string, key: string): string;
  /** A row when the table exists (in the search path). */
  tableExists(name: string): string;
  /** Row lock of a SELECT in a transaction; SQLite has one writer and locks the whole database. */
  lock(mode: 'UPDATE' | 'NO KEY UPDATE' | 'UPDATE SKIP LOCKED'): string;
}

const PARAM = /@(\w+)(?:::(\w+(?:\[\])?))?/g;

export const sqlite: Dialect = {
  name: 'sqlite',
  // Positional `?`, one name per occurrence: better-sqlite3 binds by position faster than by name
  // (~3 µs a statement, 5 % of a registration). Integer casts stay, as CAST: it binds numbers as REAL.
  compile(sql) {
    const names: string[] = [];
    const text = sql.replace(PARAM, (_, name: string, type?: string) => {
      names.push(name);
      return type === 'bigint' || type === 'int' ? 'CAST(? AS INTEGER)' : '?';
    });
    return { text, names };
  },
  now: "CAST(unixepoch('subsec') * 1000 AS INTEGER)",
  list: (param) => `SELECT value FROM json_each(${param})`,
  distinct: (a, b) => `${a} IS NOT ${b}`,
  contains: (text, part) => `instr(${text}, ${part}) > 0`,
  lowerAscii: (expr) => `lower(${expr})`,
  percentile: (expr, p) => `percentile_cont(${expr}, ${p})`,
  // json_extract finds the key in the object SQLite parsed once per statement; a json_each scan per
  // row re-read every entry (with 32 hosts' slots, a quarter of a claim's time: issue 12). A key
  // with a double quote or a backslash cannot be written as a path label: those few take the scan.
  entry: (obj, key) => `CASE WHEN instr(${key}, '"') = 0 AND instr(${key}, '\\') = 0 THEN json_extract(${obj}, '$."' || ${key} || '"')
    ELSE (SELECT value FROM json_each(${obj}) WHERE key = ${key}) END`,
  tableExists: (name) => `SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '${name}'`,
  lock: () => '',
};

export const postgres: Dialect = {
  name: 'postgres',
  compile(sql) {
    const names: string[] = [];
    const text = sql.replace(PARAM, (_, name: string, type?: string) => {
      let i = names.indexOf(name);
      if (i < 0) i = names.push(name) - 1;
      return `$${i + 1}${type ? `::${type}` : ''}`;
    });
    return { text, names };
  },
  now: '(extract(epoch from statement_timestamp()) * 1000)::bigint',
  list: (param, type) => `SELECT unnest(${param.replace(/::\w+$/, '')}::${type}[]) AS value`,
  distinct: (a, b) => `${a} IS DISTINCT FROM ${b}`,
  contains: (text, part) => `strpos(${text}, ${part}) > 0`,
  lowerAscii: (expr) => `translate(${expr}, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')`,
  percentile: (expr, p) => `percentile_cont(${p}) WITHIN GROUP (ORDER BY ${expr})`,
  entry: (obj, key) => `(${obj}::jsonb ->> ${key})::int`,
  tableExists: (name) => `SELECT 1 WHERE to_regclass('${name}') IS NOT NULL`,
  lock: (mode) => ` FOR ${mode}`,
};

/** A nullable number column. */
export const num = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));
