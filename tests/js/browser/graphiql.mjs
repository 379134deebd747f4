#!/usr/bin/env node
// Drives the router's bundled GraphiQL in headless Chromium:
//   node browser/graphiql.mjs --url http://127.0.0.1:PORT/ --screenshot out.png
//        [--timeout-ms 20000] [--mutate] [--query-screenshot out-query.png]
//        [--chromium /usr/bin/chromium]
// Blocks and records every request to another host (fails if any), runs the
// default (deep) query with the execute button, checks the Query plan panel,
// then runs an orderPlaced subscription, prints {"subscribed": true} once its
// subscribe message is on the socket, waits for an event, and then for the
// subscription's plan (which comes with its events) in the panel. With --mutate
// it places an order from Node every 500 ms until the event shows. Prints JSON
// lines; the last is {"ok": true, ...}. Exits non-zero on failure, after
// printing the browser console collected so far.
import { emit, parseArgs, postGraphQL, run, sleep } from './lib.mjs';

const args = parseArgs(process.argv.slice(2), {
  options: ['url', 'screenshot', 'query-screenshot', 'timeout-ms', 'chromium'],
  flags: ['mutate'],
  required: ['url', 'screenshot'],
  defaults: { 'timeout-ms': '20000', mutate: false },
});
const timeout = Number(args['timeout-ms']);

const SUBSCRIPTION = 'subscription { orderPlaced { id buyer { username } } }';
const MUTATION = 'mutation { placeOrder(input: {buyerId: "3", items: [{upc: "100001", quantity: 1}]}) { id } }';

// Selectors of GraphiQL 4 (codemirror 5 editors).
const SEL = {
  container: '.graphiql-container',
  queryEditor: '.graphiql-query-editor .CodeMirror',
  responseEditor: '.graphiql-response .CodeMirror',
  execute: 'button.graphiql-execute-button',
  plan: '[data-testid="query-plan"]',
  planReady: '[data-testid="query-plan"][data-status="plan"]',
  showPlan: 'button[aria-label="Show Query plan"]',
};

/** The response pane's whole text (CodeMirror renders only visible lines). */
const responseText = (page) =>
  page.evaluate((sel) => {
    const el = document.querySelector(sel);
    return el && el.CodeMirror ? el.CodeMirror.getValue() : el ? el.innerText : '';
  }, SEL.responseEditor);

await run({ url: args.url, executablePath: args.chromium }, async (s) => {
  const { page, origin } = s;
  page.setDefaultTimeout(timeout);

  // Note each subscribe message the page sends over graphql-transport-ws.
  const subscribeMessages = [];
  page.on('websocket', (ws) => {
    ws.on('framesent', (frame) => {
      try {
        const msg = JSON.parse(typeof frame.payload === 'string' ? frame.payload : frame.payload.toString());
        if (msg.type === 'subscribe') subscribeMessages.push(msg);
      } catch {}
    });
  });

  await page.goto(args.url, { waitUntil: 'load' });
  await page.waitForSelector(SEL.container);
  await page.waitForSelector(SEL.queryEditor);
  await page.waitForFunction((sel) => {
    const el = document.querySelector(sel);
    return el && el.CodeMirror && el.CodeMirror.getValue().includes('topProducts');
  }, SEL.queryEditor);
  const defaultQuery = await page.evaluate((sel) => document.querySelector(sel).CodeMirror.getValue(), SEL.queryEditor);
  emit({ loaded: true, title: await page.title(), defaultQueryHasTopProducts: defaultQuery.includes('topProducts(first: 3)') });

  // 1. The default deep query, with the execute button.
  await page.click(SEL.execute);
  await page.waitForFunction((sel) => {
    const el = document.querySelector(sel);
    return el && el.CodeMirror && el.CodeMirror.getValue().includes('"topProducts"');
  }, SEL.responseEditor);
  const queryResponse = await responseText(page);
  if (/"errors"\s*:/.test(queryResponse)) throw new Error(`the deep query answered errors: ${queryResponse.slice(0, 1000)}`);

  // 2. Its plan, in the Query plan panel (opened by default; open it if not).
  if (!(await page.locator(SEL.plan).isVisible())) await page.click(SEL.showPlan);
  await page.waitForFunction((sel) => {
    const el = document.querySelector(sel);
    return el && el.textContent.includes('QueryPlan');
  }, SEL.planReady);
  const planText = await page.locator(SEL.plan).innerText();
  emit({ query: 'ok', planLines: planText.split('\n').length });
  if (args['query-screenshot']) await page.screenshot({ path: args['query-screenshot'], fullPage: true });

  // 3. A subscription, over the WebSocket.
  await page.evaluate(
    ({ sel, text }) => {
      const cm = document.querySelector(sel).CodeMirror;
      cm.setValue(text);
      cm.focus();
    },
    { sel: SEL.queryEditor, text: SUBSCRIPTION },
  );
  const before = subscribeMessages.length;
  await page.click(SEL.execute);
  const t0 = Date.now();
  while (!subscribeMessages.slice(before).some((m) => m.payload && String(m.payload.query).includes('orderPlaced'))) {
    if (Date.now() - t0 > timeout) throw new Error('the page sent no orderPlaced subscribe message over a WebSocket');
    await sleep(50);
  }
  emit({ subscribed: true });

  let placed = 0;
  let stopMutating = false;
  const mutating = args.mutate
    ? (async () => {
        while (!stopMutating) {
          try {
            await postGraphQL(origin, MUTATION);
            placed++;
          } catch (err) {
            emit({ mutateError: String(err.message || err) });
          }
          await sleep(500);
        }
      })()
    : null;
  try {
    await page.waitForFunction(
      (sel) => {
        const el = document.querySelector(sel);
        return el && el.CodeMirror && el.CodeMirror.getValue().includes('orderPlaced');
      },
      SEL.responseEditor,
      { timeout },
    );
  } finally {
    stopMutating = true;
    if (mutating) await mutating;
  }
  const event = await responseText(page);
  emit({ event: 'orderPlaced', ordersPlaced: args.mutate ? placed : undefined });

  // 4. The subscription's plan, from its first event, in the Query plan panel.
  if (!(await page.locator(SEL.plan).isVisible())) await page.click(SEL.showPlan);
  await page.waitForFunction((sel) => {
    const el = document.querySelector(sel);
    return el && el.innerText.includes('Subscription {');
  }, SEL.planReady, { timeout });
  const subscriptionPlan = await page.locator(SEL.plan).innerText();

  // 5. Screenshot with the event and the plan panel visible.
  await page.mouse.move(0, 0);
  await page.screenshot({ path: args.screenshot, fullPage: true });

  if (s.externalRequests.length) throw new Error(`requests to other hosts: ${s.externalRequests.join(', ')}`);
  if (s.cspViolations.length) throw new Error(`CSP violations: ${JSON.stringify(s.cspViolations)}`);
  if (s.pageErrors.length) throw new Error(`uncaught page errors: ${s.pageErrors.join('\n')}`);
  emit({ ok: true, subscriptionPlan, externalRequests: s.externalRequests, cspViolations: s.cspViolations, eventText: event.slice(0, 300), screenshot: args.screenshot });
});
