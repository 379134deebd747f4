//! Assigns the operation's fields to fetch groups.
//!
//! A group is "what subgraph S fetches at response path P, starting from objects of type T".
//! Walking the client's selection with a [`Ctx`] (the group, its subgraph, the parent type and
//! path, what `@provides` supplies there), each field either stays in the current group (the
//! subgraph can resolve it here) or hands off to an entity group in another subgraph: the
//! current group then also selects `__typename` and a key that subgraph accepts, plus any
//! `@requires` fields, and the new group depends on every group that supplies them.

use std::collections::{BTreeSet, HashMap};

use apollo_compiler::executable::ExecutableDocument;
use apollo_compiler::{Name, ast};

use super::PlanError;
use super::nodes::PathElem;
use super::operation::{
    Condition, Field, Fragment, Selection, SelectionSet, merge_into, normalize, push_field,
};
use crate::supergraph::{GraphId, Supergraph};

/// How deep hand-offs may chain before the planner gives up (guards against key cycles).
const MAX_HOPS: usize = 32;

/// An `_entities` group's own data.
#[derive(Debug, Clone)]
pub(super) struct EntityGroup {
    /// Where its objects are.
    pub path: Vec<PathElem>,
    /// The type in `... on T`.
    pub type_name: Name,
    /// Every type the fetch completes (several once groups of one path are merged).
    pub types: Vec<Name>,
    /// The representation shape.
    pub input: SelectionSet,
    /// Send this `__typename` instead of the object's.
    pub rewrite_typename: Option<Name>,
}

/// One subgraph fetch being built.
#[derive(Debug, Clone)]
pub(super) struct Group {
    pub graph: GraphId,
    /// `None` for a root fetch.
    pub entity: Option<EntityGroup>,
    pub selection: SelectionSet,
    pub deps: BTreeSet<usize>,
    pub condition: Condition,
    /// For root groups: the position of the root field that opened it (mutations run in order).
    pub stage: usize,
}

/// Where the walk is.
#[derive(Debug, Clone)]
struct Ctx {
    group: usize,
    graph: GraphId,
    parent: Name,
    path: Vec<PathElem>,
    provides: Option<SelectionSet>,
    condition: Condition,
    hops: usize,
    /// For the value of a field several subgraphs resolve: the object types every one of them
    /// can return. Fragments on other types are never fetched.
    shared_members: Option<Vec<Name>>,
    /// The levels above this one in the same group, nearest last: where a parent entity can
    /// be completed from when this level's type has no key.
    frames: Vec<Frame>,
}

/// A level above the current one: its context, and the field that led down from it.
#[derive(Debug, Clone)]
struct Frame {
    ctx: Box<Ctx>,
    field: Field,
}

/// Builds groups for one operation.
pub(super) struct Builder<'a> {
    sg: &'a Supergraph,
    pub groups: Vec<Group>,
    /// Entity groups used since a mark, to learn which groups supply keys and requirements.
    touched: Vec<usize>,
    /// For each level being planned, the client's response keys there: (key, name, args).
    level_keys: Vec<Vec<(Name, Name, String)>>,
    /// Selections a deeper level adds to an ancestor level: (group, path, selection).
    pending: Vec<(usize, Vec<PathElem>, SelectionSet)>,
    empty_document: ExecutableDocument,
    field_sets: HashMap<String, SelectionSet>,
}

impl<'a> Builder<'a> {
    pub fn new(sg: &'a Supergraph) -> Self {
        Self {
            sg,
            groups: Vec::new(),
            touched: Vec::new(),
            pending: Vec::new(),
            level_keys: Vec::new(),
            empty_document: ExecutableDocument::new(),
            field_sets: HashMap::new(),
        }
    }

    /// A field set (key, requires, provides) in normalized form.
    fn field_set(&mut self, set: &apollo_compiler::executable::SelectionSet) -> SelectionSet {
        let cache_key = format!("{}:{}", set.ty, set.serialize().no_indent());
        if let Some(found) = self.field_sets.get(&cache_key) {
            return found.clone();
        }
        let normalized = normalize(&self.empty_document, set, &Condition::default(), 0);
        self.field_sets.insert(cache_key, normalized.clone());
        normalized
    }

    /// Plans one root field into a root group. Query fields share one group per subgraph;
    /// mutation fields (`sequential`) run in order, consecutive ones on one subgraph sharing a
    /// fetch. A query field whose value type no single subgraph resolves (a shared value type
    /// without a key) is asked of several subgraphs, each for the part it resolves.
    pub fn plan_root_field(
        &mut self,
        root_type: &Name,
        field: &Field,
        sequential: bool,
    ) -> Result<(), PlanError> {
        let graphs = self.root_graphs(root_type, field)?;
        let snapshot = self.groups.clone();
        let whole = self.plan_root_field_in(graphs[0], root_type, field, sequential);
        let Err(error) = whole else {
            return Ok(());
        };
        self.groups = snapshot;
        if sequential || field.selection.items.is_empty() || graphs.len() < 2 {
            return Err(error);
        }
        for item in &field.selection.items {
            let part = Field {
                selection: SelectionSet {
                    items: vec![item.clone()],
                },
                ..field.clone()
            };
            let mut planned = false;
            for graph in &graphs {
                let snapshot = self.groups.clone();
                if self
                    .plan_root_field_in(*graph, root_type, &part, false)
                    .is_ok()
                {
                    planned = true;
                    break;
                }
                self.groups = snapshot;
            }
            if !planned {
                return Err(error);
            }
        }
        Ok(())
    }

    fn plan_root_field_in(
        &mut self,
        graph: GraphId,
        root_type: &Name,
        field: &Field,
        sequential: bool,
    ) -> Result<(), PlanError> {
        let existing = if sequential {
            self.groups
                .iter()
                .rposition(|g| g.entity.is_none())
                .filter(|last| self.groups[*last].graph == graph)
        } else {
            self.groups
                .iter()
                .position(|g| g.entity.is_none() && g.graph == graph)
        };
        let group = match existing {
            Some(group) => group,
            None => {
                let (deps, stage) = if sequential {
                    let stage = self.groups.iter().filter(|g| g.entity.is_none()).count();
                    ((0..self.groups.len()).collect(), stage)
                } else {
                    (BTreeSet::new(), 0)
                };
                self.groups.push(Group {
                    graph,
                    entity: None,
                    selection: SelectionSet::default(),
                    deps,
                    condition: Condition::default(),
                    stage,
                });
                self.groups.len() - 1
            }
        };
        let ctx = Ctx {
            group,
            graph,
            parent: root_type.clone(),
            path: Vec::new(),
            provides: None,
            condition: Condition::default(),
            hops: 0,
            shared_members: None,
            frames: Vec::new(),
        };
        let single = SelectionSet {
            items: vec![Selection::Field(field.clone())],
        };
        let selected = self.select(&ctx, &single)?;
        merge_into(&mut self.groups[group].selection, selected);
        Ok(())
    }

    /// The subgraphs that resolve a root field, best first: the one that resolves most of its
    /// sub-selection itself, then one already used, then declaration order.
    fn root_graphs(&self, root_type: &Name, field: &Field) -> Result<Vec<GraphId>, PlanError> {
        let mut scored = Vec::new();
        for resolver in self.sg.join.resolvers(root_type, &field.name) {
            let provides = resolver
                .provides
                .as_ref()
                .map(|p| normalize(&ExecutableDocument::new(), p, &Condition::default(), 0));
            let coverage = self.coverage(
                resolver.graph,
                field.type_name(),
                &field.selection,
                provides.as_ref(),
            );
            let used = self
                .groups
                .iter()
                .any(|g| g.entity.is_none() && g.graph == resolver.graph);
            scored.push((
                (coverage, used, usize::MAX - resolver.graph),
                resolver.graph,
            ));
        }
        if scored.is_empty() {
            return Err(PlanError::Unsatisfiable(format!(
                "{root_type}.{}",
                field.name
            )));
        }
        scored.sort_by_key(|(score, _)| std::cmp::Reverse(*score));
        Ok(scored.into_iter().map(|(_, graph)| graph).collect())
    }

    /// How many fields of `set` (on `parent`) `graph` resolves without a hand-off.
    fn coverage(
        &self,
        graph: GraphId,
        parent: &Name,
        set: &SelectionSet,
        provides: Option<&SelectionSet>,
    ) -> usize {
        let mut count = 0;
        for item in &set.items {
            match item {
                Selection::Field(field) => {
                    if self.local(graph, parent, &field.name, provides) {
                        let sub = provided_sub(provides, parent, &field.name);
                        count += 1 + self.coverage(
                            graph,
                            field.type_name(),
                            &field.selection,
                            sub.as_ref(),
                        );
                    }
                }
                Selection::Fragment(fragment) => {
                    count += self.coverage(graph, &fragment.on, &fragment.selection, provides);
                }
            }
        }
        count
    }

    /// Whether `graph` resolves `parent.field` at a place where `provides` applies.
    fn local(
        &self,
        graph: GraphId,
        parent: &str,
        field: &str,
        provides: Option<&SelectionSet>,
    ) -> bool {
        if field == "__typename" || provided(provides, parent, field) {
            return true;
        }
        match self.sg.join.field_in(parent, field, graph) {
            // A field with `@requires` needs its inputs in a representation: only an entity
            // fetch can give them, even from its own subgraph.
            Some(f) if f.resolves() => {
                f.requires.is_none() && self.every_implementation_resolves(graph, parent, field)
            }
            // `@external` (even on a key) means another subgraph resolves it.
            Some(_) => false,
            None => false,
        }
    }

    /// For an interface field: whether `graph` also resolves it on every implementation it
    /// knows (an implementation's field may be overridden to another subgraph).
    fn every_implementation_resolves(&self, graph: GraphId, parent: &str, field: &str) -> bool {
        if !self.sg.is_interface(parent)
            || self
                .sg
                .join
                .type_in(parent, graph)
                .is_some_and(|t| t.is_interface_object)
        {
            return true;
        }
        self.sg.possible_types(parent).iter().all(|object| {
            !self.sg.join.implements_in(object, parent, graph)
                || self
                    .sg
                    .join
                    .field_in(object, field, graph)
                    .is_some_and(|f| f.resolves() && f.requires.is_none())
        })
    }

    /// Whether `ctx`'s subgraph sees the parent interface as an object (`@interfaceObject`).
    fn interface_object_here(&self, ctx: &Ctx) -> bool {
        self.sg.is_interface(&ctx.parent)
            && self
                .sg
                .join
                .type_in(&ctx.parent, ctx.graph)
                .is_some_and(|t| t.is_interface_object)
    }

    /// Plans `set` at `ctx`; returns what `ctx.group` selects at this level.
    fn select(&mut self, ctx: &Ctx, set: &SelectionSet) -> Result<SelectionSet, PlanError> {
        let mut keys = Vec::new();
        client_keys(set, &mut keys);
        self.level_keys.push(keys);
        let selected = self.select_level(ctx, set);
        self.level_keys.pop();
        selected
    }

    /// The response keys the client uses at the level being planned, with what they select.
    fn client_key_taken(&self, field: &Field) -> bool {
        self.level_keys.last().is_some_and(|keys| {
            keys.iter().any(|(key, name, args)| {
                *key == field.key && (*name != field.name || *args != field.args)
            })
        })
    }

    /// Gives fields the planner adds (keys, requirements) a key of their own where the
    /// client already uses their name for something else at this level.
    fn avoid_client_keys(&self, mut set: SelectionSet) -> SelectionSet {
        for item in &mut set.items {
            if let Selection::Field(field) = item
                && self.client_key_taken(field)
            {
                let alias = Name::new_unchecked(&format!("_tessera_key_{}", field.name));
                field.key = alias.clone();
                field.alias = Some(alias);
            }
        }
        set
    }

    fn select_level(&mut self, ctx: &Ctx, set: &SelectionSet) -> Result<SelectionSet, PlanError> {
        let mut out = SelectionSet::default();
        for item in &set.items {
            match item {
                Selection::Field(field) => self.select_field(ctx, field, &mut out)?,
                Selection::Fragment(fragment) => self.select_fragment(ctx, fragment, &mut out)?,
            }
        }
        // Keys that hand-offs from deeper levels need at this level.
        let mut index = 0;
        while index < self.pending.len() {
            let (group, path, _) = &self.pending[index];
            if *group == ctx.group && *path == ctx.path {
                let (_, _, keys) = self.pending.swap_remove(index);
                merge_into(&mut out, keys);
            } else {
                index += 1;
            }
        }
        Ok(out)
    }

    fn select_field(
        &mut self,
        ctx: &Ctx,
        field: &Field,
        out: &mut SelectionSet,
    ) -> Result<(), PlanError> {
        if field.name == "__typename" {
            if self.interface_object_here(ctx) {
                // The subgraph would answer with the interface's name: ask one that knows.
                let item = Selection::Field(field.clone());
                if self.real_type_handoff(ctx, item, out)? {
                    return Ok(());
                }
            }
            push_field(out, field.clone());
            return Ok(());
        }
        if self.local(ctx.graph, &ctx.parent, &field.name, ctx.provides.as_ref()) {
            let selected = self.select_local_field(ctx, field)?;
            push_field(out, selected);
            return Ok(());
        }
        self.handoff(ctx, field, out)
    }

    /// A field the current subgraph resolves, with its sub-selection planned below it.
    fn select_local_field(&mut self, ctx: &Ctx, field: &Field) -> Result<Field, PlanError> {
        let mut selected = field.clone();
        if field.selection.items.is_empty() {
            return Ok(selected);
        }
        // The subgraph may declare a narrower type (`@join__field(type:)`), e.g. an object
        // where the supergraph has a union: plan against what it returns.
        let child_type = self
            .sg
            .join
            .field_in(&ctx.parent, &field.name, ctx.graph)
            .and_then(|f| f.type_in_graph)
            .map(|t| named_type_of(&t))
            .filter(|t| self.sg.is_composite(t))
            .unwrap_or_else(|| field.type_name().clone());
        let mut provides = provided_sub(ctx.provides.as_ref(), &ctx.parent, &field.name);
        if let Some(declared) = self
            .sg
            .join
            .field_in(&ctx.parent, &field.name, ctx.graph)
            .and_then(|f| f.provides)
        {
            let declared = self.field_set(&declared);
            match &mut provides {
                Some(existing) => merge_into(existing, declared),
                None => provides = Some(declared),
            }
        }
        let child = Ctx {
            group: ctx.group,
            graph: ctx.graph,
            parent: child_type.clone(),
            path: child_path(&ctx.path, field),
            provides,
            condition: ctx.condition.and(&field.condition),
            hops: ctx.hops,
            shared_members: self.shared_members(ctx, field),
            frames: {
                let mut frames = ctx.frames.clone();
                frames.push(Frame {
                    ctx: Box::new(Ctx {
                        frames: Vec::new(),
                        ..ctx.clone()
                    }),
                    field: Field {
                        selection: SelectionSet::default(),
                        ..field.clone()
                    },
                });
                frames
            },
        };
        let mut wanted = field.selection.clone();
        if self.interface_object_here(&child) {
            // The subgraph answers with the interface's name; the response needs the object's.
            prepend_typename(&mut wanted);
        }
        let mut sub = self.select(&child, &wanted)?;
        // Everything below may have been handed off; an object field still needs a selection.
        if self.sg.is_abstract(field.type_name()) || sub.items.is_empty() {
            prepend_typename(&mut sub);
        }
        selected.selection = sub;
        Ok(selected)
    }

    fn select_fragment(
        &mut self,
        ctx: &Ctx,
        fragment: &Fragment,
        out: &mut SelectionSet,
    ) -> Result<(), PlanError> {
        let on = &fragment.on;
        if !self.sg.is_abstract(&ctx.parent) && *on != ctx.parent {
            // An object type: the fragment applies only through an abstract type it belongs to.
            if !self.sg.possible_types(on).contains(&ctx.parent) {
                return Ok(());
            }
        }
        if *on == ctx.parent || !self.sg.is_abstract(&ctx.parent) {
            // The fragment applies to every object here: plan its fields in place.
            let inner = Ctx {
                condition: ctx.condition.and(&fragment.condition),
                ..ctx.clone()
            };
            let sub = self.select(&inner, &fragment.selection)?;
            push_conditional(out, &ctx.parent, &fragment.condition, sub);
            return Ok(());
        }
        if self.interface_object_here(ctx) {
            let item = Selection::Fragment(fragment.clone());
            self.real_type_handoff(ctx, item, out)?;
            return Ok(());
        }
        if !self.sg.is_abstract(on) {
            let shared = ctx
                .shared_members
                .as_ref()
                .is_none_or(|members| members.contains(on));
            if shared && self.graph_knows_member(ctx.graph, &ctx.parent, on) {
                let inner = Ctx {
                    parent: on.clone(),
                    provides: narrow_provides(ctx.provides.as_ref(), on),
                    condition: ctx.condition.and(&fragment.condition),
                    ..ctx.clone()
                };
                let sub = self.select(&inner, &fragment.selection)?;
                push_typed_fragment(out, on, &fragment.condition, sub);
            }
            // Otherwise this subgraph never returns such objects here.
            return Ok(());
        }
        // An abstract condition inside an abstract parent.
        if self.sg.join.type_in(on, ctx.graph).is_some()
            && self.abstract_known_in(ctx.graph, &ctx.parent, on)
        {
            let inner = Ctx {
                parent: on.clone(),
                provides: narrow_provides(ctx.provides.as_ref(), on),
                condition: ctx.condition.and(&fragment.condition),
                ..ctx.clone()
            };
            let sub = self.select(&inner, &fragment.selection)?;
            push_typed_fragment(out, on, &fragment.condition, sub);
            return Ok(());
        }
        let parent_types = self.sg.possible_types(&ctx.parent);
        let mut members: Vec<Name> = self
            .sg
            .possible_types(on)
            .iter()
            .filter(|t| parent_types.contains(*t))
            .cloned()
            .collect();
        members.sort();
        for member in members {
            let narrowed = Fragment {
                on: member,
                condition: fragment.condition.clone(),
                selection: fragment.selection.clone(),
            };
            self.select_fragment(ctx, &narrowed, out)?;
        }
        Ok(())
    }

    /// For a field of abstract type whose value another subgraph could also produce here
    /// (through shareable fields below an entity it resolves): the member types every such
    /// subgraph knows, since shareable fields must agree. `None` when only this subgraph can.
    fn shared_members(&self, ctx: &Ctx, field: &Field) -> Option<Vec<Name>> {
        let abstract_type = field.type_name();
        if !self.sg.is_abstract(abstract_type) {
            return None;
        }
        let others: Vec<GraphId> = self
            .sg
            .join
            .resolvers(&ctx.parent, &field.name)
            .iter()
            .map(|r| r.graph)
            .filter(|g| *g != ctx.graph && self.reaches(*g, ctx, field))
            .collect();
        if others.is_empty() {
            return None;
        }
        let mut members: Vec<Name> = self
            .sg
            .possible_types(abstract_type)
            .iter()
            .filter(|member| {
                self.graph_knows_member(ctx.graph, abstract_type, member)
                    && others
                        .iter()
                        .all(|g| self.graph_knows_member(*g, abstract_type, member))
            })
            .cloned()
            .collect();
        members.sort();
        Some(members)
    }

    /// Whether `graph` could resolve `field` at `ctx` too: from an entity above (or at) this
    /// level that it can be asked for, every field down to here resolves in it.
    fn reaches(&self, graph: GraphId, ctx: &Ctx, field: &Field) -> bool {
        let entity_in = |parent: &str| {
            self.sg
                .join
                .type_in(parent, graph)
                .is_some_and(|t| t.keys.iter().any(|k| k.resolvable))
        };
        // Levels from the nearest up: (parent type there, fields from there down).
        let mut chain: Vec<(&Name, &Name)> = vec![(&ctx.parent, &field.name)];
        if entity_in(&ctx.parent) {
            return true;
        }
        for frame in ctx.frames.iter().rev() {
            chain.push((&frame.ctx.parent, &frame.field.name));
            let resolvable = chain
                .iter()
                .all(|(parent, name)| self.local(graph, parent, name, None));
            if !resolvable {
                return false;
            }
            if entity_in(&frame.ctx.parent) {
                return true;
            }
        }
        false
    }

    /// Whether `graph` may return objects of type `member` where `parent` (abstract) is expected.
    fn graph_knows_member(&self, graph: GraphId, parent: &str, member: &str) -> bool {
        if self.sg.join.type_in(member, graph).is_none() {
            return false;
        }
        if self.sg.is_interface(parent) {
            self.sg.join.implements_in(member, parent, graph)
                || self.graph_knows_member_transitively(graph, parent, member)
        } else {
            self.sg.join.union_member_in(parent, member, graph)
        }
    }

    fn graph_knows_member_transitively(&self, graph: GraphId, parent: &str, member: &str) -> bool {
        // `member` implements an interface that implements `parent` in this graph.
        self.sg.interfaces_of(member).iter().any(|i| {
            i.as_str() != parent
                && self.sg.join.implements_in(member, i, graph)
                && self.sg.join.implements_in(i, parent, graph)
        })
    }

    /// Whether abstract `inner` can appear where abstract `outer` is expected in `graph`.
    fn abstract_known_in(&self, graph: GraphId, outer: &str, inner: &str) -> bool {
        let outer_types = self.sg.possible_types(outer);
        self.sg
            .possible_types(inner)
            .iter()
            .filter(|t| outer_types.contains(*t))
            .all(|t| {
                !self.graph_knows_member(graph, outer, t)
                    || self.graph_knows_member(graph, inner, t)
            })
    }

    /// Hands `field` off to another subgraph.
    fn handoff(
        &mut self,
        ctx: &Ctx,
        field: &Field,
        out: &mut SelectionSet,
    ) -> Result<(), PlanError> {
        if ctx.hops > MAX_HOPS {
            return Err(PlanError::Unsatisfiable(format!(
                "{}.{} (too many hops)",
                ctx.parent, field.name
            )));
        }
        let parent = ctx.parent.clone();
        if self.entity_handoff(ctx, &parent, field, out)? {
            return Ok(());
        }
        if self.sg.is_abstract(&parent) {
            // Resolve the field per concrete type.
            let mut members: Vec<Name> = self.sg.possible_types(&parent).iter().cloned().collect();
            members.sort();
            let mut planned = false;
            for member in members {
                if !self.interface_object_here(ctx)
                    && !self.graph_knows_member(ctx.graph, &parent, &member)
                {
                    continue;
                }
                let fragment = Fragment {
                    on: member,
                    condition: Condition::default(),
                    selection: SelectionSet {
                        items: vec![Selection::Field(field.clone())],
                    },
                };
                self.select_fragment(ctx, &fragment, out)?;
                planned = true;
            }
            if planned {
                return Ok(());
            }
        } else {
            // A field an interface object adds to every implementation.
            for interface in self.sg.interfaces_of(&parent) {
                if self.entity_handoff(ctx, &interface, field, out)? {
                    return Ok(());
                }
            }
        }
        if self.ancestor_handoff(ctx, field)? {
            return Ok(());
        }
        Err(PlanError::Unsatisfiable(format!("{parent}.{}", field.name)))
    }

    /// When this level's type has no key another subgraph accepts, completes the nearest
    /// ancestor entity instead: the other subgraph resolves the whole chain of fields from that
    /// entity down to `field`.
    fn ancestor_handoff(&mut self, ctx: &Ctx, field: &Field) -> Result<bool, PlanError> {
        for depth in (0..ctx.frames.len()).rev() {
            let mut chain = field.clone();
            for frame in ctx.frames[depth + 1..].iter().rev() {
                chain = Field {
                    selection: SelectionSet {
                        items: vec![Selection::Field(chain)],
                    },
                    ..frame.field.clone()
                };
            }
            let frame = &ctx.frames[depth];
            chain = Field {
                selection: SelectionSet {
                    items: vec![Selection::Field(chain)],
                },
                ..frame.field.clone()
            };
            let ancestor = Ctx {
                frames: ctx.frames[..depth].to_vec(),
                hops: ctx.hops + 1,
                ..(*frame.ctx).clone()
            };
            let snapshot = (self.groups.clone(), self.pending.len());
            let mut keys = SelectionSet::default();
            match self.entity_handoff(&ancestor, &ancestor.parent, &chain, &mut keys) {
                Ok(true) => {
                    self.pending
                        .push((ancestor.group, ancestor.path.clone(), keys));
                    return Ok(true);
                }
                Ok(false) | Err(_) => {
                    self.groups = snapshot.0;
                    self.pending.truncate(snapshot.1);
                }
            }
        }
        Ok(false)
    }

    /// Hands `field` off through an entity fetch keyed on `entity_type`. Returns false when no
    /// subgraph can take it.
    fn entity_handoff(
        &mut self,
        ctx: &Ctx,
        entity_type: &Name,
        field: &Field,
        out: &mut SelectionSet,
    ) -> Result<bool, PlanError> {
        let targets = self.choose_targets(ctx, entity_type, field);
        let mut last_error = None;
        for choice in targets {
            let snapshot = (
                self.groups.clone(),
                self.pending.len(),
                self.touched.len(),
                out.clone(),
            );
            match self.handoff_to(ctx, entity_type, field, out, choice) {
                Ok(()) => return Ok(true),
                Err(err) => {
                    self.groups = snapshot.0;
                    self.pending.truncate(snapshot.1);
                    self.touched.truncate(snapshot.2);
                    *out = snapshot.3;
                    last_error = Some(err);
                }
            }
        }
        match last_error {
            Some(err) => Err(err),
            None => Ok(false),
        }
    }

    /// Hands `field` off to `choice`.
    fn handoff_to(
        &mut self,
        ctx: &Ctx,
        entity_type: &Name,
        field: &Field,
        out: &mut SelectionSet,
        choice: Target,
    ) -> Result<(), PlanError> {
        let mark = self.touched.len();
        let key_fields = self.field_set(&choice.key);
        let key_fields = self.avoid_client_keys(key_fields);
        let hop_ctx = Ctx {
            hops: ctx.hops + 1,
            ..ctx.clone()
        };
        let needed = self.not_yet_available(ctx, &key_fields);
        let mut supplied = self.select(&hop_ctx, &needed)?;
        prepend_typename(&mut supplied);
        let mut input = key_fields.clone();
        prepend_typename(&mut input);
        if let Some(requires) = &choice.requires {
            // Required fields with arguments get their own response keys, so they never
            // collide with the client's selection of the same field with other arguments.
            let requires = alias_arguments(self.field_set(requires));
            let requires = self.avoid_client_keys(requires);
            let required = self.select(&hop_ctx, &requires)?;
            merge_into(&mut supplied, required);
            merge_into(&mut input, requires);
        }
        merge_into(out, supplied);
        let suppliers: Vec<usize> = self.touched[mark..].to_vec();
        // The hand-off runs only when the field is included.
        let group_ctx = Ctx {
            condition: ctx.condition.and(&field.condition),
            ..ctx.clone()
        };
        let target = self.entity_group(
            &group_ctx,
            choice.graph,
            entity_type,
            (&suppliers, Some(&input)),
            choice.rewrite,
        );
        {
            let group = &mut self.groups[target];
            group.deps.insert(ctx.group);
            group
                .deps
                .extend(suppliers.iter().copied().filter(|g| *g != target));
            if let Some(entity) = &mut group.entity {
                merge_into(&mut entity.input, input);
            }
        }
        let target_ctx = Ctx {
            group: target,
            graph: choice.graph,
            parent: entity_type.clone(),
            path: ctx.path.clone(),
            provides: None,
            condition: group_ctx.condition.clone(),
            hops: ctx.hops + 1,
            shared_members: None,
            frames: Vec::new(),
        };
        let selected = if choice.requires.is_some() {
            // The representation carries the requirements: the field resolves here.
            let mut selected = SelectionSet::default();
            push_field(&mut selected, self.select_local_field(&target_ctx, field)?);
            selected
        } else {
            let single = SelectionSet {
                items: vec![Selection::Field(field.clone())],
            };
            self.select(&target_ctx, &single)?
        };
        merge_into(&mut self.groups[target].selection, selected);
        self.touched.push(target);
        Ok(())
    }

    /// The fields of `set` not already in the data where `ctx` is: an entity group's own
    /// representation fields are there before it runs.
    fn not_yet_available(&self, ctx: &Ctx, set: &SelectionSet) -> SelectionSet {
        let Some(entity) = &self.groups[ctx.group].entity else {
            return set.clone();
        };
        if entity.path != ctx.path {
            return set.clone();
        }
        let items = set
            .items
            .iter()
            .filter(|item| match item {
                Selection::Field(field) => !entity.input.items.iter().any(|i| {
                    matches!(i, Selection::Field(f) if f.key == field.key && f.args == field.args && f.selection.items.is_empty() && field.selection.items.is_empty())
                }),
                Selection::Fragment(_) => true,
            })
            .cloned()
            .collect();
        SelectionSet { items }
    }

    /// The subgraphs and keys an entity hand-off of `entity_type.field` could go to, best
    /// first: a key the current subgraph can supply itself, then the subgraph that resolves
    /// most of the field's sub-selection, then one already fetched from here.
    fn choose_targets(&self, ctx: &Ctx, entity_type: &Name, field: &Field) -> Vec<Target> {
        let mut candidates = Vec::new();
        for resolver in self.sg.join.resolvers(entity_type, &field.name) {
            if resolver.graph == ctx.graph && resolver.requires.is_none() {
                continue;
            }
            let Some(type_in) = self.sg.join.type_in(entity_type, resolver.graph) else {
                continue;
            };
            let rewrite = (type_in.is_interface_object && self.sg.is_interface(entity_type))
                .then(|| entity_type.clone());
            let coverage = self.coverage(resolver.graph, field.type_name(), &field.selection, None);
            for key in type_in.keys.iter().filter(|k| k.resolvable) {
                let local_key =
                    self.all_local(ctx.graph, entity_type, &key.fields, ctx.provides.as_ref());
                let existing = self
                    .find_entity_group(ctx, resolver.graph, entity_type, (&[], None))
                    .is_some();
                candidates.push((
                    (local_key, coverage, existing, usize::MAX - resolver.graph),
                    Target {
                        graph: resolver.graph,
                        key: key.fields.clone(),
                        requires: resolver.requires.clone(),
                        rewrite: rewrite.clone(),
                    },
                ));
            }
        }
        candidates.sort_by_key(|(score, _)| std::cmp::Reverse(*score));
        candidates.into_iter().map(|(_, target)| target).collect()
    }

    /// Whether `graph` resolves every field of a field set without hand-offs.
    fn all_local(
        &self,
        graph: GraphId,
        parent: &str,
        set: &apollo_compiler::executable::SelectionSet,
        provides: Option<&SelectionSet>,
    ) -> bool {
        set.selections.iter().all(|s| match s {
            apollo_compiler::executable::Selection::Field(f) => {
                self.local(graph, parent, &f.name, provides)
                    && self.all_local(graph, f.selection_set.ty.as_str(), &f.selection_set, None)
            }
            apollo_compiler::executable::Selection::InlineFragment(f) => self.all_local(
                graph,
                f.selection_set.ty.as_str(),
                &f.selection_set,
                provides,
            ),
            apollo_compiler::executable::Selection::FragmentSpread(_) => false,
        })
    }

    fn find_entity_group(
        &self,
        ctx: &Ctx,
        graph: GraphId,
        type_name: &Name,
        (suppliers, input): (&[usize], Option<&SelectionSet>),
    ) -> Option<usize> {
        self.groups.iter().enumerate().position(|(i, g)| {
            g.graph == graph
                && g.condition == ctx.condition
                && g.entity.as_ref().is_some_and(|e| {
                    e.path == ctx.path
                        && e.type_name == *type_name
                        && !input.is_some_and(|input| inputs_conflict(&e.input, input))
                })
                && i != ctx.group
                && !self.depends_on(ctx.group, i)
                && !suppliers.iter().any(|s| *s == i || self.depends_on(*s, i))
        })
    }

    /// The entity group of `graph` for `type_name` at `ctx.path`, reused when no cycle follows.
    fn entity_group(
        &mut self,
        ctx: &Ctx,
        graph: GraphId,
        type_name: &Name,
        constraints: (&[usize], Option<&SelectionSet>),
        rewrite: Option<Name>,
    ) -> usize {
        if let Some(found) = self.find_entity_group(ctx, graph, type_name, constraints) {
            return found;
        }
        self.groups.push(Group {
            graph,
            entity: Some(EntityGroup {
                path: ctx.path.clone(),
                type_name: type_name.clone(),
                types: vec![type_name.clone()],
                input: SelectionSet::default(),
                rewrite_typename: rewrite,
            }),
            selection: SelectionSet::default(),
            deps: BTreeSet::new(),
            condition: ctx.condition.clone(),
            stage: self.groups[ctx.group].stage,
        });
        self.groups.len() - 1
    }

    /// Whether group `a` depends, directly or not, on group `b`.
    pub fn depends_on(&self, a: usize, b: usize) -> bool {
        let mut stack = vec![a];
        let mut seen = BTreeSet::new();
        while let Some(g) = stack.pop() {
            for dep in &self.groups[g].deps {
                if *dep == b {
                    return true;
                }
                if seen.insert(*dep) {
                    stack.push(*dep);
                }
            }
        }
        false
    }

    /// The current subgraph sees the parent interface as an object, so it cannot tell the
    /// concrete type: fetch `item` from a subgraph where the interface is a real interface
    /// with a key. Returns false when there is none.
    fn real_type_handoff(
        &mut self,
        ctx: &Ctx,
        item: Selection,
        out: &mut SelectionSet,
    ) -> Result<bool, PlanError> {
        let interface = ctx.parent.clone();
        let implementations = self.sg.possible_types(&interface);
        let found = self.sg.join.type_graphs(&interface).iter().find_map(|t| {
            let key = t.keys.iter().find(|k| k.resolvable)?;
            // Only a subgraph that has implementations can tell the concrete type.
            let knows_types = implementations
                .iter()
                .any(|object| self.sg.join.implements_in(object, &interface, t.graph));
            (!t.is_interface_object && t.graph != ctx.graph && knows_types)
                .then(|| (t.graph, key.fields.clone()))
        });
        let Some((graph, key)) = found else {
            return Ok(false);
        };
        let mark = self.touched.len();
        let key_fields = self.field_set(&key);
        let key_fields = self.avoid_client_keys(key_fields);
        let mut supplied = self.select(
            &Ctx {
                hops: ctx.hops + 1,
                ..ctx.clone()
            },
            &key_fields,
        )?;
        prepend_typename(&mut supplied);
        merge_into(out, supplied);
        let mut input = key_fields;
        prepend_typename(&mut input);
        let suppliers: Vec<usize> = self.touched[mark..].to_vec();
        let target = self.entity_group(ctx, graph, &interface, (&suppliers, None), None);
        {
            let group = &mut self.groups[target];
            group.deps.insert(ctx.group);
            group
                .deps
                .extend(suppliers.iter().copied().filter(|g| *g != target));
            if let Some(entity) = &mut group.entity {
                merge_into(&mut entity.input, input);
            }
        }
        let target_ctx = Ctx {
            group: target,
            graph,
            parent: interface,
            path: ctx.path.clone(),
            provides: None,
            condition: ctx.condition.clone(),
            hops: ctx.hops + 1,
            shared_members: None,
            frames: Vec::new(),
        };
        let mut selected = self.select(&target_ctx, &SelectionSet { items: vec![item] })?;
        prepend_typename(&mut selected);
        merge_into(&mut self.groups[target].selection, selected);
        self.touched.push(target);
        Ok(true)
    }
}

/// A chosen hand-off target.
struct Target {
    graph: GraphId,
    key: apollo_compiler::executable::SelectionSet,
    requires: Option<apollo_compiler::executable::SelectionSet>,
    rewrite: Option<Name>,
}

/// The path below `field` at `path`: its response key, then `@` per list level.
fn child_path(path: &[PathElem], field: &Field) -> Vec<PathElem> {
    let mut child = path.to_vec();
    child.push(PathElem::Key(field.key.clone()));
    let mut ty = &field.ty;
    while let ast::Type::List(inner) | ast::Type::NonNullList(inner) = ty {
        child.push(PathElem::List);
        ty = inner;
    }
    child
}

/// Puts `__typename` first in `set` when it is not there.
fn prepend_typename(set: &mut SelectionSet) {
    let has = set.items.iter().any(|item| {
        matches!(item, Selection::Field(f) if f.name == "__typename" && f.alias.is_none() && f.condition.is_always())
    });
    if !has {
        let typename = Field::plain(
            Name::new_unchecked("__typename"),
            ast::Type::NonNullNamed(Name::new_unchecked("String")),
        );
        set.items.insert(0, Selection::Field(typename));
    }
}

/// Adds `sub` to `out`, wrapped in a conditional fragment on `parent` when `condition` is set.
fn push_conditional(
    out: &mut SelectionSet,
    parent: &Name,
    condition: &Condition,
    sub: SelectionSet,
) {
    if condition.is_always() {
        merge_into(out, sub);
    } else {
        push_typed_fragment(out, parent, condition, sub);
    }
}

fn push_typed_fragment(
    out: &mut SelectionSet,
    on: &Name,
    condition: &Condition,
    sub: SelectionSet,
) {
    if sub.items.is_empty() {
        return;
    }
    merge_into(
        out,
        SelectionSet {
            items: vec![Selection::Fragment(Fragment {
                on: on.clone(),
                condition: condition.clone(),
                selection: sub,
            })],
        },
    );
}

/// Whether `provides` (at a level whose type is `parent`) includes `field`.
fn provided(provides: Option<&SelectionSet>, parent: &str, field: &str) -> bool {
    provided_sub(provides, parent, field).is_some()
}

/// What `provides` supplies below `field`, if it supplies `field` at all.
fn provided_sub(
    provides: Option<&SelectionSet>,
    parent: &str,
    field: &str,
) -> Option<SelectionSet> {
    let provides = provides?;
    let mut found: Option<SelectionSet> = None;
    for item in &provides.items {
        match item {
            Selection::Field(f) if f.name == field => match &mut found {
                Some(existing) => merge_into(existing, f.selection.clone()),
                None => found = Some(f.selection.clone()),
            },
            Selection::Fragment(fragment) if fragment.on == parent => {
                if let Some(sub) = provided_sub(Some(&fragment.selection), parent, field) {
                    match &mut found {
                        Some(existing) => merge_into(existing, sub),
                        None => found = Some(sub),
                    }
                }
            }
            _ => {}
        }
    }
    found
}

/// The part of `provides` that applies to objects of type `on`.
fn narrow_provides(provides: Option<&SelectionSet>, on: &Name) -> Option<SelectionSet> {
    let provides = provides?;
    let mut out = SelectionSet::default();
    for item in &provides.items {
        match item {
            Selection::Field(f) => push_field(&mut out, f.clone()),
            Selection::Fragment(fragment) if fragment.on == *on => {
                merge_into(&mut out, fragment.selection.clone());
            }
            Selection::Fragment(_) => {}
        }
    }
    Some(out)
}

/// The named type inside a type reference written as text (`[Book!]!` → `Book`).
fn named_type_of(text: &str) -> Name {
    Name::new_unchecked(text.trim_matches(|c| c == '[' || c == ']' || c == '!' || c == ' '))
}

/// Gives every field with arguments in `set` (recursively) a response key of its own, derived
/// from its name and arguments.
fn alias_arguments(mut set: SelectionSet) -> SelectionSet {
    for item in &mut set.items {
        match item {
            Selection::Field(field) => {
                if !field.args.is_empty() && field.alias.is_none() {
                    let alias = Name::new_unchecked(&format!(
                        "_tessera_{}_{:08x}",
                        field.name,
                        fnv1a(field.args.as_bytes())
                    ));
                    field.key = alias.clone();
                    field.alias = Some(alias);
                }
                field.selection = alias_arguments(std::mem::take(&mut field.selection));
            }
            Selection::Fragment(fragment) => {
                fragment.selection = alias_arguments(std::mem::take(&mut fragment.selection));
            }
        }
    }
    set
}

/// A small stable hash (FNV-1a, 32 bits) for internal aliases.
fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |hash, byte| {
        (hash ^ u32::from(*byte)).wrapping_mul(0x0100_0193)
    })
}

/// Whether two representation shapes ask for one field name with different arguments: such
/// inputs cannot share one representation.
fn inputs_conflict(a: &SelectionSet, b: &SelectionSet) -> bool {
    let fields = |set: &SelectionSet| -> Vec<Field> {
        set.items
            .iter()
            .filter_map(|item| match item {
                Selection::Field(field) => Some(field.clone()),
                Selection::Fragment(_) => None,
            })
            .collect()
    };
    let (a, b) = (fields(a), fields(b));
    a.iter().any(|x| {
        b.iter().any(|y| {
            x.name == y.name && (x.args != y.args || inputs_conflict(&x.selection, &y.selection))
        })
    })
}

/// Every field's (response key, name, arguments) at one level, fragments included.
fn client_keys(set: &SelectionSet, out: &mut Vec<(Name, Name, String)>) {
    for item in &set.items {
        match item {
            Selection::Field(field) => {
                out.push((field.key.clone(), field.name.clone(), field.args.clone()))
            }
            Selection::Fragment(fragment) => client_keys(&fragment.selection, out),
        }
    }
}
