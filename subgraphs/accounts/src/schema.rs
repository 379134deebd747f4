//! The accounts schema: `User`, its queries, `createUser` and `userCreated`.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::{DataLoader, Loader};
use async_graphql::{
    Context, ID, InputObject, Object, SimpleObject, Subscription as GqlSubscription,
};
use futures_util::{Stream, TryStreamExt};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
    TransactionTrait,
};
use tessera_events as events;
use tessera_kit::{AppState, Error, Result, Viewer, outbox};

use crate::entity;

/// A user of the shop.
#[derive(SimpleObject, Clone, Debug)]
pub struct User {
    /// The user's id.
    pub id: ID,
    /// Unique login name.
    pub username: String,
    /// Display name.
    pub name: String,
    /// E-mail address.
    pub email: String,
    /// When the account was created (RFC 3339).
    pub created_at: String,
}

impl From<events::UserCreated> for User {
    fn from(event: events::UserCreated) -> Self {
        Self {
            id: ID(event.id),
            username: event.username,
            name: event.name,
            email: event.email,
            created_at: event.created_at,
        }
    }
}

impl From<&User> for events::UserCreated {
    fn from(user: &User) -> Self {
        Self {
            id: user.id.to_string(),
            username: user.username.clone(),
            name: user.name.clone(),
            email: user.email.clone(),
            created_at: user.created_at.clone(),
        }
    }
}

impl From<entity::Model> for User {
    fn from(row: entity::Model) -> Self {
        Self {
            id: ID(row.id.to_string()),
            username: row.username,
            name: row.name,
            email: row.email,
            created_at: row.created_at.to_rfc3339(),
        }
    }
}

/// Loads users by id in one statement per batch.
pub struct UsersDb {
    app: AppState,
}

impl UsersDb {
    /// A loader over `app`'s database.
    pub fn new(app: &AppState) -> Self {
        Self { app: app.clone() }
    }
}

impl Loader<i64> for UsersDb {
    type Value = User;
    type Error = Arc<DbErr>;

    async fn load(&self, keys: &[i64]) -> std::result::Result<HashMap<i64, User>, Self::Error> {
        self.app.metrics.observe_batch("users_by_id", keys.len());
        let rows = entity::Entity::find()
            .filter(entity::Column::Id.is_in(keys.iter().copied()))
            .all(&self.app.db)
            .await?;
        Ok(rows.into_iter().map(|row| (row.id, row.into())).collect())
    }
}

async fn load_user(ctx: &Context<'_>, id: &str) -> Result<Option<User>> {
    let Ok(id) = id.parse::<i64>() else {
        return Ok(None);
    };
    Ok(ctx
        .data_unchecked::<DataLoader<UsersDb>>()
        .load_one(id)
        .await?)
}

/// The accounts `Query` root.
#[derive(Default)]
pub struct Query;

#[Object]
impl Query {
    /// The user the request acts for (from the `x-user-id` header), if any.
    async fn me(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        match ctx
            .data_opt::<Viewer>()
            .and_then(|viewer| viewer.0.as_deref())
        {
            Some(id) => load_user(ctx, id).await,
            None => Ok(None),
        }
    }

    /// One user by id.
    async fn user(&self, ctx: &Context<'_>, id: ID) -> Result<Option<User>> {
        load_user(ctx, &id).await
    }

    /// Users in id order: `first` of them after the user with id `after`.
    async fn users(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: i32,
        after: Option<ID>,
    ) -> Result<Vec<User>> {
        if !(0..=100).contains(&first) {
            return Err(Error::invalid("`first` must be between 0 and 100"));
        }
        let after = match after {
            Some(id) => id
                .parse::<i64>()
                .map_err(|_| Error::invalid("`after` must be a user id"))?,
            None => 0,
        };
        let rows = entity::Entity::find()
            .filter(entity::Column::Id.gt(after))
            .order_by_asc(entity::Column::Id)
            .limit(u64::try_from(first).unwrap_or(0))
            .all(&ctx.data_unchecked::<AppState>().db)
            .await?;
        Ok(rows.into_iter().map(User::from).collect())
    }

    /// Resolves `User` representations for the router (batched).
    #[graphql(entity)]
    async fn find_user_by_id(
        &self,
        ctx: &Context<'_>,
        #[graphql(key)] id: ID,
    ) -> Result<Option<User>> {
        load_user(ctx, &id).await
    }
}

/// What `createUser` takes.
#[derive(InputObject)]
pub struct CreateUserInput {
    /// Unique login name: letters, digits, `_` and `-`.
    pub username: String,
    /// Display name.
    pub name: String,
    /// E-mail address.
    pub email: String,
}

impl CreateUserInput {
    fn validate(&self) -> Result<()> {
        let username = self.username.trim();
        if username.is_empty() || username.len() > 64 {
            return Err(Error::invalid("username must be 1 to 64 characters"));
        }
        if !username
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(Error::invalid(
                "username may only hold letters, digits, `_` and `-`",
            ));
        }
        if self.name.trim().is_empty() {
            return Err(Error::invalid("name must not be empty"));
        }
        let email = self.email.trim();
        if !email.contains('@') || email.starts_with('@') || email.ends_with('@') {
            return Err(Error::invalid("email must be an e-mail address"));
        }
        Ok(())
    }
}

/// The accounts `Mutation` root.
#[derive(Default)]
pub struct Mutation;

#[Object]
impl Mutation {
    /// Creates a user; emits `userCreated`.
    async fn create_user(&self, ctx: &Context<'_>, input: CreateUserInput) -> Result<User> {
        input.validate()?;
        let app = ctx.data_unchecked::<AppState>();
        let (username, email) = (input.username.trim(), input.email.trim());
        let txn = app.db.begin().await?;
        // The unique indexes decide, not a look-up before the insert: two concurrent requests
        // for one name both pass any look-up, and the loser must still hear why.
        let inserted = entity::ActiveModel {
            username: Set(username.to_owned()),
            name: Set(input.name.trim().to_owned()),
            email: Set(email.to_owned()),
            created_at: Set(chrono::Utc::now()),
            ..Default::default()
        }
        .insert(&txn)
        .await;
        let row = match inserted {
            Ok(row) => row,
            Err(err) if tessera_kit::error::is_unique_violation(&err) => {
                drop(txn);
                return Err(taken(app, username).await);
            }
            Err(err) => return Err(err.into()),
        };
        let user = User::from(row);
        outbox::enqueue(&txn, &events::USER_CREATED, &(&user).into()).await?;
        txn.commit().await?;
        app.events_committed();
        Ok(user)
    }
}

/// Which unique field a refused new user collides with.
async fn taken(app: &AppState, username: &str) -> Error {
    let username_taken = entity::Entity::find()
        .filter(entity::Column::Username.eq(username))
        .one(&app.db)
        .await;
    match username_taken {
        Ok(Some(_)) => Error::conflict("USERNAME_TAKEN", format!("username {username:?} is taken")),
        Ok(None) => Error::conflict("EMAIL_TAKEN", "that e-mail address is already registered"),
        Err(err) => err.into(),
    }
}

/// The accounts `Subscription` root.
#[derive(Default)]
pub struct Subscription;

#[GqlSubscription]
impl Subscription {
    /// Every user created from now on.
    async fn user_created(
        &self,
        ctx: &Context<'_>,
    ) -> impl Stream<Item = async_graphql::Result<User>> {
        ctx.data_unchecked::<AppState>()
            .follow(ctx, &events::USER_CREATED)
            .map_ok(User::from)
    }
}
