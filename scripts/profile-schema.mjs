// Writes profile.schema.json, the published JSON Schema of a profile, from the zod
// schema in src/postgres/profile/schema.ts (built into dist/ first: npm run profile-schema).
// test/unit/profile.test.ts fails when the file and the zod schema disagree.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { profileJsonSchema } from '../dist/postgres/profile/schema.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
writeFileSync(path.join(root, 'profile.schema.json'), `${JSON.stringify(profileJsonSchema(), null, 2)}\n`);
console.log('wrote profile.schema.json');
