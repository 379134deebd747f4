//! A traffic simulator for demos: places orders at a steady rate and restocks what runs low,
//! all through the router (like any client), so the dashboard moves.

use std::time::Duration;

use serde_json::{Value, json};

/// How often the simulator restocks what runs low.
const RESTOCK_EVERY: Duration = Duration::from_secs(2);
/// Products at or below this stock are restocked …
const RESTOCK_THRESHOLD: i64 = 3;
/// … by this many units.
const RESTOCK_UNITS: i64 = 25;

const CATALOG: &str = "{ users(first: 50) { id } topProducts(first: 100) { upc } }";
const PLACE_ORDER: &str =
    "mutation SimulatedOrder($input: PlaceOrderInput!) { placeOrder(input: $input) { id } }";
const LOW_STOCK: &str = "query SimulatedLowStock($threshold: Int!) { lowStockProducts(threshold: $threshold, first: 20) { upc } }";
const RESTOCK: &str = "mutation SimulatedRestock($upc: String!, $quantity: Int!) { restock(upc: $upc, quantity: $quantity) { upc } }";

/// Why the simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    /// The rate is not a positive number of orders per second.
    #[error("the order rate must be above 0 and at most 1000 per second, not {0}")]
    Rate(f64),
    /// The catalog query failed.
    #[error("reading the catalog through the router: {0}")]
    Catalog(String),
}

/// Places `orders_per_second` orders through the router at `graphql_url` (a random buyer, one
/// to three random products) and restocks low products every 2 s, until dropped. Failures
/// are logged and the run goes on.
pub async fn run(graphql_url: String, orders_per_second: f64) -> Result<(), SimulateError> {
    if !(orders_per_second > 0.0 && orders_per_second <= 1000.0) {
        return Err(SimulateError::Rate(orders_per_second));
    }
    let client = reqwest::Client::new();
    let call = |query: &'static str, variables: Value| {
        let request = client
            .post(&graphql_url)
            .json(&json!({ "query": query, "variables": variables }));
        async move {
            let mut body: Value = request
                .send()
                .await
                .map_err(|e| e.to_string())?
                .json()
                .await
                .map_err(|e| e.to_string())?;
            match body.get("errors") {
                Some(errors) => Err(errors.to_string()),
                None => Ok(body["data"].take()),
            }
        }
    };
    let catalog = call(CATALOG, json!({}))
        .await
        .map_err(SimulateError::Catalog)?;
    let ids = |list: &Value, field: &str| -> Vec<String> {
        list.as_array()
            .into_iter()
            .flatten()
            .filter_map(|item| item[field].as_str().map(str::to_owned))
            .collect()
    };
    let buyers = ids(&catalog["users"], "id");
    let products = ids(&catalog["topProducts"], "upc");
    if buyers.is_empty() || products.is_empty() {
        return Err(SimulateError::Catalog("no users or no products".to_owned()));
    }
    tracing::info!(
        orders_per_second,
        buyers = buyers.len(),
        products = products.len(),
        "simulating traffic"
    );
    let mut random = Random::seeded();
    let mut orders = tokio::time::interval(Duration::from_secs_f64(1.0 / orders_per_second));
    orders.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut restocks = tokio::time::interval(RESTOCK_EVERY);
    loop {
        tokio::select! {
            _ = orders.tick() => {
                let lines = 1 + random.below(3);
                let items: Vec<Value> = (0..lines)
                    .map(|_| json!({ "upc": random.pick(&products), "quantity": 1 + random.below(2) }))
                    .collect();
                let input = json!({ "buyerId": random.pick(&buyers), "items": items });
                if let Err(err) = call(PLACE_ORDER, json!({ "input": input })).await {
                    tracing::warn!(%err, "simulated order failed");
                }
            }
            _ = restocks.tick() => {
                let low = match call(LOW_STOCK, json!({ "threshold": RESTOCK_THRESHOLD })).await {
                    Ok(data) => ids(&data["lowStockProducts"], "upc"),
                    Err(err) => {
                        tracing::warn!(%err, "simulated low-stock query failed");
                        continue;
                    }
                };
                for upc in low {
                    let variables = json!({ "upc": upc, "quantity": RESTOCK_UNITS });
                    if let Err(err) = call(RESTOCK, variables).await {
                        tracing::warn!(%err, "simulated restock failed");
                    }
                }
            }
        }
    }
}

/// A small xorshift generator: demo traffic needs variety, not quality.
struct Random(u64);

impl Random {
    fn seeded() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        Self(u64::from(nanos) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `0..n` (`n` > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a>(&mut self, from: &'a [String]) -> &'a str {
        let index = usize::try_from(self.below(from.len() as u64)).unwrap_or(0);
        &from[index]
    }
}
