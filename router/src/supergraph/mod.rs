//! The supergraph: Apollo's join-spec SDL read into a typed model.

pub mod api;
pub mod model;

use std::collections::{HashMap, HashSet};

use apollo_compiler::Name;
use apollo_compiler::schema::ExtendedType;

pub use model::{FieldInGraph, GraphId, JoinModel, Key, TypeInGraph};

use apollo_compiler::Schema;
use apollo_compiler::validation::Valid;

/// Why a supergraph could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SupergraphError {
    /// The SDL does not parse or validate.
    #[error("invalid supergraph SDL: {0}")]
    Invalid(String),
    /// A `@link` for EXECUTION or SECURITY names a spec this router does not implement.
    #[error("unsupported feature: {0}")]
    UnsupportedFeature(String),
    /// The join directives are inconsistent.
    #[error("invalid join directives: {0}")]
    Join(String),
}

/// One subgraph, from `enum join__Graph`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subgraph {
    /// The subgraph's name (`@join__graph(name:)`).
    pub name: String,
    /// The `join__Graph` enum value that names it in join directives.
    pub graph_value: String,
    /// Where fetches go (`@join__graph(url:)`).
    pub url: String,
}

/// A loaded supergraph.
#[derive(Debug)]
pub struct Supergraph {
    /// The full supergraph schema, join directives included.
    pub schema: Valid<Schema>,
    /// The API schema clients validate and introspect against.
    pub api: Valid<Schema>,
    /// The subgraphs, in `join__Graph` order.
    pub subgraphs: Vec<Subgraph>,
    /// Who resolves what.
    pub join: JoinModel,
    /// The possible runtime object types of every composite type.
    possible: HashMap<Name, HashSet<Name>>,
}

impl Supergraph {
    /// Parses and validates supergraph SDL and derives its API schema.
    pub fn parse(sdl: &str) -> Result<Self, SupergraphError> {
        let schema = Schema::parse_and_validate(sdl, "supergraph.graphql")
            .map_err(|err| SupergraphError::Invalid(err.errors.to_string()))?;
        let api = api::api_schema(&schema)?;
        let subgraphs = model::read_subgraphs(&schema)?;
        let join = model::read_model(&schema, &subgraphs)?;
        let possible = possible_types(&schema);
        Ok(Self {
            schema,
            api,
            subgraphs,
            join,
            possible,
        })
    }

    /// The definition of `name` in the supergraph schema.
    pub fn type_def(&self, name: &str) -> Option<&ExtendedType> {
        self.schema.types.get(name)
    }

    /// Whether `name` is an interface or a union.
    pub fn is_abstract(&self, name: &str) -> bool {
        matches!(
            self.type_def(name),
            Some(ExtendedType::Interface(_) | ExtendedType::Union(_))
        )
    }

    /// Whether `name` is an interface.
    pub fn is_interface(&self, name: &str) -> bool {
        matches!(self.type_def(name), Some(ExtendedType::Interface(_)))
    }

    /// Whether `name` is an object, interface or union type.
    pub fn is_composite(&self, name: &str) -> bool {
        matches!(
            self.type_def(name),
            Some(ExtendedType::Object(_) | ExtendedType::Interface(_) | ExtendedType::Union(_))
        )
    }

    /// The object types an abstract type (or an object type itself) can be at runtime.
    pub fn possible_types(&self, name: &str) -> &HashSet<Name> {
        static EMPTY: std::sync::OnceLock<HashSet<Name>> = std::sync::OnceLock::new();
        self.possible
            .get(name)
            .unwrap_or_else(|| EMPTY.get_or_init(HashSet::new))
    }

    /// Whether an object of type `runtime` matches a fragment on `condition`: the same type,
    /// or one of its possible types.
    pub fn matches_fragment(&self, runtime: &str, condition: &str) -> bool {
        runtime == condition || self.possible_types(condition).contains(runtime)
    }

    /// The interfaces object type `name` implements in the supergraph.
    pub fn interfaces_of(&self, name: &str) -> Vec<Name> {
        match self.type_def(name) {
            Some(ExtendedType::Object(o)) => o
                .implements_interfaces
                .iter()
                .map(|i| i.name.clone())
                .collect(),
            Some(ExtendedType::Interface(i)) => i
                .implements_interfaces
                .iter()
                .map(|i| i.name.clone())
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The subgraph with id `graph`.
    pub fn subgraph(&self, graph: GraphId) -> &Subgraph {
        &self.subgraphs[graph]
    }
}

/// Every composite type's possible runtime object types.
fn possible_types(schema: &Schema) -> HashMap<Name, HashSet<Name>> {
    let mut possible: HashMap<Name, HashSet<Name>> = HashMap::new();
    for (name, ty) in &schema.types {
        match ty {
            ExtendedType::Object(object) => {
                possible
                    .entry(name.clone())
                    .or_default()
                    .insert(name.clone());
                for interface in &object.implements_interfaces {
                    possible
                        .entry(interface.name.clone())
                        .or_default()
                        .insert(name.clone());
                }
            }
            ExtendedType::Union(union) => {
                let members = possible.entry(name.clone()).or_default();
                members.extend(union.members.iter().map(|m| m.name.clone()));
            }
            ExtendedType::Interface(_) => {
                possible.entry(name.clone()).or_default();
            }
            _ => {}
        }
    }
    possible
}
