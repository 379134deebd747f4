//! Assigns the operation's fields to fetch groups.
//!
//! A group is "what subgraph S fetches at response path P, starting from objects of type T".
//! Walking the client's selection with a [`Ctx`] (the group, its subgraph, the parent type and
//! path, what `@provides` supplies there), each field either stays in the current group (the
//! subgraph can resolve it here) or hands off to an entity group in another subgraph: the
//! current group then also selects `__typename` and a key that subgraph accepts, plus any
//! `@requires` fields, and the new group depends on every group that supplies them.

use std::collections::{BTreeSet, HashMap};

use apollo_compiler::Name;
use apollo_compiler::executable::ExecutableDocument;

use super::PlanError;
use super::nodes::PathElem;
use super::operation::{
    Condition, Field, Fragment, Selection, SelectionSet, merge_into, normalize, push_field,
};
use crate::supergraph::{GraphId, Supergraph};

mod handoff;
mod selections;

use selections::{
    child_path, named_type_of, narrow_provides, prepend_typename, provided, provided_sub,
    push_conditional, push_typed_fragment,
};

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
    /// Every field the client selects at each response path (fragments flattened), to keep the
    /// planner's own fields from taking the client's response keys, whichever fetch adds them.
    client_at: HashMap<Vec<PathElem>, SelectionSet>,
    /// Selections a deeper level adds to an ancestor level: (group, path, selection).
    pending: Vec<(usize, Vec<PathElem>, SelectionSet)>,
    /// The hand-offs being planned, outermost first: (path, parent type, field). Handing off
    /// one of them again below itself (a key that needs the very field it should fetch) is a
    /// cycle, refused at once instead of chained until the hop limit.
    handing_off: Vec<(Vec<PathElem>, Name, Name)>,
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
            handing_off: Vec::new(),
            client_at: HashMap::new(),
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
        for item in single_field_pieces(&field.selection) {
            let part = Field {
                selection: SelectionSet { items: vec![item] },
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
                // A mutation field runs after everything planned before it.
                let deps = if sequential {
                    (0..self.groups.len()).collect()
                } else {
                    BTreeSet::new()
                };
                self.groups.push(Group {
                    graph,
                    entity: None,
                    selection: SelectionSet::default(),
                    deps,
                    condition: Condition::default(),
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

    /// The named type of `parent.field` as the supergraph declares it on `parent`.
    pub(super) fn declared_type(&self, parent: &str, field: &str) -> Option<Name> {
        use apollo_compiler::schema::ExtendedType;
        let ty = match self.sg.type_def(parent)? {
            ExtendedType::Object(o) => &o.fields.get(field)?.ty,
            ExtendedType::Interface(i) => &i.fields.get(field)?.ty,
            _ => return None,
        };
        Some(ty.inner_named_type().clone())
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

    /// Notes what the client selects at every response path of `operation`, so that fields
    /// the planner adds anywhere can keep clear of the client's response keys there.
    pub fn index_client_selections(&mut self, operation: &super::Operation) {
        let mut stack: Vec<(Vec<PathElem>, &SelectionSet)> =
            vec![(Vec::new(), &operation.selection)];
        while let Some((path, set)) = stack.pop() {
            let mut fields = Vec::new();
            all_fields(set, &mut fields);
            for field in fields {
                self.client_at
                    .entry(path.clone())
                    .or_default()
                    .items
                    .push(Selection::Field(field.clone()));
                if !field.selection.items.is_empty() {
                    stack.push((child_path(&path, field), &field.selection));
                }
            }
        }
    }

    /// Plans `set` at `ctx`; returns what `ctx.group` selects at this level.
    fn select(&mut self, ctx: &Ctx, set: &SelectionSet) -> Result<SelectionSet, PlanError> {
        self.select_level(ctx, set)
    }

    /// Gives fields the planner adds (keys, requirements) at `ctx`'s path a response key of
    /// their own wherever the client uses theirs for something else, there and inside them.
    fn avoid_client_keys(&self, ctx: &Ctx, set: SelectionSet) -> SelectionSet {
        avoid_keys(set, self.client_at.get(&ctx.path))
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
        // A leaf has no selection; a composite field whose every sub-selection a literal
        // `@skip`/`@include` removed still needs one (`__typename`, added below), or the
        // subgraph refuses the operation.
        if field.selection.items.is_empty() && !self.sg.is_composite(field.type_name()) {
            return Ok(selected);
        }
        // The subgraph may declare a narrower type (`@join__field(type:)`), e.g. an object
        // where the supergraph has a union: plan against what it returns.
        // Otherwise the type the parent object declares, which may be narrower than the
        // interface the client selected the field through (`Book.similar: [Book]` where the
        // client asked `... on Similar { similar }`).
        let child_type = self
            .sg
            .join
            .field_in(&ctx.parent, &field.name, ctx.graph)
            .and_then(|f| f.type_in_graph)
            .map(|t| named_type_of(&t))
            .filter(|t| self.sg.is_composite(t))
            .or_else(|| self.declared_type(&ctx.parent, &field.name))
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
        // Everything below may have been handed off, or skipped by a variable; an object field
        // still needs a selection that stays when the variables skip all the rest (some
        // subgraph servers answer an object whose every field was skipped with `null`).
        let always_selects = sub.items.iter().any(|item| match item {
            Selection::Field(f) => f.condition.is_always(),
            Selection::Fragment(f) => f.condition.is_always(),
        });
        if self.sg.is_abstract(field.type_name()) || !always_selects {
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
}

/// `set` (fields the planner adds) with a key of its own for every field whose response key
/// `client` uses for another field or arguments; a field that shares its key with the
/// client's same field merges with it, so its sub-selection is checked against theirs.
fn avoid_keys(mut set: SelectionSet, client: Option<&SelectionSet>) -> SelectionSet {
    for item in &mut set.items {
        match item {
            Selection::Field(field) => {
                let mut same_key = Vec::new();
                if let Some(client) = client {
                    fields_with_key(client, &field.key, &mut same_key);
                }
                if same_key
                    .iter()
                    .any(|c| c.name != field.name || c.args != field.args)
                {
                    let alias = Name::new_unchecked(&format!("_tessera_key_{}", field.name));
                    field.key = alias.clone();
                    field.alias = Some(alias);
                } else if !field.selection.items.is_empty() && !same_key.is_empty() {
                    let mut below = SelectionSet::default();
                    for client_field in same_key {
                        below
                            .items
                            .extend(client_field.selection.items.iter().cloned());
                    }
                    field.selection =
                        avoid_keys(std::mem::take(&mut field.selection), Some(&below));
                }
            }
            Selection::Fragment(fragment) => {
                fragment.selection = avoid_keys(std::mem::take(&mut fragment.selection), client);
            }
        }
    }
    set
}

/// Every field of `set`, fragments included.
fn all_fields<'a>(set: &'a SelectionSet, out: &mut Vec<&'a Field>) {
    for item in &set.items {
        match item {
            Selection::Field(field) => out.push(field),
            Selection::Fragment(fragment) => all_fields(&fragment.selection, out),
        }
    }
}

/// Every field of `set` (fragments included) with response key `key`.
fn fields_with_key<'a>(set: &'a SelectionSet, key: &Name, out: &mut Vec<&'a Field>) {
    for item in &set.items {
        match item {
            Selection::Field(field) if field.key == *key => out.push(field),
            Selection::Field(_) => {}
            Selection::Fragment(fragment) => fields_with_key(&fragment.selection, key, out),
        }
    }
}

/// `set` cut into pieces of one field each: a fragment becomes one copy of itself per field
/// inside it (keeping its type condition and `@skip`/`@include`), so each piece can go to a
/// subgraph that resolves it.
fn single_field_pieces(set: &SelectionSet) -> Vec<Selection> {
    let mut out = Vec::new();
    for item in &set.items {
        match item {
            Selection::Field(_) => out.push(item.clone()),
            Selection::Fragment(fragment) => {
                for inner in single_field_pieces(&fragment.selection) {
                    out.push(Selection::Fragment(Fragment {
                        selection: SelectionSet { items: vec![inner] },
                        ..fragment.clone()
                    }));
                }
            }
        }
    }
    out
}
