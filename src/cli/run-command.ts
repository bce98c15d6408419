// `sor-drills run`: the nine drills headless, one progress line per step on
// stderr, the bundle on disk (and on stdout with --json), exit 0 PERMITTED,
// 1 BLOCKED, 2 bad usage, 3 target unreachable.
import path from 'node:path';
import { parse } from './args.js';
import { paceOf, runFlags } from './run-flags.js';
import { exitCodes } from '../util/exit-codes.js';
import { defaultRoles, type Roles } from '../postgres/roles.js';
import type { Target } from '../postgres/target.js';
import { UsageError } from '../postgres/url.js';
import { isBundleKey, type BundleKey, type RunnerEvent } from '../drills/types.js';
import { verdictWord } from '../drills/verdict-words.js';

export const runUsage = `Usage: sor-drills run [--db URL] [--yes] [--break KEY]... [--only KEY]... [--migration FILE]
                      [--out FILE] [--json] [--junit FILE] [--gate KEY] [--pace MS] [--keep]

Runs the nine drills in order, headless, and writes the evidence bundle.
  --db URL          the target (default: DATABASE_URL, else an embedded PostgreSQL)
  --yes             consent to writing drill rows into a target that is not the embedded one
  --break KEY       run that drill with its deliberate break (repeatable)
  --only KEY        run only that drill (repeatable; the others are "fail: not run")
  --migration FILE  the proposed dbmate migration to review (default: the notes-column proposal)
  --out FILE        where to write the bundle (default: evidence/bundle-<timestamp>.md)
  --json            print the bundle object on stdout
  --junit FILE      also write JUnit XML of the drills
  --gate KEY        mastery gate: when all nine pass, repeat KEY with its deliberate break
                    and write that honest failure as a second bundle beside the first (<name>.mastery.md)
  --pace MS         milliseconds the Worker waits between tool calls (default 50)
  --worker-role, --reader-role, --owner-role NAME
                    role names of a schema installed another way
Keys: migration_review run_journal_resume_drill idempotency_retry_test concurrency_claim_test
      outbox_relay_retry_test append_only_event_test rls_identity_flip_test mcp_boundary_test
      forensics_drill
Exit: 0 PERMITTED, 1 BLOCKED, 2 bad usage, 3 target unreachable`;

function keys(values: unknown, flag: string): BundleKey[] {
  const list = (values as string[] | undefined) ?? [];
  for (const value of list) {
    if (!isBundleKey(value)) throw new UsageError(`--${flag} ${value}: not a drill (see sor-drills run --help for the keys)`);
  }
  return list as BundleKey[];
}

/** One line per step on stderr, for CI logs and pipes. */
export function progressPrinter(write: (line: string) => void): (event: RunnerEvent) => void {
  let total = 9;
  const numbers = new Map<string, number>();
  return (event) => {
    switch (event.type) {
      case 'run-started':
        total = event.drills.length;
        event.drills.forEach((drill) => numbers.set(drill.key, drill.number));
        write(`target: ${event.target}`);
        break;
      case 'drill-started':
        write(`[${numbers.get(event.key) ?? '?'}/${total}] ${event.key}${event.broken ? ' (deliberate break)' : ''}`);
        break;
      case 'step-finished':
        if (!event.ok) write(`      x ${event.summary ?? 'step failed'}`);
        break;
      case 'step-started':
        write(`      - ${event.step.title}`);
        break;
      case 'operator-ask':
        write(`      > ${event.ask.prompt}`);
        break;
      case 'drill-finished':
        write(`      = ${verdictWord(event.result.verdict)}: ${event.result.evidence}`);
        break;
      case 'log':
        write(`      ! ${event.message}`);
        break;
      default:
        break;
    }
  };
}

/**
 * The target, reached and prepared by the same rule as the console's; headless there is
 * nobody to ask, so a target that needs consent without --yes is bad usage (exit 2).
 */
async function readyTarget(options: { db?: string; keep: boolean; yes: boolean; onProgress: (line: string) => void }): Promise<Target> {
  const { resolveTarget } = await import('../postgres/target.js');
  const { prepareTarget } = await import('../postgres/prepare.js');
  const target = await resolveTarget({ db: options.db, keep: options.keep, onProgress: options.onProgress });
  try {
    const preparation = await prepareTarget(target, { consent: options.yes, onProgress: options.onProgress });
    if (preparation.kind === 'needs-consent') throw new UsageError(`${preparation.why}; pass --yes to consent`);
    return target;
  } catch (error) {
    await target.close();
    throw error;
  }
}

export async function runCommand(args: string[]): Promise<number> {
  const { values } = parse(args, runFlags, runUsage);
  if (values.help) {
    process.stdout.write(`${runUsage}\n`);
    return exitCodes.ok;
  }
  const breaks = keys(values.break, 'break');
  const only = keys(values.only, 'only');
  const gate = values.gate === undefined ? undefined : keys([values.gate], 'gate')[0];
  const paceMs = paceOf(values.pace, 50);
  const write = (line: string) => process.stderr.write(`${line}\n`);
  const roles: Roles = {
    worker: (values['worker-role'] as string | undefined) ?? defaultRoles.worker,
    reader: (values['reader-role'] as string | undefined) ?? defaultRoles.reader,
    owner: (values['owner-role'] as string | undefined) ?? defaultRoles.owner,
  };
  const target = await readyTarget({
    db: values.db as string | undefined,
    keep: Boolean(values.keep),
    yes: Boolean(values.yes),
    onProgress: write,
  });
  const prepared = { target, roles };
  const { createSession, defaultDrillOptions } = await import('../drills/session.js');
  const { renderBundle, writeBundle, draftParagraph, decisionOf, defaultBundlePath, masteryBundlePath } = await import(
    '../drills/bundle.js'
  );
  const session = createSession({
    target: prepared.target,
    roles: prepared.roles,
    breaks: new Set(breaks),
    only: only.length > 0 ? new Set(only) : undefined,
    options: {
      ...defaultDrillOptions,
      paceMs,
      migrationFile: values.migration ? path.resolve(String(values.migration)) : undefined,
    },
  });
  try {
    const when = new Date();
    const headless = { request: async (_ask: unknown, perform: () => Promise<void>) => perform() };
    const results = await session.run(headless, progressPrinter(write));
    const out = path.resolve(String(values.out ?? defaultBundlePath(when)));
    const paragraph = draftParagraph(results, session.drills, prepared.target.display);
    const document = await renderBundle(results, session.drills, paragraph, process.cwd(), {
      target: prepared.target.display,
      when,
    });
    await writeBundle(out, document.text);
    const decision = decisionOf(results);
    write(`release ${decision}: bundle written to ${path.relative(process.cwd(), out) || out}`);
    if (values.junit) {
      const { junitXml } = await import('../drills/junit.js');
      const { writeFileAtomic } = await import('../util/fs.js');
      await writeFileAtomic(path.resolve(String(values.junit)), junitXml(results, session.drills, when));
    }
    if (gate && decision === 'PERMITTED') {
      write(`mastery gate: repeating ${gate} with its deliberate break`);
      const broken = await session.runOne(gate, true, headless, progressPrinter(write));
      const gated = results.map((result) => (result.key === gate ? broken : result));
      const gateParagraph = draftParagraph(gated, session.drills, prepared.target.display);
      const gateDocument = await renderBundle(gated, session.drills, gateParagraph, process.cwd(), {
        target: prepared.target.display,
        when: new Date(),
      });
      const gateOut = masteryBundlePath(out);
      await writeBundle(gateOut, gateDocument.text);
      write(`mastery gate: ${gate} ${broken.verdict === 'pass' ? 'PASSED despite its break' : 'failed honestly'}; second bundle (${decisionOf(gated)}) written to ${path.relative(process.cwd(), gateOut)}`);
      if (broken.verdict === 'pass') return exitCodes.blocked;
    } else if (gate) {
      write(`mastery gate: not offered, the release is ${decision} already`);
    }
    if (values.json) await new Promise<void>((resolve) => process.stdout.write(`${JSON.stringify(document.bundle, null, 2)}\n`, () => resolve()));
    return decision === 'PERMITTED' ? exitCodes.ok : exitCodes.blocked;
  } finally {
    await session.close();
    await prepared.target.close();
  }
}
