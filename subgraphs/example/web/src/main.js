import { createClient } from 'graphql-ws';
import { $, h } from './dom.js';
import { ordersChart } from './chart.js';
import { formatCents, formatInt, formatTime } from './format.js';
import './style.css';

// Everything goes to the router on this page's own origin, never to a subgraph.
const HTTP_URL = `${location.origin}/graphql`;
const WS_URL = `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/graphql`;
const FEED_SIZE = 20;

const ORDER_FIELDS = `
  id total createdAt status statusReason
  buyer { username name }
  items { quantity unitPrice product { upc name } }
`;
const SEED_QUERY = `query DashboardSeed { orders(first: 10) { nodes { ${ORDER_FIELDS} } } }`;
const ORDER_PLACED = `subscription DashboardOrders { orderPlaced { ${ORDER_FIELDS} } }`;
const DASHBOARD = `subscription DashboardFigures {
  dashboard {
    id ordersTotal ordersLastMinute ordersPerMinute openOrders revenue computedAt
    lowStockCount lowStockProducts { upc name stock }
  }
}`;

// ---------------------------------------------------------------- connection

const conn = $('[data-testid="connection-state"]');
let everConnected = false;

function setConnection(state, detail) {
  conn.dataset.state = state;
  conn.querySelector('.conn-label').textContent = state;
  conn.title = detail || '';
  document.body.dataset.connection = state;
}

/** Randomised exponential backoff, 0.5 s doubling up to 10 s. */
function backoff(retries) {
  const base = Math.min(10_000, 500 * 2 ** Math.min(retries, 5));
  return base / 2 + Math.random() * (base / 2);
}

const client = createClient({
  url: WS_URL,
  lazy: false,
  retryAttempts: Infinity,
  shouldRetry: () => true,
  retryWait: (retries) => new Promise((resolve) => setTimeout(resolve, backoff(retries))),
  keepAlive: 15_000,
  on: {
    connecting: (isRetry) => setConnection(isRetry || everConnected ? 'reconnecting' : 'connecting'),
    connected: () => {
      const wasReconnect = everConnected;
      everConnected = true;
      setConnection('live');
      // Orders placed while the socket was down never come as events: fill the gap.
      if (wasReconnect) seedFeed();
    },
    closed: (event) => {
      setConnection(everConnected ? 'reconnecting' : 'connecting', event && event.code ? `closed with ${event.code} ${event.reason || ''}` : 'closed');
    },
    error: () => setConnection(everConnected ? 'reconnecting' : 'connecting', 'connection error'),
  },
});

/**
 * Subscribes and stays subscribed: graphql-ws re-subscribes by itself across
 * reconnects; if the server ends or refuses the subscription, subscribe again
 * after a backoff, resuming after the last event id the router gave
 * (`extensions.lastEventId`) so that nothing in between is missed. `options`
 * may carry request extensions (e.g. `maxEventsPerSecond`).
 */
function keepSubscribed(query, onData, options = {}) {
  let attempt = 0;
  let lastEventId = null;
  const start = () => {
    const extensions = { ...(options.extensions || {}) };
    if (lastEventId) extensions.lastEventId = lastEventId;
    client.subscribe(
      { query, extensions },
      {
        next: (result) => {
          attempt = 0;
          if (result.extensions && result.extensions.eventId) lastEventId = result.extensions.eventId;
          if (result.errors && result.errors.length) {
            console.warn('subscription errors', result.errors);
            // The events after our last id are no longer kept: start afresh from a query.
            if (result.errors.some((e) => e.extensions && e.extensions.code === 'EVENT_GAP')) {
              lastEventId = null;
              if (options.onGap) options.onGap();
            }
          }
          if (result.data) onData(result.data);
        },
        error: (err) => {
          console.warn('subscription ended with an error; subscribing again', err);
          setTimeout(start, backoff(attempt++));
        },
        complete: () => setTimeout(start, backoff(attempt++)),
      },
    );
  };
  start();
}

// ------------------------------------------------------------------- figures

function setFigure(testId, value, text) {
  const el = $(`[data-testid="${testId}"]`);
  if (el.dataset.value !== String(value)) {
    el.dataset.value = String(value);
    el.textContent = text;
    el.classList.remove('bump');
    // Restart the highlight animation (reading offsetWidth forces a reflow).
    void el.offsetWidth;
    el.classList.add('bump');
  }
}

const chartBox = $('[data-testid="orders-chart-box"]');
const lowList = $('[data-testid="low-stock-list"]');

function renderDashboard(d) {
  setFigure('orders-per-minute', d.ordersLastMinute, formatInt(d.ordersLastMinute));
  setFigure('revenue', d.revenue, formatCents(d.revenue));
  setFigure('orders-total', d.ordersTotal, formatInt(d.ordersTotal));
  setFigure('open-orders', d.openOrders, formatInt(d.openOrders));
  setFigure('low-stock-count', d.lowStockCount, formatInt(d.lowStockCount));

  chartBox.replaceChildren(ordersChart(d.ordersPerMinute));

  const low = d.lowStockProducts || [];
  lowList.replaceChildren(
    ...(low.length
      ? low.map((p) =>
          h('li', { class: p.stock === 0 ? 'low-item out' : 'low-item', dataset: { upc: p.upc, stock: String(p.stock) } },
            h('span', { class: 'low-name', text: p.name }),
            h('span', { class: 'low-stock', text: p.stock === 0 ? 'out of stock' : `${p.stock} left` }),
          ),
        )
      : [h('li', { class: 'empty', text: 'No product is low on stock.' })]),
  );
  $('[data-testid="computed-at"]').textContent = `figures computed at ${formatTime(d.computedAt)}`;
}

// ---------------------------------------------------------------------- feed

const feed = $('[data-testid="feed"]');
const feedOrders = new Map(); // id → order, newest first by insertion below
let feedLoaded = false;

function orderItem(o, fresh) {
  const status = String(o.status || '').toLowerCase();
  return h('li', {
    class: fresh ? 'feed-item fresh' : 'feed-item',
    'data-testid': 'feed-item',
    'data-order-id': o.id,
  },
    h('div', { class: 'feed-head' },
      h('span', { class: 'feed-id', text: `#${o.id}` }),
      h('span', { class: 'feed-buyer', text: o.buyer ? o.buyer.username : '?' }),
      h('span', { class: `feed-status status-${status}`, text: status, title: o.statusReason || '' }),
      h('span', { class: 'feed-total', text: formatCents(o.total) }),
    ),
    h('ul', { class: 'feed-lines' },
      (o.items || []).map((it) =>
        h('li', {}, h('span', { class: 'qty', text: `${it.quantity}×` }), ' ', it.product ? it.product.name : '?'),
      ),
    ),
    h('time', { class: 'feed-time', datetime: o.createdAt, text: formatTime(o.createdAt) }),
  );
}

function renderFeed(freshIds = new Set()) {
  const orders = [...feedOrders.values()]
    .sort((a, b) => (Date.parse(b.createdAt) || 0) - (Date.parse(a.createdAt) || 0) || compareIds(b.id, a.id))
    .slice(0, FEED_SIZE);
  for (const id of feedOrders.keys()) {
    if (!orders.some((o) => o.id === id)) feedOrders.delete(id);
  }
  const existing = new Map([...feed.querySelectorAll('[data-testid="feed-item"]')].map((el) => [el.dataset.orderId, el]));
  feed.replaceChildren(
    ...(orders.length
      ? orders.map((o) => existing.get(o.id) || orderItem(o, freshIds.has(o.id)))
      : [h('li', { class: 'empty', text: feedLoaded ? 'No orders yet.' : 'Loading orders…' })]),
  );
}

function compareIds(a, b) {
  const na = Number(a);
  const nb = Number(b);
  return Number.isFinite(na) && Number.isFinite(nb) ? na - nb : String(a).localeCompare(String(b));
}

function addOrders(orders, fresh) {
  const freshIds = new Set();
  for (const o of orders) {
    if (!o || o.id == null) continue;
    if (!feedOrders.has(o.id) && fresh) freshIds.add(o.id);
    feedOrders.set(o.id, o);
  }
  renderFeed(freshIds);
}

async function seedFeed() {
  try {
    const res = await fetch(HTTP_URL, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json, application/json' },
      body: JSON.stringify({ query: SEED_QUERY, operationName: 'DashboardSeed' }),
    });
    const body = await res.json();
    if (body.errors) console.warn('seed query errors', body.errors);
    feedLoaded = true;
    addOrders((body.data && body.data.orders && body.data.orders.nodes) || [], false);
  } catch (err) {
    console.warn('could not load the latest orders', err);
    feedLoaded = true;
    renderFeed();
  }
}

// ---------------------------------------------------------------------- start

setConnection('connecting');
seedFeed();
// The figures are a state, not a history: a few updates a second are all a person can read, and
// the router conflates (the newest figures win) once for every dashboard open.
keepSubscribed(DASHBOARD, (data) => data.dashboard && renderDashboard(data.dashboard), {
  extensions: { maxEventsPerSecond: 4 },
});
keepSubscribed(ORDER_PLACED, (data) => data.orderPlaced && addOrders([data.orderPlaced], true), {
  onGap: seedFeed,
});
