//! The feed subgraphs of `fixtures/execute/feed.graphql`.
//!
//! Data: home's feed is [Book b1, Episode e1, Book b2] and a search finds [Episode e2, Book b1];
//! catalog has b1 "Dune" by Herbert and b2 "Emma" by Austen; podcasts has e1 "Pilot" hosted by
//! Kim and e2 "Finale" hosted by Lee.

use async_graphql::{
    EmptyMutation, EmptySubscription, ID, Interface, Object, Schema, SimpleObject, Union,
};
use tessera::engine::{Engine, EngineConfig};

use super::SubgraphServer;

/// The three subgraphs, each on its own port.
pub struct Feed {
    pub catalog: SubgraphServer,
    pub home: SubgraphServer,
    pub podcasts: SubgraphServer,
}

impl Feed {
    /// Starts every subgraph.
    pub async fn start() -> Self {
        Self {
            catalog: serve(CatalogQuery).await,
            home: serve(HomeQuery).await,
            podcasts: serve(PodcastsQuery).await,
        }
    }

    /// An engine over these subgraphs.
    pub fn engine(&self) -> Engine {
        let urls = [
            ("catalog", self.catalog.url.as_str()),
            ("home", self.home.url.as_str()),
            ("podcasts", self.podcasts.url.as_str()),
        ];
        Engine::new(super::supergraph("feed", &urls), EngineConfig::default())
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

// ---- home: knows books and episodes only by id -----------------------------------------------

#[derive(SimpleObject, Clone)]
#[graphql(name = "Book", unresolvable)]
struct HomeBook {
    id: ID,
}

#[derive(SimpleObject, Clone)]
#[graphql(name = "Episode", unresolvable)]
struct HomeEpisode {
    id: ID,
}

#[derive(Interface)]
#[graphql(name = "Item", field(name = "id", ty = "&ID"))]
enum HomeItem {
    Book(HomeBook),
    Episode(HomeEpisode),
}

#[derive(Union)]
#[graphql(name = "Hit")]
enum HomeHit {
    Book(HomeBook),
    Episode(HomeEpisode),
}

fn book(id: &str) -> HomeBook {
    HomeBook { id: ID::from(id) }
}

fn episode(id: &str) -> HomeEpisode {
    HomeEpisode { id: ID::from(id) }
}

struct HomeQuery;

#[Object]
impl HomeQuery {
    async fn feed(&self) -> Vec<HomeItem> {
        vec![
            HomeItem::Book(book("b1")),
            HomeItem::Episode(episode("e1")),
            HomeItem::Book(book("b2")),
        ]
    }

    async fn search(&self, term: String) -> Vec<HomeHit> {
        let _ = term;
        vec![HomeHit::Episode(episode("e2")), HomeHit::Book(book("b1"))]
    }
}

// ---- catalog: books --------------------------------------------------------------------------

#[derive(SimpleObject)]
#[graphql(name = "Book")]
struct CatalogBook {
    id: ID,
    title: String,
    author: String,
}

struct CatalogQuery;

#[Object]
impl CatalogQuery {
    #[graphql(entity)]
    async fn book_by_id(&self, id: ID) -> Option<CatalogBook> {
        let (title, author) = match id.as_str() {
            "b1" => ("Dune", "Herbert"),
            "b2" => ("Emma", "Austen"),
            _ => return None,
        };
        Some(CatalogBook {
            id,
            title: title.to_owned(),
            author: author.to_owned(),
        })
    }
}

// ---- podcasts: episodes ----------------------------------------------------------------------

#[derive(SimpleObject)]
#[graphql(name = "Episode")]
struct PodcastEpisode {
    id: ID,
    title: String,
    host: String,
}

struct PodcastsQuery;

#[Object]
impl PodcastsQuery {
    #[graphql(entity)]
    async fn episode_by_id(&self, id: ID) -> Option<PodcastEpisode> {
        let (title, host) = match id.as_str() {
            "e1" => ("Pilot", "Kim"),
            "e2" => ("Finale", "Lee"),
            _ => return None,
        };
        Some(PodcastEpisode {
            id,
            title: title.to_owned(),
            host: host.to_owned(),
        })
    }
}
