import { StrictMode, useState } from 'react';
import { createRoot } from 'react-dom/client';
import { GraphiQL } from 'graphiql';
import { PluginContextProvider, usePluginStore } from '@graphiql/react';
import { createGraphiQLFetcher } from '@graphiql/toolkit';
import { createClient } from 'graphql-ws';
import { withPlanCapture } from './planStore.js';
import { queryPlanPlugin } from './QueryPlanPanel.jsx';
import 'graphiql/style.css';
import './app.css';

const DEFAULT_QUERY = `# Welcome to Tessera. This query crosses every subgraph; the "Query plan"
# panel shows how the router splits it.
{
  topProducts(first: 3) {
    name
    price
    inStock
    shippingEstimate
    reviews {
      rating
      author {
        username
        orders {
          total
          status
        }
      }
    }
  }
}
`;

const httpUrl = `${location.origin}/graphql`;
const wsUrl = `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/graphql`;

// The router reads the string members of connection_init as headers (a browser
// cannot set headers on a WebSocket): each subscription's events then carry its
// plan, as queries' responses do.
const wsClient = createClient({
  url: wsUrl,
  connectionParams: { 'tessera-expose-query-plan': 'true' },
  lazy: true,
  retryAttempts: 5,
  shouldRetry: () => true,
});

const fetcher = withPlanCapture(
  createGraphiQLFetcher({
    url: httpUrl,
    subscriptionUrl: wsUrl,
    wsClient,
    headers: { 'tessera-expose-query-plan': 'true' },
    // The router answers plain JSON; no multipart incremental delivery.
    enableIncrementalDelivery: false,
  }),
);

const PLUGINS = [queryPlanPlugin];

// GraphiQL 4 keeps the visible plugin in a global store that its provider
// fills in an effect, after the first render, by which time the plugin pane
// has already been laid out hidden: `visiblePlugin` alone marks the plugin
// active but leaves its pane closed. So set the store first, with a provider of
// our own, and mount GraphiQL once the Query plan plugin is the visible one.
// (When the user closed the pane last time, GraphiQL remembers that: leave it.)
function paneClosedBefore() {
  try {
    return localStorage.getItem('graphiql:docExplorerFlex') === 'hide-first';
  } catch {
    return false;
  }
}
const openPlanPane = !paneClosedBefore();

function App() {
  const visiblePlugin = usePluginStore((state) => state.visiblePlugin);
  // Latched: once mounted, GraphiQL stays whatever plugin the user picks.
  const [ready, setReady] = useState(!openPlanPane);
  if (!ready && visiblePlugin === queryPlanPlugin) setReady(true);
  return (
    <PluginContextProvider plugins={PLUGINS} visiblePlugin={openPlanPane ? queryPlanPlugin.title : undefined}>
      {ready ? (
        <GraphiQL
          fetcher={fetcher}
          defaultQuery={DEFAULT_QUERY}
          plugins={PLUGINS}
          visiblePlugin={openPlanPane ? queryPlanPlugin.title : undefined}
          isHeadersEditorEnabled
          shouldPersistHeaders
          defaultEditorToolsVisibility="headers"
        >
          <GraphiQL.Logo>Tessera</GraphiQL.Logo>
        </GraphiQL>
      ) : null}
    </PluginContextProvider>
  );
}

createRoot(document.getElementById('graphiql')).render(
  <StrictMode>
    <App />
  </StrictMode>,
);
