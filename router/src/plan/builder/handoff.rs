//! Hand-offs: when the current subgraph cannot resolve a field, an entity fetch of another
//! subgraph (or of its own, for `@requires`) takes it, through a key the current one can
//! supply, after the fields it requires; or through the nearest ancestor entity; or, for an
//! interface object, through the subgraph that knows the concrete types.

use std::collections::BTreeSet;

use apollo_compiler::Name;

use super::selections::{alias_arguments, inputs_conflict, prepend_typename};
use super::{Builder, Ctx, EntityGroup, Group, MAX_HOPS};
use crate::plan::PlanError;
use crate::plan::operation::{
    Condition, Field, Fragment, Selection, SelectionSet, merge_into, push_field,
};
use crate::supergraph::GraphId;

/// What [`Builder::snapshot`] keeps.
struct Snapshot {
    groups: Vec<Group>,
    pending: Vec<(usize, Vec<crate::plan::nodes::PathElem>, SelectionSet)>,
    touched: Vec<usize>,
    out: SelectionSet,
}

/// A chosen hand-off target.
struct Target {
    graph: GraphId,
    key: apollo_compiler::executable::SelectionSet,
    requires: Option<apollo_compiler::executable::SelectionSet>,
    rewrite: Option<Name>,
}

impl Builder<'_> {
    /// Hands `field` off to another subgraph.
    pub(super) fn handoff(
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
        let this = (ctx.path.clone(), parent.clone(), field.name.clone());
        if self.handing_off.contains(&this) {
            return Err(PlanError::Unsatisfiable(format!(
                "{parent}.{} (its key needs the field itself)",
                field.name
            )));
        }
        self.handing_off.push(this);
        let planned = self.handoff_any_way(ctx, &parent, field, out);
        self.handing_off.pop();
        planned
    }

    fn handoff_any_way(
        &mut self,
        ctx: &Ctx,
        parent: &Name,
        field: &Field,
        out: &mut SelectionSet,
    ) -> Result<(), PlanError> {
        // Each way is tried in turn; one that fails leaves no trace, and the first failure is
        // reported when no way works. The nearest ancestor entity comes last: through it,
        // another subgraph resolves the whole path down to the field (when, say, the field's
        // own type has a key only a subgraph that cannot supply it accepts).
        let mut failure = None;
        let before = self.groups.len();
        let snapshot = self.snapshot(out);
        match self.direct_handoff(ctx, parent, field, out) {
            Ok(true) => {
                let added = self.groups.len() - before;
                if added > 0 && !ctx.frames.is_empty() {
                    self.prefer_ancestor_if_cheaper(ctx, field, out, snapshot, added)?;
                }
                return Ok(());
            }
            Ok(false) => {}
            Err(err) => failure = Some(err),
        }
        self.restore(snapshot, out);
        if self.ancestor_handoff(ctx, field)? {
            return Ok(());
        }
        Err(failure.unwrap_or_else(|| PlanError::Unsatisfiable(format!("{parent}.{}", field.name))))
    }

    /// A direct hand-off that added `added` fetches is replaced by one through an ancestor
    /// entity when that adds fewer (it joins a fetch of the ancestor's subgraph already
    /// planned, say, instead of a further entity fetch keyed on what that one returns).
    fn prefer_ancestor_if_cheaper(
        &mut self,
        ctx: &Ctx,
        field: &Field,
        out: &mut SelectionSet,
        before: Snapshot,
        added: usize,
    ) -> Result<(), PlanError> {
        let groups_before = before.groups.len();
        let direct = self.snapshot(out);
        self.restore(before, out);
        if self.ancestor_handoff(ctx, field)? && self.groups.len() - groups_before < added {
            return Ok(());
        }
        self.restore(direct, out);
        Ok(())
    }

    /// What the builder has planned so far, to undo a hand-off that failed half-way.
    fn snapshot(&self, out: &SelectionSet) -> Snapshot {
        Snapshot {
            groups: self.groups.clone(),
            pending: self.pending.clone(),
            touched: self.touched.clone(),
            out: out.clone(),
        }
    }

    fn restore(&mut self, snapshot: Snapshot, out: &mut SelectionSet) {
        self.groups = snapshot.groups;
        self.pending = snapshot.pending;
        self.touched = snapshot.touched;
        *out = snapshot.out;
    }

    /// Hands `field` off through the parent's own type: an entity fetch keyed on it, per
    /// concrete type for an abstract parent, or through an interface object's interface.
    fn direct_handoff(
        &mut self,
        ctx: &Ctx,
        parent: &Name,
        field: &Field,
        out: &mut SelectionSet,
    ) -> Result<bool, PlanError> {
        if self.entity_handoff(ctx, parent, field, out)? {
            return Ok(true);
        }
        if self.sg.is_abstract(parent) {
            // Resolve the field per concrete type.
            let mut members: Vec<Name> = self.sg.possible_types(parent).iter().cloned().collect();
            members.sort();
            let mut planned = false;
            for member in members {
                if !self.interface_object_here(ctx)
                    && !self.graph_knows_member(ctx.graph, parent, &member)
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
            return Ok(planned);
        }
        // A field an interface object adds to every implementation.
        for interface in self.sg.interfaces_of(parent) {
            if self.entity_handoff(ctx, &interface, field, out)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// When this level's type has no key another subgraph accepts, completes the nearest
    /// ancestor entity instead: the other subgraph resolves the whole chain of fields from that
    /// entity down to `field`.
    fn ancestor_handoff(&mut self, ctx: &Ctx, field: &Field) -> Result<bool, PlanError> {
        for depth in (0..ctx.frames.len()).rev() {
            // The field, inside each frame's field from the nearest up to `depth`; where a
            // level's type is narrower than the field above it returns (a fragment led there),
            // under a fragment on that type.
            let mut inner = Selection::Field(field.clone());
            let mut inner_parent = &ctx.parent;
            for frame in ctx.frames[depth..].iter().rev() {
                if inner_parent != frame.field.type_name() {
                    inner = Selection::Fragment(Fragment {
                        on: inner_parent.clone(),
                        condition: Condition::default(),
                        selection: SelectionSet { items: vec![inner] },
                    });
                }
                inner = Selection::Field(Field {
                    selection: SelectionSet { items: vec![inner] },
                    ..frame.field.clone()
                });
                inner_parent = &frame.ctx.parent;
            }
            let Selection::Field(chain) = inner else {
                continue;
            };
            let frame = &ctx.frames[depth];
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
        let key_fields = self.avoid_client_keys(ctx, key_fields);
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
            let requires = self.avoid_client_keys(ctx, requires);
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
    pub(super) fn real_type_handoff(
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
        let key_fields = self.avoid_client_keys(ctx, key_fields);
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
            parent: interface.clone(),
            path: ctx.path.clone(),
            provides: None,
            condition: ctx.condition.clone(),
            hops: ctx.hops + 1,
            shared_members: None,
            frames: Vec::new(),
        };
        // The subgraph answers with the concrete type. A fragment on one of them is then asked
        // of a subgraph that resolves that type as an entity, with a representation of that
        // type, once the type is known: the interface's own resolver need not return the
        // implementation's fields.
        let item = match item {
            Selection::Fragment(fragment) => {
                let rest = self.concrete_type_handoff(ctx, target, &fragment, out)?;
                Selection::Fragment(Fragment {
                    selection: rest,
                    ..fragment
                })
            }
            field => field,
        };
        let mut selected = self.select(&target_ctx, &SelectionSet { items: vec![item] })?;
        prepend_typename(&mut selected);
        merge_into(&mut self.groups[target].selection, selected);
        self.touched.push(target);
        Ok(true)
    }

    /// Plans the fields of `fragment` (on an object type implementing the interface at `ctx`)
    /// as entity fetches keyed on that object type, after group `typename_group` has told each
    /// object's concrete type. Returns what it could not plan so (everything when the type is
    /// no entity a subgraph other than `ctx`'s can be asked for), for the interface's fetch.
    fn concrete_type_handoff(
        &mut self,
        ctx: &Ctx,
        typename_group: usize,
        fragment: &Fragment,
        out: &mut SelectionSet,
    ) -> Result<SelectionSet, PlanError> {
        let on = &fragment.on;
        let resolvable = !self.sg.is_abstract(on)
            && self.sg.join.type_graphs(on).iter().any(|t| {
                t.graph != ctx.graph
                    && !t.is_interface_object
                    && t.keys.iter().any(|k| k.resolvable)
            });
        if !resolvable {
            return Ok(fragment.selection.clone());
        }
        let groups_before = self.groups.len();
        let mut rest = SelectionSet::default();
        // Keys come from the interface object the current subgraph returns (it does not know
        // the implementation); the fetch is keyed on the implementation.
        let concrete = Ctx {
            condition: ctx.condition.and(&fragment.condition),
            hops: ctx.hops + 1,
            ..ctx.clone()
        };
        for item in &fragment.selection.items {
            let Selection::Field(field) = item else {
                rest.items.push(item.clone());
                continue;
            };
            if field.name == "__typename" {
                rest.items.push(item.clone());
                continue;
            }
            // A field of the interface object itself stays where it is: the shaper shows it
            // only on objects of the fragment's type.
            if self.declared_type(&ctx.parent, &field.name).is_some()
                && self.local(ctx.graph, &ctx.parent, &field.name, ctx.provides.as_ref())
            {
                let single = SelectionSet {
                    items: vec![item.clone()],
                };
                let selected = self.select(&concrete, &single)?;
                merge_into(out, selected);
                continue;
            }
            let snapshot = self.snapshot(out);
            match self.entity_handoff(&concrete, on, field, out) {
                Ok(true) => {}
                Ok(false) | Err(_) => {
                    self.restore(snapshot, out);
                    rest.items.push(item.clone());
                }
            }
        }
        for group in groups_before..self.groups.len() {
            self.groups[group].deps.insert(typename_group);
        }
        Ok(rest)
    }
}
