// Shared helpers for the browser checks: argument parsing, a headless Debian
// Chromium driven by playwright-core, a guard that blocks and records every
// request to a host other than the page's own, and the console / CSP log that
// a failing run prints.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

export function parseArgs(argv, spec) {
  const out = { ...spec.defaults };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith('--')) throw new Error(`unexpected argument ${arg}`);
    const [name, inline] = arg.slice(2).split(/=(.*)/s, 2);
    if (spec.flags && spec.flags.includes(name)) {
      out[name] = true;
      continue;
    }
    if (!spec.options.includes(name)) throw new Error(`unknown option --${name}`);
    const value = inline !== undefined ? inline : argv[++i];
    if (value === undefined) throw new Error(`--${name} needs a value`);
    out[name] = value;
  }
  for (const name of spec.required || []) {
    if (out[name] === undefined) throw new Error(`--${name} is required`);
  }
  return out;
}

/** Prints one JSON line on stdout. */
export const emit = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`);

export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

// Runs in every document before its own scripts (CDP bypasses the page's CSP):
// reports CSP violations to the console, and notes when each feed item shows up.
const INIT_SCRIPT = `(() => {
  window.__tesseraCsp = [];
  document.addEventListener('securitypolicyviolation', (e) => {
    const v = { directive: e.violatedDirective, blocked: e.blockedURI, source: e.sourceFile, line: e.lineNumber, sample: e.sample };
    window.__tesseraCsp.push(v);
    console.error('[csp-violation] ' + JSON.stringify(v));
  });
  window.__tesseraSeen = {};
  const note = (node) => {
    if (node.nodeType !== 1) return;
    const found = node.matches('[data-testid="feed-item"][data-order-id]') ? [node] : node.querySelectorAll('[data-testid="feed-item"][data-order-id]');
    for (const el of found) {
      const id = el.getAttribute('data-order-id');
      if (!(id in window.__tesseraSeen)) window.__tesseraSeen[id] = Date.now();
    }
  };
  new MutationObserver((records) => {
    for (const r of records) for (const n of r.addedNodes) note(n);
  }).observe(document, { childList: true, subtree: true });
})();`;

/**
 * Starts Chromium on a fresh profile and opens a page whose requests to any
 * host but `origin`'s are aborted and recorded. Returns handles and logs.
 */
export async function openBrowser({ url, viewport = { width: 1440, height: 900 }, executablePath }) {
  const origin = new URL(url);
  const userDataDir = await mkdtemp(path.join(os.tmpdir(), 'tessera-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: executablePath || process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_ARGS,
    viewport,
    serviceWorkers: 'block',
  });
  const consoleLog = [];
  const cspViolations = [];
  const externalRequests = [];
  const pageErrors = [];

  const isExternal = (u) => {
    let parsed;
    try {
      parsed = new URL(u);
    } catch {
      return false;
    }
    if (['data:', 'blob:', 'about:', 'chrome:', 'chrome-extension:', 'devtools:'].includes(parsed.protocol)) return false;
    return parsed.host !== origin.host;
  };

  await context.route('**/*', (route) => {
    const reqUrl = route.request().url();
    if (isExternal(reqUrl)) {
      externalRequests.push(reqUrl);
      return route.abort('blockedbyclient');
    }
    return route.continue();
  });
  // WebSockets bypass route(): block those to other hosts here.
  await context.routeWebSocket(
    (u) => isExternal(u.toString()),
    (ws) => {
      externalRequests.push(ws.url());
      ws.close({ code: 1008, reason: 'blocked: not the page origin' });
    },
  );
  await context.addInitScript(INIT_SCRIPT);

  const page = context.pages()[0] || (await context.newPage());
  page.on('console', (msg) => {
    const text = msg.text();
    consoleLog.push({ type: msg.type(), text });
    if (text.startsWith('[csp-violation] ')) {
      try {
        cspViolations.push(JSON.parse(text.slice('[csp-violation] '.length)));
      } catch {
        cspViolations.push({ raw: text });
      }
    } else if (/Content Security Policy/i.test(text)) {
      cspViolations.push({ console: text });
    }
  });
  page.on('pageerror', (err) => {
    pageErrors.push(String(err && err.stack ? err.stack : err));
    consoleLog.push({ type: 'pageerror', text: String(err) });
  });
  page.on('requestfailed', (req) => {
    const failure = req.failure();
    if (!isExternal(req.url())) consoleLog.push({ type: 'requestfailed', text: `${req.url()} ${failure ? failure.errorText : ''}` });
  });

  const close = async () => {
    await context.close().catch(() => {});
    await rm(userDataDir, { recursive: true, force: true }).catch(() => {});
  };
  return { context, page, origin, consoleLog, cspViolations, externalRequests, pageErrors, close };
}

/** POSTs a GraphQL operation from Node (not the page) to `<origin>/graphql`. */
export async function postGraphQL(origin, query, variables) {
  const res = await fetch(new URL('/graphql', origin), {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json, application/json' },
    body: JSON.stringify({ query, variables }),
  });
  const text = await res.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    throw new Error(`POST /graphql answered ${res.status}: ${text.slice(0, 300)}`);
  }
  if (body.errors && body.errors.length) throw new Error(`POST /graphql errors: ${JSON.stringify(body.errors)}`);
  return body.data;
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export function percentile(values, p) {
  if (!values.length) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[idx];
}

/**
 * Runs `main(session)`; on failure prints the error, the external requests and
 * the browser console collected so far as JSON lines, and exits non-zero.
 */
export async function run(options, main) {
  let session;
  try {
    session = await openBrowser(options);
    await main(session);
    await session.close();
    process.exit(0);
  } catch (err) {
    emit({ ok: false, error: String(err && err.stack ? err.stack : err) });
    if (session) {
      emit({ externalRequests: session.externalRequests, cspViolations: session.cspViolations });
      for (const m of session.consoleLog) emit({ console: m.type, text: m.text });
      await session.close();
    }
    process.exit(1);
  }
}
