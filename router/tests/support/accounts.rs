//! The account subgraphs of `fixtures/execute/accounts.graphql`.
//!
//! Data: identity has Person p1 (ann@example.com, born 1990-01-01) and Company c1
//! (acme@example.com, VAT "EU123"); billing has balances p1 → 10 and c1 → 99, and c1 is the
//! richest account.

use async_graphql::{
    EmptyMutation, EmptySubscription, ID, Interface, Object, Schema, SimpleObject,
};
use tessera::engine::{Engine, EngineConfig};

use super::SubgraphServer;

/// The two subgraphs, each on its own port.
pub struct Accounts {
    pub billing: SubgraphServer,
    pub identity: SubgraphServer,
}

impl Accounts {
    /// Starts both subgraphs.
    pub async fn start() -> Self {
        Self {
            billing: serve(BillingQuery).await,
            identity: serve(IdentityQuery).await,
        }
    }

    /// An engine over these subgraphs.
    pub fn engine(&self) -> Engine {
        let urls = [
            ("billing", self.billing.url.as_str()),
            ("identity", self.identity.url.as_str()),
        ];
        Engine::new(
            super::supergraph("accounts", &urls),
            EngineConfig::default(),
        )
    }
}

async fn serve<Q: async_graphql::ObjectType + 'static>(query: Q) -> SubgraphServer {
    SubgraphServer::graphql(
        Schema::build(query, EmptyMutation, EmptySubscription)
            .enable_federation()
            .finish(),
    )
    .await
}

// ---- identity: the interface and its implementations -----------------------------------------

#[derive(SimpleObject, Clone)]
struct Person {
    id: ID,
    email: String,
    birthday: Option<String>,
}

#[derive(SimpleObject, Clone)]
struct Company {
    id: ID,
    email: String,
    vat_number: String,
}

#[derive(Interface, Clone)]
#[graphql(field(name = "id", ty = "&ID"), field(name = "email", ty = "&String"))]
enum Account {
    Person(Person),
    Company(Company),
}

fn account(id: &str) -> Option<Account> {
    match id {
        "p1" => Some(Account::Person(Person {
            id: ID::from("p1"),
            email: "ann@example.com".to_owned(),
            birthday: Some("1990-01-01".to_owned()),
        })),
        "c1" => Some(Account::Company(Company {
            id: ID::from("c1"),
            email: "acme@example.com".to_owned(),
            vat_number: "EU123".to_owned(),
        })),
        _ => None,
    }
}

struct IdentityQuery;

#[Object]
impl IdentityQuery {
    async fn accounts(&self) -> Vec<Account> {
        ["p1", "c1"].into_iter().filter_map(account).collect()
    }

    /// Representations with `__typename: "Account"` (from billing's interface object) are
    /// answered with the concrete type.
    #[graphql(entity)]
    async fn account_by_id(&self, id: ID) -> Option<Account> {
        account(&id)
    }

    #[graphql(entity)]
    async fn person_by_id(&self, id: ID) -> Option<Person> {
        match account(&id) {
            Some(Account::Person(person)) => Some(person),
            _ => None,
        }
    }

    #[graphql(entity)]
    async fn company_by_id(&self, id: ID) -> Option<Company> {
        match account(&id) {
            Some(Account::Company(company)) => Some(company),
            _ => None,
        }
    }
}

// ---- billing: `Account` as an interface object -----------------------------------------------

#[derive(SimpleObject)]
#[graphql(name = "Account", interface_object)]
struct BillingAccount {
    id: ID,
    balance: i32,
}

fn balance(id: &str) -> i32 {
    match id {
        "p1" => 10,
        "c1" => 99,
        _ => 0,
    }
}

struct BillingQuery;

#[Object]
impl BillingQuery {
    async fn richest(&self) -> Option<BillingAccount> {
        Some(BillingAccount {
            id: ID::from("c1"),
            balance: balance("c1"),
        })
    }

    #[graphql(entity)]
    async fn account_by_id(&self, id: ID) -> BillingAccount {
        let balance = balance(&id);
        BillingAccount { id, balance }
    }
}
