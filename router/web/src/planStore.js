// A tiny store for the plan of the last operation run from GraphiQL. The
// fetcher wrapper writes it; the "Query plan" panel reads it with
// useSyncExternalStore and re-renders on every change.

import { parse } from 'graphql';

let state = { status: 'none' };
const listeners = new Set();

export const planStore = {
  get: () => state,
  set(next) {
    const previous = state.status === 'plan' ? state : state.previous;
    state = { ...next, at: new Date(), previous: next.status === 'plan' ? undefined : previous };
    for (const listener of listeners) listener();
  },
  subscribe(listener) {
    listeners.add(listener);
    return () => listeners.delete(listener);
  },
};

function planOf(result) {
  // One result, or (multipart incremental delivery) an array of them.
  const results = Array.isArray(result) ? result : [result];
  for (const r of results) {
    const ext = r && typeof r === 'object' ? r.extensions : undefined;
    if (ext && (typeof ext.queryPlanText === 'string' || ext.queryPlan !== undefined)) {
      return {
        text: typeof ext.queryPlanText === 'string' ? ext.queryPlanText : null,
        json: ext.queryPlan ?? null,
      };
    }
  }
  return null;
}

const isAsyncIterable = (v) => v != null && typeof v[Symbol.asyncIterator] === 'function';

function record(kind, operationName, result) {
  const plan = planOf(result);
  if (plan) {
    planStore.set({ status: 'plan', kind, operationName, ...plan });
  } else {
    planStore.set({ status: 'missing', kind, operationName });
  }
}

// GraphiQL hands the fetcher the query editor's document as parsed after a
// 100 ms debounce, so an operation run right after an edit may come with the
// previous document; the toolkit fetcher picks HTTP or WebSocket from it.
// Parse the text actually sent instead.
function freshDocument(params, opts) {
  try {
    return parse(params.query);
  } catch {
    return opts ? opts.documentAST : undefined;
  }
}

// Wraps a GraphiQL fetcher: every operation but the schema introspection
// updates the store from its result (or, for a stream, its first event).
export function withPlanCapture(fetcher) {
  return async (params, opts) => {
    if (params.operationName === 'IntrospectionQuery') return fetcher(params, opts);
    const documentAST = freshDocument(params, opts);
    opts = { ...opts, documentAST };
    if (documentAST && params.operationName) {
      // A stale operation name (the operation was renamed or removed within the
      // debounce) would make the server refuse the request: drop it when the
      // document has one operation only.
      const ops = documentAST.definitions.filter((d) => d.kind === 'OperationDefinition');
      if (ops.length === 1 && !ops.some((d) => d.name && d.name.value === params.operationName)) {
        params = { ...params, operationName: ops[0].name ? ops[0].name.value : undefined };
      }
    }
    const operationName = params.operationName || null;
    const kind = documentAST ? operationKind(documentAST, operationName) : 'query';
    planStore.set({ status: 'running', kind, operationName });
    let result;
    try {
      result = await fetcher(params, opts);
    } catch (err) {
      planStore.set({ status: 'error', kind, operationName, message: String(err && err.message ? err.message : err) });
      throw err;
    }
    if (isAsyncIterable(result)) return captureFirst(result, kind, operationName);
    record(kind, operationName, result);
    return result;
  };
}

function captureFirst(iterable, kind, operationName) {
  const it = iterable[Symbol.asyncIterator]();
  let first = true;
  return {
    [Symbol.asyncIterator]() {
      return this;
    },
    async next() {
      const step = await it.next();
      if (first && !step.done) {
        first = false;
        record(kind, operationName, step.value);
      }
      return step;
    },
    return(value) {
      return it.return ? it.return(value) : Promise.resolve({ done: true, value });
    },
    throw(err) {
      return it.throw ? it.throw(err) : Promise.reject(err);
    },
  };
}

function operationKind(doc, name) {
  const ops = (doc.definitions || []).filter((d) => d.kind === 'OperationDefinition');
  const op = name ? ops.find((d) => d.name && d.name.value === name) : ops[0];
  return op ? op.operation : 'query';
}
