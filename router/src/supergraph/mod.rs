//! The supergraph: Apollo's join-spec SDL read into a typed model.

pub mod api;
pub mod model;

use std::collections::HashSet;

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
}

impl Supergraph {
    /// Parses and validates supergraph SDL and derives its API schema.
    pub fn parse(sdl: &str) -> Result<Self, SupergraphError> {
        let schema = Schema::parse_and_validate(sdl, "supergraph.graphql")
            .map_err(|err| SupergraphError::Invalid(err.errors.to_string()))?;
        let api = api::api_schema(&schema)?;
        let subgraphs = model::read_subgraphs(&schema)?;
        let join = model::read_model(&schema, &subgraphs)?;
        Ok(Self {
            schema,
            api,
            subgraphs,
            join,
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
    pub fn possible_types(&self, name: &str) -> HashSet<Name> {
        match self.type_def(name) {
            Some(ExtendedType::Object(_)) => [Name::new_unchecked(name)].into(),
            Some(ExtendedType::Union(u)) => u.members.iter().map(|m| m.name.clone()).collect(),
            Some(ExtendedType::Interface(_)) => self
                .schema
                .types
                .iter()
                .filter_map(|(type_name, ty)| match ty {
                    ExtendedType::Object(o) if o.implements_interfaces.contains(name) => {
                        Some(type_name.clone())
                    }
                    _ => None,
                })
                .collect(),
            _ => HashSet::new(),
        }
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

    /// The declared type of `type_name.field` in the supergraph.
    pub fn field_type(&self, type_name: &str, field: &str) -> Option<&apollo_compiler::ast::Type> {
        match self.type_def(type_name)? {
            ExtendedType::Object(o) => o.fields.get(field).map(|f| &f.ty),
            ExtendedType::Interface(i) => i.fields.get(field).map(|f| &f.ty),
            _ => None,
        }
    }

    /// The subgraph with id `graph`.
    pub fn subgraph(&self, graph: GraphId) -> &Subgraph {
        &self.subgraphs[graph]
    }
}
