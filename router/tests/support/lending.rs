//! Two subgraphs whose `Book` key nests (`id org { id }`), composed with Tessera's own
//! composition: catalog lists books, loans counts how often each was lent and answers with
//! the key it received (so a test sees exactly what the representation carried).
//!
//! Data: books b1 (org o1) and b2 (org o2).

use async_graphql::{
    EmptyMutation, EmptySubscription, ID, InputObject, Object, Schema, SimpleObject,
};
use tessera::engine::{Engine, EngineConfig};

use super::SubgraphServer;

/// Both subgraphs.
pub struct Lending {
    pub catalog: SubgraphServer,
    pub loans: SubgraphServer,
    sdl: (String, String),
}

#[derive(SimpleObject, Clone)]
#[graphql(shareable)]
struct Org {
    id: ID,
}

#[derive(SimpleObject, Clone)]
#[graphql(name = "Book")]
struct CatalogBook {
    #[graphql(shareable)]
    id: ID,
    #[graphql(shareable)]
    org: Org,
    title: String,
}

fn books() -> Vec<CatalogBook> {
    [("b1", "o1", "Dune"), ("b2", "o2", "Emma")]
        .into_iter()
        .map(|(id, org, title)| CatalogBook {
            id: ID::from(id),
            org: Org { id: ID::from(org) },
            title: title.to_owned(),
        })
        .collect()
}

struct CatalogQuery;

#[Object(name = "Query")]
impl CatalogQuery {
    async fn books(&self) -> Vec<CatalogBook> {
        books()
    }

    #[graphql(entity)]
    async fn find_book(
        &self,
        #[graphql(key)] id: ID,
        #[graphql(key)] org: OrgKey,
    ) -> Option<CatalogBook> {
        books()
            .into_iter()
            .find(|b| b.id == id && b.org.id == org.id)
    }
}

#[derive(InputObject)]
struct OrgKey {
    id: ID,
}

#[derive(SimpleObject, Clone)]
#[graphql(name = "Book")]
struct LoansBook {
    #[graphql(shareable)]
    id: ID,
    #[graphql(shareable)]
    org: Org,
    /// `<book id>@<org id>`, as the representation named them.
    lent_as: String,
}

struct LoansQuery;

#[Object(name = "Query")]
impl LoansQuery {
    #[graphql(entity)]
    async fn find_book(&self, #[graphql(key)] id: ID, #[graphql(key)] org: OrgKey) -> LoansBook {
        LoansBook {
            lent_as: format!("{}@{}", id.as_str(), org.id.as_str()),
            org: Org { id: org.id },
            id,
        }
    }
}

fn schema<Q: async_graphql::ObjectType + 'static>(
    query: Q,
) -> Schema<Q, EmptyMutation, EmptySubscription> {
    Schema::build(query, EmptyMutation, EmptySubscription)
        .enable_federation()
        .finish()
}

impl Lending {
    /// Starts both subgraphs.
    pub async fn start() -> Self {
        let catalog = schema(CatalogQuery);
        let loans = schema(LoansQuery);
        let options = async_graphql::SDLExportOptions::new().federation();
        let sdl = (
            catalog.sdl_with_options(options),
            loans.sdl_with_options(options),
        );
        Self {
            catalog: SubgraphServer::graphql(catalog).await,
            loans: SubgraphServer::graphql(loans).await,
            sdl,
        }
    }

    /// An engine over both.
    pub fn engine(&self) -> Engine {
        let supergraph = super::compose(&[
            ("catalog", self.catalog.url.as_str(), self.sdl.0.clone()),
            ("loans", self.loans.url.as_str(), self.sdl.1.clone()),
        ]);
        Engine::new(supergraph, EngineConfig::default())
    }
}
