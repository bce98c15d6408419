// Bundles the Reconciler's child scripts (dist/reconciler/<script>.js, compiled by tsc
// just before) into one file each in dist/bundle/, with their dependencies (the MCP
// SDK, zod, pg) inside. A drill starts a Worker, a relay or the tool server several
// times a run, and Node's ES module loader spent about 180 ms of each Worker start
// reading and linking some 200 files; a single file loads in about a third of that
// (bench/RESULTS.md, "healthy run"). The code is the same, only its packaging.
//
// dist/bundle/ sits one level under dist/ like dist/reconciler/, so a path a module
// computes from import.meta.url (../../fixtures/) means the same place in a bundle.
// launch.ts's scriptPath() runs a bundle only when it is at least as new as the
// script it was made from: a bare `tsc` after this (the mutants runner does that)
// runs the freshly compiled scripts instead of a stale bundle.
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const root = fileURLToPath(new URL('..', import.meta.url));
const scripts = ['tool-server', 'worker', 'fleet-worker', 'relay', 'email-service'];

await build({
  entryPoints: scripts.map((script) => path.join(root, 'dist/reconciler', `${script}.js`)),
  outdir: path.join(root, 'dist/bundle'),
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  // pg requires pg-native only when asked for it; it is not installed.
  external: ['pg-native'],
  // CommonJS dependencies (pg, ajv) require Node's built-ins; an ES module has no require.
  banner: { js: "import { createRequire as sorDrillsCreateRequire } from 'node:module'; const require = sorDrillsCreateRequire(import.meta.url);" },
  legalComments: 'none',
  logLevel: 'warning',
});
