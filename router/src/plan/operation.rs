//! The client's operation, normalized for planning and for shaping responses: named fragments
//! inlined, literal `@skip`/`@include` evaluated, variable ones kept as [`Condition`]s, and
//! fields with the same response key merged.

use apollo_compiler::Name;
use apollo_compiler::ast::{self, Value};
use apollo_compiler::executable::{self, ExecutableDocument};

use super::keys::KeyId;

/// `@skip`/`@include` on variables: every `(variable, expected)` must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Condition(pub Vec<(Name, bool)>);

impl Condition {
    /// Whether there is no condition.
    pub fn is_always(&self) -> bool {
        self.0.is_empty()
    }

    /// Both conditions.
    pub fn and(&self, other: &Condition) -> Condition {
        let mut all = self.0.clone();
        for item in &other.0 {
            if !all.contains(item) {
                all.push(item.clone());
            }
        }
        all.sort();
        Condition(all)
    }

    /// Evaluates the condition with `variables` (a missing variable counts as false).
    pub fn holds(&self, variables: &serde_json::Map<String, serde_json::Value>) -> bool {
        self.0.iter().all(|(name, expected)| {
            variables
                .get(name.as_str())
                .and_then(serde_json::Value::as_bool)
                .unwrap_or(false)
                == *expected
        })
    }
}

/// A selection set, in the order the client wrote it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SelectionSet {
    /// The selections.
    pub items: Vec<Selection>,
}

/// A field or an inline fragment.
#[derive(Debug, Clone, PartialEq)]
pub enum Selection {
    /// A field.
    Field(Field),
    /// An inline fragment (named fragments are inlined as these).
    Fragment(Fragment),
}

/// A field selection.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// The response key: the alias, or else the name.
    pub key: Name,
    /// The response key's number in the plan (see [`super::keys`]); set when planning ends.
    pub key_id: KeyId,
    /// The field's name.
    pub name: Name,
    /// The alias, if any.
    pub alias: Option<Name>,
    /// The arguments as GraphQL text, `(a: 1, b: $v)`, or empty.
    pub args: String,
    /// Variables used by the arguments.
    pub vars: Vec<Name>,
    /// When the field is included.
    pub condition: Condition,
    /// The field's type (as the schema declares it).
    pub ty: ast::Type,
    /// What kind of type the field's named type is (for shaping responses).
    pub kind: TypeKind,
    /// Sub-selections; empty for leaves.
    pub selection: SelectionSet,
}

/// The kind of a field's named type in the API schema, noted on the client's operation so that
/// shaping a response needs no schema look-up per value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TypeKind {
    /// Not noted (fields the planner makes, or an operation not annotated): look it up.
    #[default]
    Unknown,
    /// A scalar.
    Scalar,
    /// An enum.
    Enum,
    /// An object type.
    Object,
    /// An interface or a union.
    Abstract,
}

impl Field {
    /// A plain field without arguments, alias or condition.
    pub fn plain(name: Name, ty: ast::Type) -> Self {
        Self {
            key: name.clone(),
            key_id: KeyId::NONE,
            name,
            alias: None,
            args: String::new(),
            vars: Vec::new(),
            condition: Condition::default(),
            ty,
            kind: TypeKind::Unknown,
            selection: SelectionSet::default(),
        }
    }

    /// The field's named (innermost) type.
    pub fn type_name(&self) -> &Name {
        self.ty.inner_named_type()
    }
}

/// An inline fragment.
#[derive(Debug, Clone, PartialEq)]
pub struct Fragment {
    /// The type condition (the parent type when the client wrote none).
    pub on: Name,
    /// When the fragment applies.
    pub condition: Condition,
    /// Its selections.
    pub selection: SelectionSet,
}

/// What kind of operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperationKind {
    /// `query`.
    Query,
    /// `mutation`.
    Mutation,
    /// `subscription`.
    Subscription,
}

impl OperationKind {
    /// The GraphQL keyword.
    pub fn keyword(self) -> &'static str {
        match self {
            Self::Query => "query",
            Self::Mutation => "mutation",
            Self::Subscription => "subscription",
        }
    }
}

/// A variable definition, kept as text for subgraph operations.
#[derive(Debug, Clone, PartialEq)]
pub struct VariableDef {
    /// Name, without `$`.
    pub name: Name,
    /// `$name: Type = default` as GraphQL text.
    pub text: String,
}

/// A normalized operation.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    /// Query, mutation or subscription.
    pub kind: OperationKind,
    /// The root type's name.
    pub root_type: Name,
    /// The operation's variables.
    pub variables: Vec<VariableDef>,
    /// The root selection set.
    pub selection: SelectionSet,
}

impl Operation {
    /// Normalizes `operation` of `document`.
    pub fn from_executable(
        document: &ExecutableDocument,
        operation: &executable::Operation,
    ) -> Self {
        let kind = match operation.operation_type {
            ast::OperationType::Query => OperationKind::Query,
            ast::OperationType::Mutation => OperationKind::Mutation,
            ast::OperationType::Subscription => OperationKind::Subscription,
        };
        let variables = operation
            .variables
            .iter()
            .map(|v| VariableDef {
                name: v.name.clone(),
                text: v.to_string(),
            })
            .collect();
        Self {
            kind,
            root_type: operation.selection_set.ty.clone(),
            variables,
            selection: normalize(document, &operation.selection_set, &Condition::default(), 0),
        }
    }
}

impl Operation {
    /// Notes the kind of every field's type, from the API schema.
    pub fn annotate(&mut self, api: &apollo_compiler::Schema) {
        annotate(&mut self.selection, api);
    }
}

impl TypeKind {
    /// The kind of type `name` in `schema` (`Unknown` for input types and unknown names).
    pub fn of(schema: &apollo_compiler::Schema, name: &str) -> Self {
        use apollo_compiler::schema::ExtendedType;
        match schema.types.get(name) {
            Some(ExtendedType::Scalar(_)) => TypeKind::Scalar,
            Some(ExtendedType::Enum(_)) => TypeKind::Enum,
            Some(ExtendedType::Object(_)) => TypeKind::Object,
            Some(ExtendedType::Interface(_) | ExtendedType::Union(_)) => TypeKind::Abstract,
            Some(ExtendedType::InputObject(_)) | None => TypeKind::Unknown,
        }
    }
}

fn annotate(set: &mut SelectionSet, api: &apollo_compiler::Schema) {
    for item in &mut set.items {
        match item {
            Selection::Field(field) => {
                field.kind = TypeKind::of(api, field.ty.inner_named_type());
                annotate(&mut field.selection, api);
            }
            Selection::Fragment(fragment) => annotate(&mut fragment.selection, api),
        }
    }
}

/// How deep fragments may nest while inlining (validation already rejects cycles).
const MAX_INLINE_DEPTH: usize = 256;

/// Converts an executable selection set (from an operation or a field set).
pub fn normalize(
    document: &ExecutableDocument,
    set: &executable::SelectionSet,
    _inherited: &Condition,
    depth: usize,
) -> SelectionSet {
    let mut out = SelectionSet::default();
    if depth > MAX_INLINE_DEPTH {
        return out;
    }
    for selection in &set.selections {
        match selection {
            executable::Selection::Field(field) => {
                let Some(condition) = condition_of(&field.directives) else {
                    continue;
                };
                let mut vars = Vec::new();
                for arg in &field.arguments {
                    collect_vars(&arg.value, &mut vars);
                }
                let args = if field.arguments.is_empty() {
                    String::new()
                } else {
                    let parts: Vec<String> = field
                        .arguments
                        .iter()
                        .map(|a| format!("{}: {}", a.name, a.value))
                        .collect();
                    format!("({})", parts.join(", "))
                };
                let normalized = Field {
                    key: field.response_key().clone(),
                    key_id: KeyId::NONE,
                    name: field.name.clone(),
                    alias: field.alias.clone(),
                    args,
                    vars,
                    condition,
                    ty: field.definition.ty.clone(),
                    kind: TypeKind::Unknown,
                    selection: normalize(
                        document,
                        &field.selection_set,
                        &Condition::default(),
                        depth + 1,
                    ),
                };
                push_in_order(&mut out, Selection::Field(normalized));
            }
            executable::Selection::InlineFragment(fragment) => {
                let Some(condition) = condition_of(&fragment.directives) else {
                    continue;
                };
                let on = fragment
                    .type_condition
                    .clone()
                    .unwrap_or_else(|| set.ty.clone());
                let selection = normalize(
                    document,
                    &fragment.selection_set,
                    &Condition::default(),
                    depth + 1,
                );
                push_fragment(&mut out, &set.ty, on, condition, selection);
            }
            executable::Selection::FragmentSpread(spread) => {
                let Some(condition) = condition_of(&spread.directives) else {
                    continue;
                };
                let Some(def) = document.fragments.get(&spread.fragment_name) else {
                    continue;
                };
                let selection = normalize(
                    document,
                    &def.selection_set,
                    &Condition::default(),
                    depth + 1,
                );
                push_fragment(
                    &mut out,
                    &set.ty,
                    def.type_condition().clone(),
                    condition,
                    selection,
                );
            }
        }
    }
    out
}

/// Adds a field, merging it into an earlier one with the same key and condition.
pub fn push_field(out: &mut SelectionSet, field: Field) {
    for item in &mut out.items {
        if let Selection::Field(existing) = item
            && existing.key == field.key
            && existing.condition == field.condition
            && existing.name == field.name
            && existing.args == field.args
        {
            merge_into(&mut existing.selection, field.selection);
            return;
        }
    }
    out.items.push(Selection::Field(field));
}

/// Adds an inline fragment of the client's operation; one on the parent type without a
/// condition is flattened.
fn push_fragment(
    out: &mut SelectionSet,
    parent: &Name,
    on: Name,
    condition: Condition,
    selection: SelectionSet,
) {
    if &on == parent && condition.is_always() {
        for item in selection.items {
            push_in_order(out, item);
        }
        return;
    }
    push_in_order(
        out,
        Selection::Fragment(Fragment {
            on,
            condition,
            selection,
        }),
    );
}

/// Adds a selection of the client's operation, merging it into an earlier one only where that
/// keeps the order in which a response's keys appear (GraphQL's field collection: in
/// document order, the sub-selections of one response key merged in the order they appear).
/// So a field merges into the same field only when nothing that could also produce its key
/// (a fragment, or the key under another condition) stands between them, and a fragment only
/// into the same fragment right before it.
pub fn push_in_order(out: &mut SelectionSet, item: Selection) {
    match item {
        Selection::Field(field) => {
            let last_same_key = out.items.iter().rposition(|i| match i {
                Selection::Field(f) => f.key == field.key,
                Selection::Fragment(_) => true,
            });
            if let Some(at) = last_same_key
                && let Selection::Field(existing) = &mut out.items[at]
                && existing.condition == field.condition
                && existing.name == field.name
                && existing.args == field.args
            {
                for inner in field.selection.items {
                    push_in_order(&mut existing.selection, inner);
                }
                return;
            }
            out.items.push(Selection::Field(field));
        }
        Selection::Fragment(fragment) => {
            if let Some(Selection::Fragment(existing)) = out.items.last_mut()
                && existing.on == fragment.on
                && existing.condition == fragment.condition
            {
                for inner in fragment.selection.items {
                    push_in_order(&mut existing.selection, inner);
                }
                return;
            }
            out.items.push(Selection::Fragment(fragment));
        }
    }
}

/// Merges `other`'s selections into `target`.
pub fn merge_into(target: &mut SelectionSet, other: SelectionSet) {
    for item in other.items {
        match item {
            Selection::Field(field) => push_field(target, field),
            Selection::Fragment(fragment) => {
                let mut merged = false;
                for existing in &mut target.items {
                    if let Selection::Fragment(e) = existing
                        && e.on == fragment.on
                        && e.condition == fragment.condition
                    {
                        merge_into(&mut e.selection, fragment.selection.clone());
                        merged = true;
                        break;
                    }
                }
                if !merged {
                    target.items.push(Selection::Fragment(fragment));
                }
            }
        }
    }
}

/// The condition of `@skip`/`@include`, or `None` when a literal excludes the selection.
fn condition_of(directives: &executable::DirectiveList) -> Option<Condition> {
    let mut condition = Vec::new();
    for directive in directives.iter() {
        let expected = match directive.name.as_str() {
            "include" => true,
            "skip" => false,
            _ => continue,
        };
        match directive.specified_argument_by_name("if").map(|v| &**v) {
            Some(Value::Boolean(value)) if *value != expected => return None,
            Some(Value::Variable(name)) => condition.push((name.clone(), expected)),
            _ => {}
        }
    }
    condition.sort();
    Some(Condition(condition))
}

fn collect_vars(value: &Value, out: &mut Vec<Name>) {
    match value {
        Value::Variable(name) if !out.contains(name) => out.push(name.clone()),
        Value::List(items) => items.iter().for_each(|v| collect_vars(v, out)),
        Value::Object(fields) => fields.iter().for_each(|(_, v)| collect_vars(v, out)),
        _ => {}
    }
}
