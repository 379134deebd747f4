#!/usr/bin/env node
// Drives the example shop's live dashboard in headless Chromium:
//   node browser/dashboard.mjs --url http://127.0.0.1:PORT/dashboard --screenshot out.png
//        [--orders 20] [--timeout-ms 20000] [--buyer 3] [--upc 100001]
//        [--chromium /usr/bin/chromium]
// Blocks and records every request to another host (fails if any), waits for
// the connection state "live" and the first dashboard figures, then places
// --orders orders one by one from Node (POST placeOrder to <origin>/graphql)
// and measures how long each takes to show as a feed item in the page; checks
// that orders-total grew by at least that many. Prints JSON lines, the last
// {"ok": true, "latenciesMs": [...], "p50Ms": x, ...}. Exits non-zero on
// failure, after printing the browser console collected so far.
import { emit, parseArgs, percentile, postGraphQL, run } from './lib.mjs';

const args = parseArgs(process.argv.slice(2), {
  options: ['url', 'screenshot', 'orders', 'timeout-ms', 'buyer', 'upc', 'chromium'],
  required: ['url', 'screenshot'],
  defaults: { orders: '20', 'timeout-ms': '20000', buyer: '3', upc: '100001' },
});
const timeout = Number(args['timeout-ms']);
const count = Number(args.orders);

const PLACE_ORDER = `mutation PlaceOrder($input: PlaceOrderInput!) { placeOrder(input: $input) { id } }`;
const SEL = {
  state: '[data-testid="connection-state"]',
  ordersTotal: '[data-testid="orders-total"]',
  chart: '[data-testid="orders-chart"]',
  feedItem: (id) => `[data-testid="feed-item"][data-order-id="${String(id).replace(/["\\]/g, '\\$&')}"]`,
};

const ordersTotal = (page) =>
  page.$eval(SEL.ordersTotal, (el) => (el.dataset.value === '' ? null : Number(el.dataset.value)));

await run({ url: args.url, executablePath: args.chromium }, async (s) => {
  const { page, origin } = s;
  page.setDefaultTimeout(timeout);

  await page.goto(args.url, { waitUntil: 'load' });
  await page.waitForSelector(`${SEL.state}[data-state="live"]`);
  // The first dashboard event: figures and the chart.
  await page.waitForFunction((sel) => {
    const el = document.querySelector(sel);
    return el && el.dataset.value !== '';
  }, SEL.ordersTotal);
  await page.waitForSelector(SEL.chart);
  const totalBefore = await ordersTotal(page);
  emit({ live: true, title: await page.title(), ordersTotalBefore: totalBefore });

  const latencies = [];
  const ids = [];
  for (let i = 0; i < count; i++) {
    const t0 = Date.now();
    const data = await postGraphQL(origin, PLACE_ORDER, {
      input: { buyerId: args.buyer, items: [{ upc: args.upc, quantity: 1 }] },
    });
    const mutationMs = Date.now() - t0;
    const id = data.placeOrder.id;
    ids.push(id);
    await page.waitForSelector(SEL.feedItem(id), { state: 'attached' });
    // When the item appeared, as the page's MutationObserver noted it (the same
    // clock as t0: one machine), else now.
    const seen = await page.evaluate((orderId) => window.__tesseraSeen && window.__tesseraSeen[orderId], id);
    const latency = Math.max(0, (seen || Date.now()) - t0);
    latencies.push(latency);
    emit({ order: id, latencyMs: latency, mutationMs });
  }

  // The dashboard figures follow every order.
  let totalAfter = await ordersTotal(page);
  if (count > 0) {
    await page.waitForFunction(
      ({ sel, want }) => {
        const el = document.querySelector(sel);
        return el && el.dataset.value !== '' && Number(el.dataset.value) >= want;
      },
      { sel: SEL.ordersTotal, want: totalBefore + count },
    );
    totalAfter = await ordersTotal(page);
  }
  const state = await page.$eval(SEL.state, (el) => el.dataset.state);
  await page.screenshot({ path: args.screenshot, fullPage: true });

  if (s.externalRequests.length) throw new Error(`requests to other hosts: ${s.externalRequests.join(', ')}`);
  if (s.cspViolations.length) throw new Error(`CSP violations: ${JSON.stringify(s.cspViolations)}`);
  if (s.pageErrors.length) throw new Error(`uncaught page errors: ${s.pageErrors.join('\n')}`);
  emit({
    ok: true,
    latenciesMs: latencies,
    p50Ms: percentile(latencies, 50),
    p95Ms: percentile(latencies, 95),
    maxMs: latencies.length ? Math.max(...latencies) : null,
    orderIds: ids,
    ordersTotalBefore: totalBefore,
    ordersTotalAfter: totalAfter,
    connectionState: state,
    externalRequests: s.externalRequests,
    cspViolations: s.cspViolations,
    screenshot: args.screenshot,
  });
});
