// `sor-drills run`: the nine drills headless, one progress line per step on
// stderr, the bundle on disk (and on stdout with --json), exit 0 PERMITTED,
// 1 BLOCKED, 2 bad usage, 3 target unreachable.
import path from 'node:path';
import { commonFlagsHelp, parse, printHelp } from './args.js';
import { checkRunInput, runFlags, type RunInput } from './run-flags.js';
import { environmentHelp, signalExitsHelp } from './usage.js';
import { writableDirectory, writableFile } from './input-checks.js';
import { exitCodes } from '../util/exit-codes.js';
import type { Target } from '../postgres/target.js';
import { UsageError } from '../postgres/url.js';
import { bundleKeys, type BundleKey, type Drill, type DrillResult, type RunnerEvent } from '../drills/types.js';
import { verdictLine } from '../drills/verdict-words.js';
import type { DrillSession } from '../drills/session.js';

/** Nobody watches a headless run: the Worker does not pause between calls unless --pace says so. */
export const headlessPaceMs = 0;

export const runUsage = `Usage: sor-drills run [--db URL] [--yes] [--profile FILE] [--break KEY]... [--only KEY]... [--migration FILE]
                      [--out FILE] [--json] [--junit FILE] [--gate KEY] [--pack] [--pace MS] [--keep]
                      [--worker-role NAME] [--reader-role NAME] [--owner-role NAME] [--no-color]

Runs the nine drills in order, headless (progress on stderr), and writes the evidence bundle.
Every flag, every file a flag names and the target are checked before anything starts.

Flags
  --db URL          the target (default: DATABASE_URL, else a throwaway embedded PostgreSQL)
  -y, --yes         consent to writing drill rows into a target that is not the embedded one
  --profile FILE    what the target calls each thing the drills need (draft it with sor-drills profile);
                    the target is drilled as it is, nothing installed. Default: the reference schema's names
  --break KEY       run that drill with its deliberate break (repeatable)
  --only KEY        run only that drill (repeatable; the others are "fail: not run")
  --migration FILE  the proposed dbmate migration to review (default: the notes-column proposal)
  --out FILE        where to write the bundle (default: evidence/bundle-<timestamp>.md)
  --json            also print the bundle object on stdout
  --junit FILE      also write JUnit XML, one test case per drill (drills not run are skipped)
  --gate KEY        mastery gate: when all nine pass, repeat KEY with its deliberate break
                    and write that honest failure as a second bundle beside the first (<name>.mastery.md)
  --pack            also pack the bundle (and the mastery bundle) with its evidence into <bundle>.tar.gz
                    for handing in; sor-drills verify checks it
  --pace MS         milliseconds the Worker waits between tool calls (default ${headlessPaceMs})
  --keep            leave the embedded cluster running after exit and print how to connect
  --worker-role NAME, --reader-role NAME, --owner-role NAME
                    role names of a schema installed another way (with --profile: its "roles")
${commonFlagsHelp()}

Keys: ${bundleKeys.slice(0, 3).join(' ')}
      ${bundleKeys.slice(3, 6).join(' ')}
      ${bundleKeys.slice(6).join(' ')}

${environmentHelp(['DATABASE_URL', 'SOR_WORKER_URL', 'NEON_API_KEY', 'PG', 'TMPDIR'])}

Exit codes
  0 PERMITTED   1 BLOCKED   2 bad usage   3 target unreachable or lacking a privilege
  ${signalExitsHelp}`;

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
        write(`      = ${verdictLine(event.result.verdict, event.result.evidence)}`);
        break;
      case 'log':
        write(`      ! ${event.message}`);
        break;
      default:
        break;
    }
  };
}

const write = (line: string) => process.stderr.write(`${line}\n`);
const shown = (file: string) => path.relative(process.cwd(), file) || file;
const headlessOperator = { request: async (_ask: unknown, perform: () => Promise<void>) => perform() };

/**
 * The target, reached and prepared by the same rule as the console's; headless there is
 * nobody to ask, so a target that needs consent without --yes is bad usage (exit 2).
 */
async function readyTarget(input: RunInput, onProgress: (line: string) => void = write): Promise<Target> {
  const { resolveTarget } = await import('../postgres/target.js');
  const { prepareTarget } = await import('../postgres/prepare.js');
  const target = await resolveTarget({ db: input.db, keep: input.keep, onProgress });
  try {
    const preparation = await prepareTarget(target, { consent: input.yes, onProgress, profile: input.profile?.source });
    if (preparation.kind === 'needs-consent') throw new UsageError(`${preparation.why}; pass --yes to consent`);
    return target;
  } catch (error) {
    await target.close();
    throw error;
  }
}

interface Run {
  session: DrillSession;
  target: Target;
  results: DrillResult[];
  out: string;
}

/**
 * The mastery gate, offered when all nine passed: the drill again with its deliberate break,
 * written as a second bundle. A break that still passes is itself a failure of the drill (exit 1).
 */
async function masteryGate(run: Run, gate: BundleKey, decision: string): Promise<number | undefined> {
  if (decision !== 'PERMITTED') {
    write(`mastery gate: not offered, the release is ${decision} already`);
    return undefined;
  }
  const { renderBundle, writeBundle, draftParagraph, decisionOf, masteryBundlePath } = await import('../drills/bundle.js');
  write(`mastery gate: repeating ${gate} with its deliberate break`);
  const broken = await run.session.runOne(gate, true, headlessOperator, progressPrinter(write));
  const gated = run.results.map((result) => (result.key === gate ? broken : result));
  const drills: readonly Drill[] = run.session.drills;
  const paragraph = draftParagraph(gated, drills, run.target.display, run.session.names);
  const gateOut = masteryBundlePath(run.out);
  const document = await renderBundle(gated, drills, paragraph, process.cwd(), { target: run.target.display, when: new Date(), file: gateOut, kind: 'mastery' });
  await writeBundle(gateOut, document.text);
  const how = broken.verdict === 'pass' ? 'PASSED despite its break' : 'failed honestly';
  write(`mastery gate: ${gate} ${how}; second bundle (${decisionOf(gated)}) written to ${shown(gateOut)}`);
  return broken.verdict === 'pass' ? exitCodes.blocked : undefined;
}

/** The headless run of checked input: every decided path writes the bundle, and prints it with --json. */
export async function runHeadless(input: RunInput): Promise<number> {
  const when = new Date();
  const { defaultBundlePath } = await import('../drills/bundle-path.js');
  const { defaultEvidenceRoot } = await import('../drills/evidence-root.js');
  // The places the run writes without a flag naming them, checked as the flags' files were.
  const out = input.out ?? writableFile('--out', defaultBundlePath(when));
  const evidenceRoot = defaultEvidenceRoot();
  writableDirectory('the evidence folder', evidenceRoot, shown(evidenceRoot));
  // The drills, the oracle, the bundle's renderer and the MCP SDK (half a second of module
  // loading) load while the cluster initialises: nothing needs them before the target is up.
  // They start loading at the target's first progress line, once the cluster's own modules
  // are in, so that initdb is not queued behind them.
  let modules: Promise<[typeof import('../drills/session.js'), typeof import('../drills/bundle.js')]> | undefined;
  const load = () => {
    modules ??= Promise.all([import('../drills/session.js'), import('../drills/bundle.js')]);
    modules.catch(() => {});
    return modules;
  };
  const target = await readyTarget(input, (line) => {
    write(line);
    void load();
  });
  let loaded;
  try {
    loaded = await load();
  } catch (error) {
    await target.close();
    throw error;
  }
  const [{ createSession, defaultDrillOptions, resolveSessionProfile }, { renderBundle, writeBundle, draftParagraph, decisionOf }] = loaded;
  let profile;
  try {
    profile = await resolveSessionProfile(target, input.profile, input.roles);
  } catch (error) {
    await target.close();
    throw error;
  }
  if (profile.given) write(`profile: ${profile.source} fits the target`);
  const session = createSession({
    target,
    roles: input.roles,
    profile,
    breaks: new Set(input.breaks),
    only: input.only.length > 0 ? new Set(input.only) : undefined,
    options: { ...defaultDrillOptions, paceMs: input.paceMs ?? headlessPaceMs, migrationFile: input.migration },
  });
  try {
    const results = await session.run(headlessOperator, progressPrinter(write));
    const paragraph = draftParagraph(results, session.drills, target.display, session.names);
    const document = await renderBundle(results, session.drills, paragraph, process.cwd(), { target: target.display, when, file: out });
    await writeBundle(out, document.text);
    const decision = decisionOf(results);
    write(`release ${decision}: bundle written to ${shown(out)}`);
    if (input.junit) {
      const { junitXml } = await import('../drills/junit.js');
      const { writeFileAtomic } = await import('../util/fs.js');
      await writeFileAtomic(input.junit, junitXml(results, session.drills, when));
    }
    let code: number = decision === 'PERMITTED' ? exitCodes.ok : exitCodes.blocked;
    if (input.gate) code = (await masteryGate({ session, target, results, out }, input.gate, decision)) ?? code;
    if (input.pack) {
      const { defaultArchivePath, packBundle } = await import('../drills/pack.js');
      const archive = defaultArchivePath(out);
      const files = await packBundle(out, archive);
      write(`packed ${files.length} files into ${shown(archive)} for handing in (sor-drills verify checks it)`);
    }
    if (input.json) await new Promise<void>((resolve) => process.stdout.write(`${JSON.stringify(document.bundle, null, 2)}\n`, () => resolve()));
    return code;
  } finally {
    await session.close();
    await target.close();
  }
}

export async function runCommand(args: string[]): Promise<number> {
  const { values } = parse(args, runFlags);
  if (values.help) {
    await printHelp(runUsage);
    return exitCodes.ok;
  }
  return runHeadless(await checkRunInput(values));
}
