// Process entry: the email service, a loopback HTTP service shaped like a
// transactional email API.
//   POST /send            JSON {dedup_key, to, subject, body, ...}; header Idempotency-Key.
//                         One delivery per Idempotency-Key however often it is asked: a
//                         repeated key answers 200 with the original delivery_id
//                         (duplicate: true). A request without the key is always a new delivery.
//   GET  /report          EmailReport (email-report.ts): requests and deliveries, in total,
//                         per dedup_key (from the body) and per idempotency key.
//   POST /control/fail-next {count, mode: 'status503' | 'reset'}: the next `count` sends
//                         answer 503, or have their connection destroyed (a network blip).
//   POST /control/hold-next {count}: the next `count` sends are delivered, but their answer
//                         is held until POST /control/release (or the sender dies waiting):
//                         the crash window between a relay's send and its commit.
//   POST /control/release  answers every held send.
//
// Environment: SOR_EMAIL_PORT (0: any free one); SOR_EMAIL_KEY_FROM, where a request's
// idempotency key is: `header:<name>` (default header:Idempotency-Key) or `body:<field>`.
// stdout, one JSON line each: listening {url, port}; delivered {delivery_id, dedup_key,
// idempotency_key, duplicate}; failed_on_purpose {mode, dedup_key, remaining}; held {dedup_key,
// delivery_id}; stopping {signal}.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { emptyReport, type EmailReport, type FailMode } from './email-report.js';
import { emit, intSetting } from './json-lines.js';

const maxBody = 256 * 1024;

async function readBody(req: IncomingMessage): Promise<string> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > maxBody) throw new Error('body too large');
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function reply(res: ServerResponse, status: number, value: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(value));
}

/** SOR_EMAIL_KEY_FROM: `header:<name>` or `body:<field>`; the Idempotency-Key header by default. */
function parseKeyFrom(raw: string | undefined): { kind: 'header' | 'body'; name: string } {
  const match = /^(header|body):(.+)$/.exec(raw ?? '');
  if (!match) return { kind: 'header', name: 'idempotency-key' };
  return match[1] === 'header' ? { kind: 'header', name: match[2]!.toLowerCase() } : { kind: 'body', name: match[2]! };
}

function main(): void {
  const port = intSetting(process.env, 'SOR_EMAIL_PORT', 0);
  const report: EmailReport = emptyReport();
  const deliveryByKey = new Map<string, string>();
  let failures: { count: number; mode: FailMode } = { count: 0, mode: 'status503' };
  let holds = 0;
  const held: Array<() => void> = [];
  const keyFrom = parseKeyFrom(process.env.SOR_EMAIL_KEY_FROM);
  let deliveries = 0;

  const handleSend = async (req: IncomingMessage, res: ServerResponse) => {
    const text = await readBody(req);
    let body: Record<string, unknown> = {};
    try {
      body = JSON.parse(text) as Record<string, unknown>;
    } catch {
      reply(res, 400, { error: 'body is not JSON' });
      return;
    }
    const dedupKey = typeof body.dedup_key === 'string' ? body.dedup_key : '(none)';
    const given = keyFrom.kind === 'header' ? req.headers[keyFrom.name] : body[keyFrom.name];
    const key = typeof given === 'string' && given !== '' ? given : undefined;

    report.requests += 1;
    const perDedup = (report.by_dedup_key[dedupKey] ??= { requests: 0, deliveries: 0 });
    perDedup.requests += 1;
    const perKey = key === undefined ? undefined : (report.by_idempotency_key[key] ??= { requests: 0, deliveries: 0, delivery_id: null });
    if (perKey) perKey.requests += 1;

    if (failures.count > 0) {
      failures.count -= 1;
      report.failed += 1;
      emit('failed_on_purpose', { mode: failures.mode, dedup_key: dedupKey, remaining: failures.count });
      if (failures.mode === 'reset') {
        req.socket.destroy();
        return;
      }
      reply(res, 503, { error: 'service unavailable (simulated blip)' });
      return;
    }

    const known = key === undefined ? undefined : deliveryByKey.get(key);
    if (known) {
      emit('delivered', { delivery_id: known, dedup_key: dedupKey, idempotency_key: key, duplicate: true });
      reply(res, 200, { delivery_id: known, duplicate: true });
      return;
    }
    deliveries += 1;
    const deliveryId = `D-${deliveries}`;
    report.deliveries += 1;
    perDedup.deliveries += 1;
    if (key !== undefined && perKey) {
      deliveryByKey.set(key, deliveryId);
      perKey.deliveries += 1;
      perKey.delivery_id = deliveryId;
    }
    emit('delivered', { delivery_id: deliveryId, dedup_key: dedupKey, idempotency_key: key ?? null, duplicate: false });
    if (holds > 0) {
      holds -= 1;
      emit('held', { dedup_key: dedupKey, delivery_id: deliveryId });
      held.push(() => {
        if (!res.destroyed) reply(res, 200, { delivery_id: deliveryId, duplicate: false });
      });
      return;
    }
    reply(res, 200, { delivery_id: deliveryId, duplicate: false });
  };

  const handleHoldNext = async (req: IncomingMessage, res: ServerResponse) => {
    const value = JSON.parse((await readBody(req)) || '{}') as { count?: unknown };
    const count = Number(value.count ?? 1);
    if (!Number.isInteger(count) || count < 0) {
      reply(res, 400, { error: 'expected {count: integer >= 0}' });
      return;
    }
    holds = count;
    reply(res, 200, { pending_holds: count });
  };

  const handleRelease = async (_req: IncomingMessage, res: ServerResponse) => {
    const released = held.splice(0);
    for (const answer of released) answer();
    reply(res, 200, { released: released.length });
  };

  const handleFailNext = async (req: IncomingMessage, res: ServerResponse) => {
    const value = JSON.parse((await readBody(req)) || '{}') as { count?: unknown; mode?: unknown };
    const count = Number(value.count ?? 1);
    const mode = value.mode === 'reset' ? 'reset' : value.mode === 'status503' || value.mode === undefined ? 'status503' : null;
    if (!Number.isInteger(count) || count < 0 || mode === null) {
      reply(res, 400, { error: "expected {count: integer >= 0, mode: 'status503' | 'reset'}" });
      return;
    }
    failures = { count, mode };
    reply(res, 200, { pending_failures: count, mode });
  };

  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://127.0.0.1').pathname;
    const route = `${req.method} ${path}`;
    const handler =
      route === 'POST /send'
        ? handleSend
        : route === 'POST /control/fail-next'
          ? handleFailNext
          : route === 'POST /control/hold-next'
            ? handleHoldNext
            : route === 'POST /control/release'
              ? handleRelease
          : route === 'GET /report'
            ? async () => reply(res, 200, report)
            : async () => reply(res, 404, { error: `no route ${route}` });
    handler(req, res).catch((error: unknown) => {
      if (!res.headersSent && !res.destroyed) reply(res, 400, { error: String(error) });
    });
  });
  server.listen(port, '127.0.0.1', () => {
    const address = server.address();
    const actual = address && typeof address === 'object' ? address.port : port;
    emit('listening', { url: `http://127.0.0.1:${actual}`, port: actual });
  });
  const stop = (signal: string) => {
    emit('stopping', { signal });
    server.close();
    server.closeAllConnections();
    process.exit(0);
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main();
