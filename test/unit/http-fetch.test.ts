// The Worker's fetch over node:http: what the MCP transport reads of a response (status,
// headers, JSON, an SSE stream it aborts) must be what the global fetch gives.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpFetch } from '../../src/reconciler/http-fetch.js';

let server: Server;
let base: string;
const seen: { method?: string; headers?: Record<string, unknown>; body?: string }[] = [];
let sseClosed: Promise<void>;
let markSseClosed: () => void;

beforeAll(async () => {
  sseClosed = new Promise((resolve) => (markSseClosed = resolve));
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => {
      seen.push({ method: req.method, headers: req.headers, body });
      if (req.url === '/json') {
        res.writeHead(200, { 'content-type': 'application/json', 'mcp-session-id': 'abc' });
        res.end(JSON.stringify({ echoed: body }));
      } else if (req.url === '/accepted') {
        res.writeHead(202);
        res.end();
      } else if (req.url === '/empty') {
        res.writeHead(204);
        res.end();
      } else if (req.url === '/sse') {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write('data: one\n\n');
        res.on('close', () => markSseClosed());
      } else {
        res.writeHead(404, 'Nope');
        res.end('not here');
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

describe('httpFetch', () => {
  it('posts the body with the headers given as a record or as Headers, and reads JSON and response headers', async () => {
    const response = await httpFetch(`${base}/json`, {
      method: 'POST',
      headers: new Headers({ authorization: 'Bearer t', 'content-type': 'application/json' }),
      body: '{"a":1}',
    });
    expect(response.ok).toBe(true);
    expect(response.headers.get('mcp-session-id')).toBe('abc');
    expect(await response.json()).toEqual({ echoed: '{"a":1}' });
    expect(seen.at(-1)).toMatchObject({ method: 'POST', body: '{"a":1}', headers: { authorization: 'Bearer t' } });
    await httpFetch(new URL(`${base}/json`), { headers: { 'x-one': '1' } }).then((r) => r.text());
    expect(seen.at(-1)).toMatchObject({ method: 'GET', headers: { 'x-one': '1' } });
  });

  it('gives status and status text of a refusal, and bodiless statuses a null body', async () => {
    const missing = await httpFetch(`${base}/nowhere`);
    expect([missing.ok, missing.status, missing.statusText, await missing.text()]).toEqual([false, 404, 'Nope', 'not here']);
    const accepted = await httpFetch(`${base}/accepted`, { method: 'POST', body: '{}' });
    expect(accepted.status).toBe(202);
    await accepted.body?.cancel();
    const empty = await httpFetch(`${base}/empty`);
    expect([empty.status, empty.body]).toEqual([204, null]);
  });

  it('streams an event stream as it comes, and an abort ends the request', async () => {
    const controller = new AbortController();
    const response = await httpFetch(`${base}/sse`, { signal: controller.signal });
    const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
    expect((await reader.read()).value).toBe('data: one\n\n');
    controller.abort();
    await expect(reader.read()).rejects.toThrow();
    await sseClosed;
  });

  it('refuses what it does not serve, and a signal aborted already', async () => {
    await expect(httpFetch('https://127.0.0.1/')).rejects.toThrow(/http: URLs/);
    await expect(httpFetch(`${base}/json`, { method: 'POST', body: new Uint8Array([1]) })).rejects.toThrow(/string bodies/);
    const controller = new AbortController();
    controller.abort();
    await expect(httpFetch(`${base}/json`, { signal: controller.signal })).rejects.toThrow();
    await expect(httpFetch('http://127.0.0.1:1/')).rejects.toThrow(/ECONNREFUSED/);
  });
});
