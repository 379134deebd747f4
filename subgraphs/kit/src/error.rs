//! The one error type of subgraph resolvers, mapped to GraphQL errors with `extensions.code`.

use std::sync::Arc;

use async_graphql::ErrorExtensions;
use sea_orm::DbErr;

/// An error a resolver returns.
///
/// It deliberately does not implement `Display`: async-graphql turns every `Display` type into a
/// GraphQL error carrying that text, which would leak database details. The one conversion below
/// decides what a client sees; internal causes are logged instead.
#[derive(Debug)]
pub enum Error {
    /// The entity named by the input does not exist.
    NotFound {
        /// What kind of thing was looked up, e.g. `"product"`.
        what: &'static str,
        /// The identifier that was not found.
        id: String,
    },
    /// The input breaks a rule (a non-positive quantity, an empty text, …).
    InvalidInput(String),
    /// The input conflicts with what exists (a name already taken): a code of its own, so a
    /// client can tell which rule it ran into.
    Conflict {
        /// The `extensions.code`, e.g. `USERNAME_TAKEN`.
        code: &'static str,
        /// What the client reads.
        message: String,
    },
    /// A database statement failed.
    Database(Arc<DbErr>),
    /// Anything else that went wrong on the server's side.
    Internal(String),
}

impl Error {
    /// A `BAD_USER_INPUT` error with this message.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::InvalidInput(message.into())
    }

    /// A conflict with existing data, with its own `code`.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::Conflict {
            code,
            message: message.into(),
        }
    }

    /// A `NOT_FOUND` error for `what` with identifier `id`.
    pub fn not_found(what: &'static str, id: impl ToString) -> Self {
        Self::NotFound {
            what,
            id: id.to_string(),
        }
    }

    /// The `extensions.code` this error carries.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound { .. } => "NOT_FOUND",
            Self::InvalidInput(_) => "BAD_USER_INPUT",
            Self::Conflict { code, .. } => code,
            Self::Database(_) | Self::Internal(_) => "INTERNAL_SERVER_ERROR",
        }
    }
}

impl From<DbErr> for Error {
    fn from(err: DbErr) -> Self {
        Self::Database(Arc::new(err))
    }
}

impl From<Arc<DbErr>> for Error {
    fn from(err: Arc<DbErr>) -> Self {
        Self::Database(err)
    }
}

impl From<serde_json::Error> for Error {
    fn from(err: serde_json::Error) -> Self {
        Self::Internal(err.to_string())
    }
}

impl From<Error> for async_graphql::Error {
    fn from(err: Error) -> Self {
        let code = err.code();
        let message = match err {
            Error::NotFound { what, id } => format!("{what} {id:?} not found"),
            Error::InvalidInput(message) | Error::Conflict { message, .. } => message,
            Error::Database(cause) => {
                tracing::error!(error = %cause, "database error");
                "internal server error".to_owned()
            }
            Error::Internal(cause) => {
                tracing::error!(error = %cause, "internal error");
                "internal server error".to_owned()
            }
        };
        async_graphql::Error::new(message).extend_with(|_, ext| ext.set("code", code))
    }
}

/// Whether a database error is a unique constraint refusing a duplicate (on SQLite and
/// PostgreSQL alike): the loser of a race that a look-up before the write cannot prevent.
pub fn is_unique_violation(err: &DbErr) -> bool {
    matches!(
        err.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    )
}

/// The result type of resolvers.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Gives every GraphQL error that leaves the server an `extensions.code`.
///
/// Parse failures become `GRAPHQL_PARSE_FAILED` and validation failures
/// `GRAPHQL_VALIDATION_FAILED`; any other error without a code becomes `INTERNAL_SERVER_ERROR`.
pub struct ErrorCodes;

impl async_graphql::extensions::ExtensionFactory for ErrorCodes {
    fn create(&self) -> Arc<dyn async_graphql::extensions::Extension> {
        Arc::new(ErrorCodesExtension)
    }
}

struct ErrorCodesExtension;

/// `err` with `extensions.code` set to `code`, unless it has a code already.
pub(crate) fn with_code(
    mut err: async_graphql::ServerError,
    code: &str,
) -> async_graphql::ServerError {
    let has_code = err
        .extensions
        .as_ref()
        .is_some_and(|ext| ext.get("code").is_some());
    if !has_code {
        err.extensions
            .get_or_insert_with(Default::default)
            .set("code", code);
    }
    err
}

fn with_codes(mut response: async_graphql::Response) -> async_graphql::Response {
    response.errors = std::mem::take(&mut response.errors)
        .into_iter()
        .map(|err| with_code(err, "INTERNAL_SERVER_ERROR"))
        .collect();
    response
}

#[async_graphql::async_trait::async_trait]
impl async_graphql::extensions::Extension for ErrorCodesExtension {
    async fn parse_query(
        &self,
        ctx: &async_graphql::extensions::ExtensionContext<'_>,
        query: &str,
        variables: &async_graphql::Variables,
        next: async_graphql::extensions::NextParseQuery<'_>,
    ) -> async_graphql::ServerResult<async_graphql::parser::types::ExecutableDocument> {
        next.run(ctx, query, variables)
            .await
            .map_err(|err| with_code(err, "GRAPHQL_PARSE_FAILED"))
    }

    async fn validation(
        &self,
        ctx: &async_graphql::extensions::ExtensionContext<'_>,
        next: async_graphql::extensions::NextValidation<'_>,
    ) -> Result<async_graphql::ValidationResult, Vec<async_graphql::ServerError>> {
        next.run(ctx).await.map_err(|errors| {
            errors
                .into_iter()
                .map(|err| with_code(err, "GRAPHQL_VALIDATION_FAILED"))
                .collect()
        })
    }

    fn subscribe<'s>(
        &self,
        ctx: &async_graphql::extensions::ExtensionContext<'_>,
        stream: futures_util::stream::BoxStream<'s, async_graphql::Response>,
        next: async_graphql::extensions::NextSubscribe<'_>,
    ) -> futures_util::stream::BoxStream<'s, async_graphql::Response> {
        use futures_util::StreamExt;
        next.run(ctx, stream).map(with_codes).boxed()
    }

    async fn execute(
        &self,
        ctx: &async_graphql::extensions::ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: async_graphql::extensions::NextExecute<'_>,
    ) -> async_graphql::Response {
        with_codes(next.run(ctx, operation_name).await)
    }
}
