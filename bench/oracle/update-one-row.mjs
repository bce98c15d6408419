// The act the oracle wraps in the benchmark when psql is not on PATH: one row updated.
//   node bench/oracle/update-one-row.mjs URL ID
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const pg = require('pg');
const [url, id] = process.argv.slice(2);
const client = new pg.Client({ connectionString: url });
await client.connect();
try {
  const { rowCount } = await client.query('update big set amount = amount + 1 where id = $1::bigint', [id]);
  console.log(`UPDATE ${rowCount}`);
} finally {
  await client.end();
}
