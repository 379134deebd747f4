//! Limits on a query's size and shape, checked on the syntax tree before validation, so a
//! hostile query costs the router little. Every walk here is iterative: the nesting of a query
//! must never become the nesting of the router's call stack.

use std::collections::{HashMap, HashSet};

use apollo_compiler::Name;
use apollo_compiler::ast::{Definition, Document, Selection};
use serde::Deserialize;

use crate::error::{GraphQLError, codes};

/// The parser's own recursion limit never goes above this, whatever `max_depth` says:
/// apollo-parser (and the validation after it) recurse once per nesting level; apollo-parser
/// considers 500 levels safe on a 2 MiB thread stack, and apollo-compiler's validation gives up
/// ("too much recursion") at 500. Staying below both keeps deep queries a clear limit error.
const MAX_PARSER_RECURSION: usize = 400;

/// The deepest field nesting enforced whatever `max_depth` says: apollo-compiler's field-merging
/// validation stops at 128 levels with a vague "too much recursion"; a clear limit error is
/// better.
const MAX_SUPPORTED_DEPTH: usize = 120;

/// Limits on requests and queries. Every limit is a count of something cheap to count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Limits {
    /// Deepest nesting of fields in an operation, fragments expanded (`{ a { b } }` is 2).
    /// Also bounds chains of fragment spreads. Values above 120 act as 120 (apollo-compiler's
    /// validation does not go deeper).
    pub max_depth: usize,
    /// Most field selections (aliased or not) in one operation, each fragment spread counting
    /// as its fragment's fields: bounds the work of planning and of shaping the response.
    pub max_fields: usize,
    /// Most aliased field selections in one operation, fragments expanded: aliases are how one
    /// short query asks for the same expensive field many times.
    pub max_aliases: usize,
    /// Longest query text, in bytes; longer queries are refused before parsing.
    pub max_query_bytes: usize,
    /// Most lexical tokens in a query; the parser stops at this count.
    pub max_tokens: usize,
    /// Largest HTTP request body, in bytes.
    pub max_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_depth: 64,
            max_fields: 1000,
            max_aliases: 250,
            max_query_bytes: 256 * 1024,
            max_tokens: 100_000,
            max_body_bytes: 1024 * 1024,
        }
    }
}

impl Limits {
    /// The recursion limit to give apollo-parser: room for inline fragments and nested input
    /// values on top of `max_depth`, and never more than what the stack takes.
    pub(crate) fn parser_recursion_limit(&self) -> usize {
        self.effective_max_depth()
            .saturating_mul(2)
            .saturating_add(16)
            .min(MAX_PARSER_RECURSION)
    }

    /// `max_depth`, capped at what validation supports.
    pub(crate) fn effective_max_depth(&self) -> usize {
        self.max_depth.min(MAX_SUPPORTED_DEPTH)
    }

    /// Refuses a query text over `max_query_bytes`.
    pub(crate) fn check_size(&self, query: &str) -> Result<(), GraphQLError> {
        if query.len() > self.max_query_bytes {
            return Err(exceeded(format!(
                "the query is {} bytes long; the limit is {} bytes",
                query.len(),
                self.max_query_bytes
            )));
        }
        Ok(())
    }

    /// The error for a query the parser stopped on.
    pub(crate) fn parser_limit_error(&self, recursion: bool) -> GraphQLError {
        if recursion {
            exceeded(format!(
                "the query is nested too deeply; the maximum depth is {}",
                self.effective_max_depth()
            ))
        } else {
            exceeded(format!(
                "the query has too many tokens; the limit is {}",
                self.max_tokens
            ))
        }
    }

    /// Checks depth, fragment-spread chains and field counts of every operation in `document`.
    pub(crate) fn check_shape(&self, document: &Document) -> Result<(), GraphQLError> {
        let max_depth = self.effective_max_depth();
        let fragments = fragment_costs(document);
        for definition in &document.definitions {
            let Definition::OperationDefinition(operation) = definition else {
                continue;
            };
            let cost = Local::scan(&operation.selection_set).expand(&fragments);
            let name = operation.name.as_ref().map_or_else(
                || "the operation".to_owned(),
                |n| format!("operation `{n}`"),
            );
            if cost.depth > max_depth || cost.spread_depth > max_depth {
                return Err(exceeded(format!(
                    "{name} is nested too deeply: depth {}, the maximum is {max_depth}",
                    cost.depth.max(cost.spread_depth),
                )));
            }
            if cost.fields > self.max_fields {
                return Err(exceeded(format!(
                    "{name} selects too many fields: {}, the maximum is {}",
                    count_text(cost.fields),
                    self.max_fields
                )));
            }
            if cost.aliases > self.max_aliases {
                return Err(exceeded(format!(
                    "{name} has too many aliases: {}, the maximum is {}",
                    count_text(cost.aliases),
                    self.max_aliases
                )));
            }
        }
        Ok(())
    }
}

fn count_text(count: usize) -> String {
    if count == usize::MAX {
        "more than can be counted".to_owned()
    } else {
        count.to_string()
    }
}

fn exceeded(message: String) -> GraphQLError {
    GraphQLError::new(message, codes::LIMIT_EXCEEDED)
}

/// The cost of a selection set with its fragments expanded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Cost {
    /// Field selections, saturating (a "fragment bomb" that doubles at each level saturates).
    fields: usize,
    /// Aliased field selections, saturating.
    aliases: usize,
    /// Deepest field nesting.
    depth: usize,
    /// Longest chain of nested fragment spreads.
    spread_depth: usize,
}

/// A selection set's own cost, and the fragments it spreads at which field depth.
struct Local<'a> {
    cost: Cost,
    spreads: Vec<(usize, &'a Name)>,
}

impl<'a> Local<'a> {
    fn scan(selection_set: &'a [Selection]) -> Self {
        let mut cost = Cost::default();
        let mut spreads = Vec::new();
        let mut stack: Vec<(&'a [Selection], usize)> = vec![(selection_set, 0)];
        while let Some((selections, depth)) = stack.pop() {
            for selection in selections {
                match selection {
                    Selection::Field(field) => {
                        cost.fields = cost.fields.saturating_add(1);
                        if field.alias.is_some() {
                            cost.aliases = cost.aliases.saturating_add(1);
                        }
                        cost.depth = cost.depth.max(depth + 1);
                        if !field.selection_set.is_empty() {
                            stack.push((&field.selection_set, depth + 1));
                        }
                    }
                    Selection::InlineFragment(inline) => {
                        stack.push((&inline.selection_set, depth));
                    }
                    Selection::FragmentSpread(spread) => {
                        spreads.push((depth, &spread.fragment_name));
                    }
                }
            }
        }
        Self { cost, spreads }
    }

    /// The cost with every spread replaced by its fragment's (already expanded) cost. Unknown
    /// fragments and cycles count as nothing: validation reports them.
    fn expand(&self, fragments: &HashMap<&Name, Cost>) -> Cost {
        let mut cost = self.cost;
        for (depth, name) in &self.spreads {
            let Some(fragment) = fragments.get(name) else {
                continue;
            };
            cost.fields = cost.fields.saturating_add(fragment.fields);
            cost.aliases = cost.aliases.saturating_add(fragment.aliases);
            cost.depth = cost.depth.max(depth.saturating_add(fragment.depth));
            cost.spread_depth = cost
                .spread_depth
                .max(fragment.spread_depth.saturating_add(1));
        }
        cost
    }
}

/// Every fragment's expanded cost, computed children first with an explicit stack (a chain of
/// thousands of fragments must not recurse).
fn fragment_costs(document: &Document) -> HashMap<&Name, Cost> {
    let locals: HashMap<&Name, Local<'_>> = document
        .definitions
        .iter()
        .filter_map(|d| match d {
            Definition::FragmentDefinition(f) => Some((&f.name, Local::scan(&f.selection_set))),
            _ => None,
        })
        .collect();
    let mut costs: HashMap<&Name, Cost> = HashMap::with_capacity(locals.len());
    let mut in_progress: HashSet<&Name> = HashSet::new();
    for root in locals.keys() {
        // (fragment, children pushed?)
        let mut stack = vec![(*root, false)];
        while let Some((name, expanded)) = stack.pop() {
            if costs.contains_key(name) {
                continue;
            }
            let Some(local) = locals.get(name) else {
                continue;
            };
            if expanded {
                let cost = local.expand(&costs);
                costs.insert(name, cost);
                in_progress.remove(name);
                continue;
            }
            if !in_progress.insert(name) {
                continue; // a cycle: validation rejects it
            }
            stack.push((name, true));
            for (_, child) in &local.spreads {
                if !costs.contains_key(child) && !in_progress.contains(child) {
                    stack.push((child, false));
                }
            }
        }
    }
    costs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(query: &str, limits: Limits) -> Result<(), GraphQLError> {
        let document = Document::parse(query, "q.graphql").expect("parses");
        limits.check_shape(&document)
    }

    #[test]
    fn depth_counts_fields_through_fragments() {
        let limits = Limits {
            max_depth: 3,
            ..Limits::default()
        };
        assert!(shape("{ a { b { c } } }", limits).is_ok());
        let err =
            shape("{ a { ...F } } fragment F on T { b { c { d } } }", limits).expect_err("depth 4");
        assert_eq!(err.code(), Some(codes::LIMIT_EXCEEDED));
        assert!(err.message.contains("depth 4"), "{}", err.message);
    }

    #[test]
    fn field_count_expands_each_spread() {
        let limits = Limits {
            max_fields: 5,
            ..Limits::default()
        };
        assert!(shape("{ ...F ...F } fragment F on Query { a b }", limits).is_ok());
        let err =
            shape("{ ...F ...F ...F } fragment F on Query { a b }", limits).expect_err("6 fields");
        assert!(err.message.contains("6"), "{}", err.message);
    }

    #[test]
    fn alias_count_counts_only_aliased_fields_with_fragments_expanded() {
        let limits = Limits {
            max_aliases: 3,
            ..Limits::default()
        };
        assert!(shape("{ a b c d e f { g h } x: a }", limits).is_ok());
        assert!(shape("{ ...F } fragment F on Query { x: a y: a z: a }", limits).is_ok());
        let err = shape("{ ...F ...F } fragment F on Query { x: a y: a }", limits)
            .expect_err("4 aliases");
        assert_eq!(err.code(), Some(codes::LIMIT_EXCEEDED));
        assert!(
            err.message.contains("too many aliases: 4"),
            "{}",
            err.message
        );
    }

    #[test]
    fn fragment_bomb_saturates_instead_of_exploding() {
        let mut query = String::from("{ ...F0 }\n");
        for i in 0..64 {
            query.push_str(&format!(
                "fragment F{i} on Query {{ ...F{n} ...F{n} }}\n",
                n = i + 1
            ));
        }
        query.push_str("fragment F64 on Query { a }\n");
        let err = shape(
            &query,
            Limits {
                max_depth: 1000,
                ..Limits::default()
            },
        )
        .expect_err("2^64 fields");
        assert!(err.message.contains("too many fields"), "{}", err.message);
    }

    #[test]
    fn long_fragment_chain_is_refused_without_recursion() {
        let mut query = String::from("{ ...F0 }\n");
        for i in 0..5000 {
            query.push_str(&format!("fragment F{i} on Query {{ ...F{} }}\n", i + 1));
        }
        query.push_str("fragment F5000 on Query { a }\n");
        let err = shape(&query, Limits::default()).expect_err("chain of 5001 spreads");
        assert!(err.message.contains("nested too deeply"), "{}", err.message);
    }

    #[test]
    fn fragment_cycles_do_not_hang() {
        assert!(
            shape(
                "{ ...A } fragment A on Query { ...B } fragment B on Query { ...A a }",
                Limits::default()
            )
            .is_ok()
        );
    }
}
