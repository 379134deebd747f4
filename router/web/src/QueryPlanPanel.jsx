import { useSyncExternalStore } from 'react';
import { planStore } from './planStore.js';

export function QueryPlanIcon() {
  return (
    <svg viewBox="0 0 24 24" width="1em" height="1em" fill="none" stroke="currentColor"
      strokeWidth="1.5" strokeLinecap="round" strokeLinejoin="round" aria-hidden="true">
      <rect x="9" y="2.5" width="6" height="4.5" rx="1" />
      <rect x="2.5" y="17" width="6" height="4.5" rx="1" />
      <rect x="15.5" y="17" width="6" height="4.5" rx="1" />
      <path d="M12 7v5M5.5 17v-2.5a2 2 0 0 1 2-2h9a2 2 0 0 1 2 2V17" />
    </svg>
  );
}

function describe(s) {
  const name = s.operationName ? ` ${s.operationName}` : '';
  return `${s.kind || 'operation'}${name}`;
}

function PlanText({ plan }) {
  return <pre className="tessera-plan-text">{plan.text ?? JSON.stringify(plan.json, null, 2)}</pre>;
}

function Previous({ plan }) {
  if (!plan) return null;
  return (
    <div className="tessera-plan-previous">
      <p className="tessera-plan-meta">
        Plan of the previous {describe(plan)}, {plan.at.toLocaleTimeString()}
      </p>
      <PlanText plan={plan} />
    </div>
  );
}

export function QueryPlanPanel() {
  const s = useSyncExternalStore(planStore.subscribe, planStore.get);
  let body;
  switch (s.status) {
    case 'none':
      body = <p className="tessera-plan-note">Run an operation to see its plan.</p>;
      break;
    case 'running':
      body = (
        <>
          <p className="tessera-plan-note">
            {s.kind === 'subscription'
              ? `Waiting for the first event of the ${describe(s)}: its plan comes with it.`
              : `Running ${describe(s)}…`}
          </p>
          <Previous plan={s.previous} />
        </>
      );
      break;
    case 'error':
      body = (
        <>
          <p className="tessera-plan-note">The {describe(s)} failed: {s.message}</p>
          <Previous plan={s.previous} />
        </>
      );
      break;
    case 'missing':
      body = (
        <>
          <p className="tessera-plan-note">
            {s.kind === 'subscription'
              ? `The first event of the ${describe(s)} carried no query plan (no extensions.queryPlanText).`
              : `The result of the ${describe(s)} carried no query plan (no extensions.queryPlanText).`}
          </p>
          <Previous plan={s.previous} />
        </>
      );
      break;
    default:
      body = (
        <>
          <p className="tessera-plan-meta">
            Plan of the last {describe(s)}, {s.at.toLocaleTimeString()}
          </p>
          <PlanText plan={s} />
        </>
      );
  }
  return (
    <div className="tessera-plan" id="tessera-query-plan" data-testid="query-plan" data-status={s.status}>
      <div className="graphiql-doc-explorer-title">Query plan</div>
      {body}
    </div>
  );
}

export const queryPlanPlugin = {
  title: 'Query plan',
  icon: QueryPlanIcon,
  content: QueryPlanPanel,
};
