// dbmate-format migrations (`-- migrate:up` / `-- migrate:down`), applied one
// transaction each and recorded in dbmate's own schema_migrations table, so
// dbmate itself could take over a database that sor-drills set up.
import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

export const fixturesDir = fileURLToPath(new URL('../../fixtures/', import.meta.url));
export const migrationsDir = path.join(fixturesDir, 'migrations');
export const seedFile = path.join(fixturesDir, 'seed.sql');

export interface Migration {
  version: string;
  name: string;
  file: string;
  up: string;
  down: string;
}

const upMarker = /^--\s*migrate:up\b.*$/m;
const downMarker = /^--\s*migrate:down\b.*$/m;

/** Splits a dbmate file into its two directions; a missing marker gives an empty direction. */
export function splitMigration(text: string): { up: string; down: string; hasUp: boolean; hasDown: boolean } {
  const upMatch = upMarker.exec(text);
  const downMatch = downMarker.exec(text);
  const upStart = upMatch ? upMatch.index + upMatch[0].length : -1;
  const downStart = downMatch ? downMatch.index + downMatch[0].length : -1;
  let up = '';
  let down = '';
  if (upMatch) up = text.slice(upStart, downMatch && downMatch.index > upMatch.index ? downMatch.index : undefined);
  if (downMatch) down = text.slice(downStart, upMatch && upMatch.index > downMatch.index ? upMatch.index : undefined);
  return { up: up.trim(), down: down.trim(), hasUp: Boolean(upMatch), hasDown: Boolean(downMatch) };
}

/** True when the SQL holds something besides comments and whitespace. */
export function hasStatements(sql: string): boolean {
  const withoutComments = sql.replace(/\/\*[\s\S]*?\*\//g, '').replace(/--.*$/gm, '');
  return withoutComments.replace(/[;\s]/g, '').length > 0;
}

export async function loadMigrations(dir = migrationsDir): Promise<Migration[]> {
  const files = (await readdir(dir)).filter((file) => file.endsWith('.sql')).sort();
  const migrations: Migration[] = [];
  for (const file of files) {
    const match = /^(\d+)_(.+)\.sql$/.exec(file);
    if (!match) continue;
    const text = await readFile(path.join(dir, file), 'utf8');
    const { up, down } = splitMigration(text);
    migrations.push({ version: match[1]!, name: match[2]!, file: path.join(dir, file), up, down });
  }
  return migrations;
}
