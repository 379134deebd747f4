//! The shelter subgraphs of `fixtures/execute/shelters.graphql`: `@provides` on an interface
//! field whose implementations' keys are external where it is provided.
//!
//! Data: shelter s1 has Dog d1 "Fido" (age 3) and Cat c1 "Tom" (age 5). Shelters provides the
//! dog's name below `Query.shelter`; registry resolves the shelter's pets with every field. Both
//! know Dog and Cat entities, but a good plan never needs them: through the shelter entity
//! registry answers every pet field in one fetch.

use async_graphql::{
    EmptyMutation, EmptySubscription, ID, Interface, Object, Schema, SimpleObject,
};
use tessera::engine::{Engine, EngineConfig};

use super::SubgraphServer;

/// The two subgraphs, each on its own port.
pub struct Shelters {
    pub shelters: SubgraphServer,
    pub registry: SubgraphServer,
}

impl Shelters {
    /// Starts both subgraphs.
    pub async fn start() -> Self {
        Self {
            shelters: serve(SheltersQuery).await,
            registry: serve(RegistryQuery).await,
        }
    }

    /// An engine over these subgraphs.
    pub fn engine(&self) -> Engine {
        let urls = [
            ("shelters", self.shelters.url.as_str()),
            ("registry", self.registry.url.as_str()),
        ];
        Engine::new(
            super::supergraph("shelters", &urls),
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

#[derive(SimpleObject, Clone)]
struct Dog {
    id: ID,
    name: Option<String>,
    age: Option<i32>,
}

#[derive(SimpleObject, Clone)]
struct Cat {
    id: ID,
    name: Option<String>,
    age: Option<i32>,
}

#[derive(Interface, Clone)]
#[graphql(field(name = "id", ty = "&ID"))]
enum Pet {
    Dog(Dog),
    Cat(Cat),
}

#[derive(SimpleObject, Clone)]
struct Shelter {
    id: ID,
    pets: Vec<Option<Pet>>,
}

/// The shelter as `provides` fills it in: the dog's name, no ages.
fn provided_shelter() -> Shelter {
    Shelter {
        id: ID::from("s1"),
        pets: vec![
            Some(Pet::Dog(Dog {
                id: ID::from("d1"),
                name: Some("Fido".into()),
                age: None,
            })),
            Some(Pet::Cat(Cat {
                id: ID::from("c1"),
                name: None,
                age: None,
            })),
        ],
    }
}

fn full_shelter() -> Shelter {
    Shelter {
        id: ID::from("s1"),
        pets: vec![
            Some(Pet::Dog(Dog {
                id: ID::from("d1"),
                name: Some("Fido".into()),
                age: Some(3),
            })),
            Some(Pet::Cat(Cat {
                id: ID::from("c1"),
                name: Some("Tom".into()),
                age: Some(5),
            })),
        ],
    }
}

struct SheltersQuery;

#[Object]
impl SheltersQuery {
    async fn shelter(&self) -> Shelter {
        provided_shelter()
    }
}

struct RegistryQuery;

#[Object]
impl RegistryQuery {
    #[graphql(entity)]
    async fn find_shelter_by_id(&self, id: ID) -> Option<Shelter> {
        (id == "s1").then(full_shelter)
    }

    /// A plan that needs this took a detour: the test counts requests.
    #[graphql(entity)]
    async fn find_dog_by_id(&self, id: ID) -> Option<Dog> {
        (id == "d1").then(|| Dog {
            id,
            name: Some("Fido".into()),
            age: Some(3),
        })
    }
}
