#!/usr/bin/env node
// Drive one stock GraphQL subscription client against a GraphQL endpoint and
// report what it sees as JSON lines on stdout. See README.md for the contract.
//
//   node clients.mjs --url http://127.0.0.1:4000/graphql --client graphql-ws \
//     --query 'subscription { ticks }' [--variables JSON] [--headers JSON] \
//     [--count N] [--timeout-ms T]
//
// stdout carries only the protocol lines (READY, {"event":..}, {"done":..},
// {"error":..}); library warnings and diagnostics go to stderr.

import { parseArgs } from 'node:util';

import WebSocket from 'ws';
import { createClient as createWsClient } from 'graphql-ws';
import { createClient as createSseClient } from 'graphql-sse';
import subscriptionsTransportWs from 'subscriptions-transport-ws';
// @apollo/client 3 ships ESM without an "exports" map, so directory imports
// ('@apollo/client/core') fail under Node's ESM resolver: name index.js.
// '@apollo/client/core' (not '@apollo/client') keeps React out of the graph.
import {
  ApolloClient,
  HttpLink,
  InMemoryCache,
  gql,
} from '@apollo/client/core/index.js';
import { GraphQLWsLink } from '@apollo/client/link/subscriptions/index.js';
import { loadDevMessages, loadErrorMessages } from '@apollo/client/dev/index.js';

const { SubscriptionClient } = subscriptionsTransportWs;

// Node 20 has no global WebSocket (it arrived, unflagged, in Node 22). The
// clients below all get `ws` passed explicitly, but Apollo's GraphQLWsLink
// error path evaluates `WebSocket.CLOSED` on the global, so without this any
// socket error/close turns into "ReferenceError: WebSocket is not defined".
globalThis.WebSocket ??= WebSocket;

// Apollo's published build reports errors and warnings as go.apollo.dev links
// with encoded arguments; load the readable texts instead.
loadDevMessages();
loadErrorMessages();

const CLIENTS = [
  'graphql-ws',
  'apollo-ws',
  'apollo-multipart',
  'graphql-sse',
  'subscriptions-transport-ws',
];

const USAGE = `usage: node clients.mjs --url URL --client NAME --query DOC [options]

  --url URL              endpoint, http(s):// or ws(s)://; converted per client
  --client NAME          ${CLIENTS.join(' | ')}
  --query DOC            GraphQL document (a subscription operation)
  --variables JSON       variables object (default {})
  --operation-name NAME  operationName to send (default none; Apollo clients take it from
                         the document, which must then hold a single operation)
  --headers JSON         HTTP headers (SSE, multipart) or connectionParams (WebSocket clients)
  --handshake-headers JSON
                         extra HTTP headers on the WebSocket upgrade request (WebSocket clients only)
  --count N              stop after N results (default 1; 0 = until completion or timeout)
  --timeout-ms T         give up waiting after T ms (default 10000)
  --ready-on WHEN        'ack' (default): READY once the client knows the subscription is
                         established; 'start': READY right after subscribing
  --sse-method METHOD    graphql-sse: POST (default, what the library sends) or GET (the
                         library's request re-encoded as ?query=&variables=&operationName=)
  --no-typename          Apollo clients: do not add __typename to selection sets
  --help                 this text

stdout lines: READY | {"event": ExecutionResult} | {"done": true, "received": N, ...} | {"error": ...}
exit status: 0 after "done" (count reached, stream completed or timeout), 1 after "error", 2 on bad usage`;

// ---------------------------------------------------------------- arguments

function usageError(message) {
  process.stderr.write(`clients.mjs: ${message}\n${USAGE}\n`);
  process.exit(2);
}

let args;
try {
  ({ values: args } = parseArgs({
    options: {
      url: { type: 'string' },
      client: { type: 'string' },
      query: { type: 'string' },
      variables: { type: 'string' },
      'operation-name': { type: 'string' },
      headers: { type: 'string' },
      'handshake-headers': { type: 'string' },
      count: { type: 'string' },
      'timeout-ms': { type: 'string' },
      'ready-on': { type: 'string' },
      'sse-method': { type: 'string' },
      'no-typename': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
    allowPositionals: false,
  }));
} catch (err) {
  usageError(err.message);
}

if (args.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
for (const required of ['url', 'client', 'query']) {
  if (!args[required]) usageError(`--${required} is required`);
}
if (!CLIENTS.includes(args.client)) usageError(`unknown --client ${args.client}`);

function jsonObjectArg(name) {
  const raw = args[name];
  if (raw === undefined || raw === '') return undefined;
  let value;
  try {
    value = JSON.parse(raw);
  } catch (err) {
    usageError(`--${name} is not valid JSON: ${err.message}`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    usageError(`--${name} must be a JSON object`);
  }
  return value;
}

function intArg(name, fallback) {
  const raw = args[name];
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) usageError(`--${name} must be a non-negative integer`);
  return n;
}

const query = args.query;
const variables = jsonObjectArg('variables') ?? {};
const operationName = args['operation-name'];
const headers = jsonObjectArg('headers') ?? {};
const handshakeHeaders = jsonObjectArg('handshake-headers');
const count = intArg('count', 1);
const timeoutMs = intArg('timeout-ms', 10000);
const readyOn = args['ready-on'] ?? 'ack';
if (!['ack', 'start'].includes(readyOn)) usageError(`--ready-on must be 'ack' or 'start'`);
const sseMethod = (args['sse-method'] ?? 'POST').toUpperCase();
if (!['GET', 'POST'].includes(sseMethod)) usageError(`--sse-method must be GET or POST`);

let parsedUrl;
try {
  parsedUrl = new URL(args.url);
} catch {
  usageError(`--url is not a valid URL: ${args.url}`);
}
function withScheme(url, map) {
  const u = new URL(url.href);
  const scheme = map[u.protocol];
  if (scheme) u.protocol = scheme;
  return u.href;
}
const httpUrl = withScheme(parsedUrl, { 'ws:': 'http:', 'wss:': 'https:' });
const wsUrl = withScheme(parsedUrl, { 'http:': 'ws:', 'https:': 'wss:' });

// ------------------------------------------------------------------- output

let finished = false;
let readyPrinted = false;
let received = 0;
let timer;
const cleanups = [];
// How the last WebSocket ended (set by TracingWebSocket), for error reports.
const socketState = { closeCode: undefined, closeReason: undefined, error: undefined, protocol: undefined };

function writeLine(line) {
  process.stdout.write(`${line}\n`);
}

function ready() {
  if (finished || readyPrinted) return;
  readyPrinted = true;
  writeLine('READY');
}

function finish(line, code) {
  if (finished) return;
  finished = true;
  clearTimeout(timer);
  for (const cleanup of cleanups.splice(0).reverse()) {
    try {
      cleanup();
    } catch (err) {
      process.stderr.write(`cleanup failed: ${err?.stack ?? err}\n`);
    }
  }
  // Exit only once the final line is flushed; open sockets would otherwise keep
  // the process alive after dispose (e.g. a server that never closes).
  process.stdout.write(`${line}\n`, () => process.exit(code));
}

function done(extra = {}) {
  finish(JSON.stringify({ done: true, received, ...extra }), 0);
}

async function fail(err) {
  if (finished) return;
  let described;
  try {
    described = await describeError(err);
  } catch (describeErr) {
    described = { message: String(err), describeError: String(describeErr) };
  }
  const line = { error: described };
  // WebSocket clients: add how the socket ended (Apollo, for one, reduces a
  // close event to "Socket closed" and drops the code).
  if (socketState.closeCode !== undefined || socketState.error !== undefined) {
    line.socket = {
      protocol: socketState.protocol,
      closeCode: socketState.closeCode,
      closeReason: socketState.closeReason,
      error: socketState.error,
    };
  }
  finish(JSON.stringify(line), 1);
}

// Put one result in ExecutionResult shape (no undefined keys) and print it.
function onResult(result) {
  if (finished) return;
  ready(); // never print an event before READY
  const event = {};
  for (const key of ['errors', 'data', 'extensions', 'hasNext', 'incremental']) {
    if (result?.[key] !== undefined) event[key] = result[key];
  }
  received += 1;
  writeLine(JSON.stringify({ event }));
  if (count > 0 && received >= count) done();
}

function onComplete() {
  if (finished) return;
  done({ completed: true });
}

async function describeError(err) {
  if (Array.isArray(err)) return Promise.all(err.map(describeError));
  if (err === null || err === undefined) return { message: String(err) };
  if (typeof err !== 'object') return { message: String(err) };
  // already a plain object (our own reports, GraphQL error payloads)
  if (Object.getPrototypeOf(err) === Object.prototype) return err;

  // graphql-ws / ws close event (CloseEvent has getters, not own properties)
  if (typeof err.code === 'number' && 'reason' in err && !(err instanceof Error)) {
    return { type: 'close', code: err.code, reason: String(err.reason ?? ''), wasClean: err.wasClean };
  }
  // ws ErrorEvent from a failed connection
  if (!(err instanceof Error) && err.type === 'error' && 'message' in err) {
    return { type: 'socket-error', message: err.message, cause: err.error ? await describeError(err.error) : undefined };
  }
  // graphql-sse NetworkError wrapping a fetch Response
  if (err.response && typeof err.response.status === 'number') {
    let body;
    try {
      body = await err.response.text();
    } catch {
      body = undefined;
    }
    return { name: err.name, message: err.message, status: err.response.status, body };
  }
  // Apollo Client 3 ApolloError
  if (err.name === 'ApolloError') {
    return {
      name: err.name,
      message: err.message,
      graphQLErrors: err.graphQLErrors,
      protocolErrors: err.protocolErrors,
      clientErrors: err.clientErrors?.map((e) => e?.message ?? String(e)),
      networkError: err.networkError ? await describeError(err.networkError) : undefined,
    };
  }
  // Apollo ServerError / ServerParseError (HTTP status + body)
  if (typeof err.statusCode === 'number') {
    return { name: err.name, message: err.message, status: err.statusCode, body: err.bodyText ?? err.result };
  }
  // GraphQLError and friends serialise themselves
  if (typeof err.toJSON === 'function') return err.toJSON();
  if (err instanceof Error) {
    const out = { name: err.name, message: err.message };
    if (err.code !== undefined) out.code = err.code;
    if (err.cause !== undefined) out.cause = await describeError(err.cause);
    if (err.errors !== undefined) out.errors = await describeError(err.errors); // AggregateError
    return out;
  }
  return { message: String(err) };
}

process.on('uncaughtException', (err) => void fail(err));
process.on('unhandledRejection', (err) => void fail(err));

timer = setTimeout(() => done({ timedOut: true }), timeoutMs);

// ------------------------------------------------------------------ helpers

// A `ws` WebSocket that (a) adds handshake headers and (b) tells us when the
// client library actually puts a subscribe/start frame on the wire, which is
// the closest a client can get to "the server knows about this subscription"
// on protocols that do not acknowledge individual operations.
function tracingWebSocket(onSubscribeSent) {
  return class TracingWebSocket extends WebSocket {
    constructor(address, protocols, options) {
      super(address, protocols, handshakeHeaders ? { ...options, headers: { ...options?.headers, ...handshakeHeaders } } : options);
      this.on('open', () => {
        socketState.protocol = this.protocol;
      });
      this.on('close', (code, reason) => {
        socketState.closeCode = code;
        socketState.closeReason = reason?.toString();
      });
      this.on('error', (err) => {
        socketState.error = err?.message ?? String(err);
      });
    }

    send(data, ...rest) {
      super.send(data, ...rest);
      let type;
      try {
        type = JSON.parse(typeof data === 'string' ? data : data.toString()).type;
      } catch {
        return;
      }
      if (type === 'subscribe' || type === 'start') onSubscribeSent(type);
    }
  };
}

// fetch that reports when response headers with a 2xx status have arrived.
function tracingFetch(onResponse) {
  return async (input, init) => {
    const response = await fetch(input, init);
    if (response.ok) onResponse(response);
    return response;
  };
}

const request = { query, variables, ...(operationName ? { operationName } : {}) };

// ------------------------------------------------------------------ clients

function runGraphqlWs() {
  // graphql-transport-ws: connection_init/connection_ack, then subscribe.
  // The protocol has no per-operation ack; the client sends `subscribe` only
  // after connection_ack, so "subscribe frame written" is our READY.
  const client = createWsClient({
    url: wsUrl,
    webSocketImpl: tracingWebSocket(() => ready()),
    connectionParams: headers,
    lazy: true,
    retryAttempts: 0,
    shouldRetry: () => false,
  });
  cleanups.push(() => void client.dispose());
  if (readyOn === 'start') ready();
  const unsubscribe = client.subscribe(request, {
    next: onResult,
    error: (err) => void fail(err),
    complete: onComplete,
  });
  cleanups.push(unsubscribe);
}

function apolloCache() {
  return new InMemoryCache(args['no-typename'] ? { addTypename: false } : {});
}

function runApollo(link) {
  // Apollo takes operationName from the document and rejects documents with
  // more than one operation, so --operation-name does not apply here.
  const client = new ApolloClient({ link, cache: apolloCache() });
  cleanups.push(() => client.stop());
  const observable = client.subscribe({
    query: gql(query),
    variables,
    // no-cache: results are handed over as the link delivered them, without
    // being written to / re-read from the normalized cache.
    fetchPolicy: 'no-cache',
    // 'all': results carrying GraphQL errors are events, not observable errors.
    errorPolicy: 'all',
  });
  if (readyOn === 'start') ready();
  const subscription = observable.subscribe({
    next: onResult,
    error: (err) => void fail(err),
    complete: onComplete,
  });
  cleanups.push(() => subscription.unsubscribe());
}

function runApolloWs() {
  const wsClient = createWsClient({
    url: wsUrl,
    webSocketImpl: tracingWebSocket(() => ready()),
    connectionParams: headers,
    lazy: true,
    retryAttempts: 0,
    shouldRetry: () => false,
  });
  cleanups.push(() => void wsClient.dispose());
  runApollo(new GraphQLWsLink(wsClient));
}

function runApolloMultipart() {
  // Apollo Client 3's HttpLink sends subscriptions as a POST with
  //   Accept: multipart/mixed;boundary="graphql";subscriptionSpec=1.0,application/json
  // and reads a multipart/mixed body. No per-operation ack exists; response
  // headers with a 2xx status are our READY.
  const link = new HttpLink({
    uri: httpUrl,
    headers,
    fetch: tracingFetch(() => ready()),
  });
  runApollo(link);
}

// graphql-sse always POSTs in distinct connections mode. For GET, turn its
// request into a GraphQL-over-HTTP style GET with URL parameters.
function sseGetFetch(input, init) {
  const url = new URL(typeof input === 'string' ? input : input.url);
  const body = JSON.parse(init.body);
  for (const [key, value] of Object.entries(body)) {
    if (value === undefined || value === null) continue;
    url.searchParams.set(key, typeof value === 'string' ? value : JSON.stringify(value));
  }
  const headers = Object.fromEntries(
    Object.entries(init.headers ?? {}).filter(([name]) => name.toLowerCase() !== 'content-type'),
  );
  return fetch(url, { ...init, method: 'GET', body: undefined, headers });
}

function runGraphqlSse() {
  // "Distinct connections" mode (singleConnection: false, the default): one
  // POST with Accept: text/event-stream per subscription. `connected` fires
  // once a 2xx event-stream response has arrived: our READY.
  const client = createSseClient({
    url: httpUrl,
    headers,
    fetchFn: sseMethod === 'GET' ? sseGetFetch : fetch,
    singleConnection: false,
    retryAttempts: 0,
  });
  cleanups.push(() => client.dispose());
  if (readyOn === 'start') ready();
  const unsubscribe = client.subscribe(
    request,
    { next: onResult, error: (err) => void fail(err), complete: onComplete },
    { connected: () => ready() },
  );
  cleanups.push(unsubscribe);
}

function runSubscriptionsTransportWs() {
  // Legacy `graphql-ws` subprotocol (Apollo's subscriptions-transport-ws).
  // The client sends connection_init and then `start` without waiting for the
  // ack, so READY needs both: connection_ack received and `start` written.
  let acked = false;
  let started = false;
  const maybeReady = () => {
    if (acked && started) ready();
  };
  const client = new SubscriptionClient(
    wsUrl,
    {
      reconnect: false,
      lazy: true,
      connectionParams: headers,
      connectionCallback: (error) => {
        if (error) void fail({ type: 'connection_error', payload: error });
      },
    },
    tracingWebSocket(() => {
      started = true;
      maybeReady();
    }),
  );
  client.onConnected(() => {
    acked = true;
    maybeReady();
  });
  // Without reconnect the library silently drops operations when the socket
  // closes; surface that as an error instead of waiting for the timeout.
  // (`disconnected` is emitted from the socket's close handler, so the close
  // code is already in socketState; the `error` event comes just before it.)
  client.onDisconnected(() =>
    void fail({ type: 'close', message: acked ? 'socket closed' : 'socket closed before connection_ack' }),
  );
  cleanups.push(() => client.close(true));
  if (readyOn === 'start') ready();
  const subscription = client.request(request).subscribe({
    next: onResult,
    error: (err) => void fail(err),
    complete: onComplete,
  });
  cleanups.push(() => subscription.unsubscribe());
}

const runners = {
  'graphql-ws': runGraphqlWs,
  'apollo-ws': runApolloWs,
  'apollo-multipart': runApolloMultipart,
  'graphql-sse': runGraphqlSse,
  'subscriptions-transport-ws': runSubscriptionsTransportWs,
};

try {
  runners[args.client]();
} catch (err) {
  void fail(err);
}
