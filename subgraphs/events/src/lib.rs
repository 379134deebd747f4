//! The event contracts of Tessera's example: every topic the subgraphs publish or consume,
//! with the type of its payload, defined once.
//!
//! Producers write through [`tessera_kit::outbox::enqueue`] and consumers read through
//! [`tessera_kit::AppState::follow`] or [`tessera_kit::consume::spawn_consumer`], all with the
//! same [`Topic`] constant, so a renamed topic or a changed payload breaks the build of every
//! side instead of silently breaking the saga. Payloads are JSON with camelCase members.
//!
//! The order saga, choreographed through these topics:
//!
//! 1. orders publishes [`ORDER_PLACED`] with the order and its lines;
//! 2. inventory reserves every line's units in one transaction and publishes [`STOCK_CHANGED`]
//!    per line, or, when a product is unknown or short, reserves nothing and publishes
//!    [`ORDER_REJECTED`] with the reason;
//! 3. orders consumes [`ORDER_REJECTED`]: the order becomes `REJECTED` with its reason, and
//!    [`ORDER_STATUS_CHANGED`] tells everyone;
//! 4. inventory consumes [`ORDER_STATUS_CHANGED`]: a cancelled order's reserved units go back
//!    to stock.

use serde::{Deserialize, Serialize};
pub use tessera_kit::events::Topic;

/// A new user (accounts).
pub const USER_CREATED: Topic<UserCreated> = Topic::new("user_created");
/// A new review (reviews).
pub const REVIEW_ADDED: Topic<ReviewAdded> = Topic::new("review_added");
/// A placed order (orders); inventory reserves its stock.
pub const ORDER_PLACED: Topic<OrderEvent> = Topic::new("order_placed");
/// An order whose status changed (orders); inventory releases a cancelled order's stock.
pub const ORDER_STATUS_CHANGED: Topic<OrderEvent> = Topic::new("order_status_changed");
/// An order inventory could not reserve stock for (inventory); orders rejects it.
pub const ORDER_REJECTED: Topic<OrderRejected> = Topic::new("order_rejected");
/// A product's stock changed (inventory).
pub const STOCK_CHANGED: Topic<StockChanged> = Topic::new("stock_changed");

/// A user, as `user_created` carries it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserCreated {
    /// The user's id.
    pub id: String,
    /// Unique login name.
    pub username: String,
    /// Display name.
    pub name: String,
    /// E-mail address.
    pub email: String,
    /// When the account was created (RFC 3339).
    pub created_at: String,
}

/// A review, as `review_added` carries it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReviewAdded {
    /// The review's id.
    pub id: String,
    /// 1 to 5 stars.
    pub rating: i32,
    /// The review's text.
    pub body: String,
    /// When it was written (RFC 3339).
    pub created_at: String,
    /// The author's user id.
    pub author_id: i64,
    /// The reviewed product's upc.
    pub product_upc: String,
}

/// An order, as `order_placed` and `order_status_changed` carry it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderEvent {
    /// The order's id.
    pub id: String,
    /// Where it stands: `PLACED`, `PAID`, `SHIPPED`, `DELIVERED`, `CANCELLED` or `REJECTED`.
    pub status: String,
    /// Why it is where it stands, when that needs saying (a rejection's reason).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    /// Sum of the lines' subtotals, in cents.
    pub total: i64,
    /// When it was placed (RFC 3339).
    pub created_at: String,
    /// The buyer's user id.
    pub buyer_id: i64,
    /// The order's lines (always present on `order_placed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<Vec<OrderLine>>,
}

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderLine {
    /// The product's upc.
    pub upc: String,
    /// Units ordered.
    pub quantity: i32,
    /// Price per unit when ordered, in cents.
    pub unit_price: i64,
}

/// Why inventory refused to reserve an order's stock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RejectionReason {
    /// A line names a product inventory does not stock.
    UnknownProduct,
    /// A line asks for more units than are on hand.
    InsufficientStock,
}

/// `order_rejected`: nothing of the order was reserved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderRejected {
    /// The order's id.
    pub order_id: String,
    /// Why.
    pub reason: RejectionReason,
    /// The product of the first line that could not be reserved.
    pub upc: String,
    /// What a person reads: which product and why.
    pub message: String,
}

/// Why a product's stock changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StockChangeReason {
    /// Units arrived (`restock`).
    Restock,
    /// Units were reserved for an order.
    Order,
    /// A cancelled order's units went back to stock.
    Release,
}

/// `stock_changed`: one product's stock after a change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StockChanged {
    /// The product's upc.
    pub upc: String,
    /// Units on hand after the change.
    pub stock: i64,
    /// Units added (positive) or taken (negative).
    pub delta: i64,
    /// Why it changed.
    pub reason: StockChangeReason,
    /// When it changed (RFC 3339).
    pub at: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_are_unique() {
        let mut names = [
            USER_CREATED.name(),
            REVIEW_ADDED.name(),
            ORDER_PLACED.name(),
            ORDER_STATUS_CHANGED.name(),
            ORDER_REJECTED.name(),
            STOCK_CHANGED.name(),
        ];
        names.sort_unstable();
        let before = names.len();
        let mut unique = names.to_vec();
        unique.dedup();
        assert_eq!(unique.len(), before);
    }

    #[test]
    fn payloads_are_camel_case_json() {
        let rejected = OrderRejected {
            order_id: "7".into(),
            reason: RejectionReason::InsufficientStock,
            upc: "100001".into(),
            message: "only 2 left".into(),
        };
        let json = serde_json::to_value(&rejected).expect("serializes");
        assert_eq!(json["orderId"], "7");
        assert_eq!(json["reason"], "INSUFFICIENT_STOCK");
    }
}
