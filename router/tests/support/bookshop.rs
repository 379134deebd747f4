//! The bookshop subgraphs of `fixtures/execute/bookshop.graphql`.
//!
//! Data: books b1 "Dune" (600 pages), b2 "Emma" (400), b3 "Ubik" (200, an AUDIO book, a null
//! tag) and the untitled b0 (100, outside `books`); readers u1 Ann, u2 Bob, u3 Cid; reviews
//! b1 → r1 (Ann) r2 (Bob), b2 → r3 (Ann), b3 → r4 (Bob) r5 (Cid). Warehouse weighs a book at
//! half its pages; shipping charges three per weight unit plus one.

use async_graphql::{EmptyMutation, EmptySubscription, Enum, ID, Object, Schema, SimpleObject};
use tessera::engine::{Engine, EngineConfig};

use super::SubgraphServer;

/// The five subgraphs, each on its own port.
pub struct Bookshop {
    pub catalog: SubgraphServer,
    pub readers: SubgraphServer,
    pub reviews: SubgraphServer,
    pub shipping: SubgraphServer,
    pub warehouse: SubgraphServer,
}

impl Bookshop {
    /// Starts every subgraph.
    pub async fn start() -> Self {
        Self {
            catalog: serve(CatalogQuery).await,
            readers: serve(ReadersQuery).await,
            reviews: serve(ReviewsQuery).await,
            shipping: serve(ShippingQuery).await,
            warehouse: serve(WarehouseQuery).await,
        }
    }

    /// An engine over these subgraphs with the default configuration.
    pub fn engine(&self) -> Engine {
        self.engine_with(EngineConfig::default(), &[])
    }

    /// An engine over these subgraphs; `elsewhere` points some subgraphs at other URLs (a
    /// closed port, a misbehaving server).
    pub fn engine_with(&self, config: EngineConfig, elsewhere: &[(&str, &str)]) -> Engine {
        let mut urls = vec![
            ("catalog", self.catalog.url.as_str()),
            ("readers", self.readers.url.as_str()),
            ("reviews", self.reviews.url.as_str()),
            ("shipping", self.shipping.url.as_str()),
            ("warehouse", self.warehouse.url.as_str()),
        ];
        for (name, url) in elsewhere {
            let slot = urls
                .iter_mut()
                .find(|(n, _)| n == name)
                .expect("a bookshop subgraph");
            slot.1 = url;
        }
        Engine::new(super::supergraph("bookshop", &urls), config)
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

// ---- catalog ---------------------------------------------------------------------------------

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
enum Format {
    Paperback,
    Hardcover,
    Audio,
}

/// Catalog declares `title` and the tags nullable; the supergraph says non-null.
#[derive(SimpleObject, Clone)]
#[graphql(name = "Book")]
struct CatalogBook {
    isbn: String,
    title: Option<String>,
    pages: i32,
    format: Option<Format>,
    tags: Option<Vec<Option<String>>>,
}

fn catalog_book(isbn: &str) -> Option<CatalogBook> {
    let tags = |tags: &[Option<&str>]| Some(tags.iter().map(|t| t.map(str::to_owned)).collect());
    let book = |title: Option<&str>, pages, format, tags| CatalogBook {
        isbn: isbn.to_owned(),
        title: title.map(str::to_owned),
        pages,
        format: Some(format),
        tags,
    };
    match isbn {
        "b0" => Some(book(None, 100, Format::Paperback, None)),
        "b1" => Some(book(
            Some("Dune"),
            600,
            Format::Paperback,
            tags(&[Some("classic"), Some("sf")]),
        )),
        "b2" => Some(book(
            Some("Emma"),
            400,
            Format::Hardcover,
            tags(&[Some("classic")]),
        )),
        "b3" => Some(book(
            Some("Ubik"),
            200,
            Format::Audio,
            tags(&[Some("sf"), None]),
        )),
        _ => None,
    }
}

fn catalog_books(isbns: &[&str]) -> Vec<CatalogBook> {
    isbns.iter().filter_map(|isbn| catalog_book(isbn)).collect()
}

struct CatalogQuery;

#[Object]
impl CatalogQuery {
    async fn books(&self) -> Vec<CatalogBook> {
        catalog_books(&["b1", "b2", "b3"])
    }

    async fn book(&self, isbn: String) -> Option<CatalogBook> {
        catalog_book(&isbn)
    }

    /// The untitled book, where the supergraph promises a `Book!` with a `title: String!`.
    async fn bestseller(&self) -> Option<CatalogBook> {
        catalog_book("b0")
    }

    async fn shelf(&self) -> Vec<CatalogBook> {
        catalog_books(&["b1", "b0"])
    }

    #[graphql(entity)]
    async fn book_by_isbn(&self, isbn: String) -> Option<CatalogBook> {
        catalog_book(&isbn)
    }
}

// ---- reviews ---------------------------------------------------------------------------------

#[derive(SimpleObject, Clone)]
#[graphql(name = "Reader")]
struct ReviewAuthor {
    id: ID,
}

#[derive(SimpleObject, Clone)]
struct Review {
    id: ID,
    body: String,
    stars: i32,
    author: ReviewAuthor,
}

struct ReviewsBook {
    isbn: String,
}

#[Object(name = "Book")]
impl ReviewsBook {
    async fn isbn(&self) -> &str {
        &self.isbn
    }

    async fn reviews(&self) -> Option<Vec<Review>> {
        let review = |id: &str, body: &str, stars, author: &str| Review {
            id: ID::from(id),
            body: body.to_owned(),
            stars,
            author: ReviewAuthor {
                id: ID::from(author),
            },
        };
        Some(match self.isbn.as_str() {
            "b1" => vec![review("r1", "Epic", 5, "u1"), review("r2", "Long", 3, "u2")],
            "b2" => vec![review("r3", "Witty", 4, "u1")],
            "b3" => vec![
                review("r4", "Strange", 4, "u2"),
                review("r5", "Short", 2, "u3"),
            ],
            _ => Vec::new(),
        })
    }
}

struct ReviewsQuery;

#[Object]
impl ReviewsQuery {
    #[graphql(entity)]
    async fn book_by_isbn(&self, isbn: String) -> ReviewsBook {
        ReviewsBook { isbn }
    }
}

// ---- readers ---------------------------------------------------------------------------------

#[derive(SimpleObject)]
#[graphql(name = "Reader")]
struct ReaderProfile {
    id: ID,
    name: String,
}

struct ReadersQuery;

#[Object]
impl ReadersQuery {
    #[graphql(entity)]
    async fn reader_by_id(&self, id: ID) -> Option<ReaderProfile> {
        let name = match id.as_str() {
            "u1" => "Ann",
            "u2" => "Bob",
            "u3" => "Cid",
            _ => return None,
        };
        Some(ReaderProfile {
            id,
            name: name.to_owned(),
        })
    }
}

// ---- warehouse and shipping: a chain of requirements -----------------------------------------

#[derive(SimpleObject)]
#[graphql(name = "Book")]
struct WarehouseBook {
    isbn: String,
    weight: Option<i32>,
}

struct WarehouseQuery;

#[Object]
impl WarehouseQuery {
    /// `pages` comes from catalog through the representation (`@requires(fields: "pages")`).
    #[graphql(entity)]
    async fn book_by_isbn(&self, #[graphql(key)] isbn: String, pages: i32) -> WarehouseBook {
        WarehouseBook {
            isbn,
            weight: Some(pages / 2),
        }
    }
}

#[derive(SimpleObject)]
#[graphql(name = "Book")]
struct ShippingBook {
    isbn: String,
    postage: Option<i32>,
}

struct ShippingQuery;

#[Object]
impl ShippingQuery {
    /// `weight` comes from warehouse through the representation (`@requires(fields: "weight")`).
    #[graphql(entity)]
    async fn book_by_isbn(
        &self,
        #[graphql(key)] isbn: String,
        weight: Option<i32>,
    ) -> ShippingBook {
        ShippingBook {
            isbn,
            postage: weight.map(|weight| weight * 3 + 1),
        }
    }
}
