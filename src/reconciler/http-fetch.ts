// The Worker's fetch for its MCP transport: node:http under the Fetch API's shape.
//
// The global fetch (undici) compiles its WebAssembly HTTP parser at the first request,
// and a process that has made one waits at exit for V8's background optimising compile
// of it: 110-170 ms on a 2-core machine, more under load. Every drill that starts a
// Worker waits for that Worker to exit, so that wait was on the drill's time. node:http
// parses HTTP natively. The Response handed back is the platform's own, with the
// socket's body as its stream, so the SDK reads JSON and SSE exactly as from fetch.
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';

/** Statuses whose Response may not have a body. */
const bodiless = new Set([101, 103, 204, 205, 304]);

function headerRecord(headers: RequestInit['headers']): Record<string, string> {
  if (!headers) return {};
  if (headers instanceof Headers) return Object.fromEntries(headers.entries());
  if (Array.isArray(headers)) return Object.fromEntries(headers);
  return { ...(headers as Record<string, string>) };
}

function responseHeaders(message: IncomingMessage): Headers {
  const headers = new Headers();
  for (let i = 0; i < message.rawHeaders.length; i += 2) {
    headers.append(message.rawHeaders[i] ?? '', message.rawHeaders[i + 1] ?? '');
  }
  return headers;
}

/** fetch for http: URLs over node:http (no redirects followed: the SDK asks for manual ones). */
export function httpFetch(url: string | URL, init: RequestInit = {}): Promise<Response> {
  const target = new URL(url);
  if (target.protocol !== 'http:') return Promise.reject(new TypeError(`httpFetch serves http: URLs, not ${target.protocol}`));
  const body = init.body;
  if (body !== undefined && body !== null && typeof body !== 'string') {
    return Promise.reject(new TypeError('httpFetch sends string bodies only'));
  }
  const signal = init.signal ?? undefined;
  return new Promise<Response>((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const req = httpRequest(target, { method: init.method ?? 'GET', headers: headerRecord(init.headers) }, (message) => {
      const status = message.statusCode ?? 0;
      const stream = bodiless.has(status) ? null : (Readable.toWeb(message) as WebReadableStream<Uint8Array>);
      if (!stream) message.resume();
      resolve(new Response(stream as unknown as ConstructorParameters<typeof Response>[0], { status, statusText: message.statusMessage ?? '', headers: responseHeaders(message) }));
    });
    const abort = () => req.destroy(signal?.reason instanceof Error ? signal.reason : new Error('aborted'));
    signal?.addEventListener('abort', abort, { once: true });
    req.once('close', () => signal?.removeEventListener('abort', abort));
    req.once('error', reject);
    req.end(body ?? undefined);
  });
}
