//! The reviews schema: `Review`, the `reviews` fields it adds to `User` and `Product`,
//! `addReview` and `reviewAdded`.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::{DataLoader, Loader};
use async_graphql::{
    ComplexObject, Context, ID, InputObject, Object, SimpleObject, Subscription as GqlSubscription,
};
use futures_util::{Stream, TryStreamExt};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
    TransactionTrait,
};
use tessera_events as events;
use tessera_kit::{AppState, Error, Result, outbox};

use crate::entity;

/// A review of a product by a user.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(complex)]
pub struct Review {
    /// The review's id.
    pub id: ID,
    /// 1 to 5 stars.
    pub rating: i32,
    /// The review's text.
    pub body: String,
    /// When it was written (RFC 3339).
    pub created_at: String,
    /// The author's user id (`author` resolves it).
    #[graphql(skip)]
    pub author_id: i64,
    /// The product's upc (`product` resolves it).
    #[graphql(skip)]
    pub product_upc: String,
}

impl From<events::ReviewAdded> for Review {
    fn from(event: events::ReviewAdded) -> Self {
        Self {
            id: ID(event.id),
            rating: event.rating,
            body: event.body,
            created_at: event.created_at,
            author_id: event.author_id,
            product_upc: event.product_upc,
        }
    }
}

impl From<&Review> for events::ReviewAdded {
    fn from(review: &Review) -> Self {
        Self {
            id: review.id.to_string(),
            rating: review.rating,
            body: review.body.clone(),
            created_at: review.created_at.clone(),
            author_id: review.author_id,
            product_upc: review.product_upc.clone(),
        }
    }
}

#[ComplexObject]
impl Review {
    /// Who wrote it.
    async fn author(&self) -> User {
        User {
            id: ID(self.author_id.to_string()),
        }
    }

    /// What it is about.
    async fn product(&self) -> Product {
        Product {
            upc: self.product_upc.clone(),
        }
    }
}

impl From<entity::Model> for Review {
    fn from(row: entity::Model) -> Self {
        Self {
            id: ID(row.id.to_string()),
            rating: row.rating,
            body: row.body,
            created_at: row.created_at.to_rfc3339(),
            author_id: row.author_id,
            product_upc: row.product_upc,
        }
    }
}

/// A user (owned by accounts), with the reviews they wrote.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(complex)]
pub struct User {
    /// The user's id.
    pub id: ID,
}

#[ComplexObject]
impl User {
    /// The user's reviews, newest first.
    async fn reviews(&self, ctx: &Context<'_>) -> Result<Vec<Review>> {
        let Ok(id) = self.id.parse::<i64>() else {
            return Ok(Vec::new());
        };
        let loader = ctx.data_unchecked::<DataLoader<ReviewsDb>>();
        Ok(loader
            .load_one(ReviewsByAuthor(id))
            .await?
            .unwrap_or_default())
    }
}

/// A product (owned by products), with its reviews.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(complex)]
pub struct Product {
    /// The product's upc.
    pub upc: String,
}

#[ComplexObject]
impl Product {
    /// The product's reviews, newest first.
    async fn reviews(&self, ctx: &Context<'_>) -> Result<Vec<Review>> {
        let loader = ctx.data_unchecked::<DataLoader<ReviewsDb>>();
        Ok(loader
            .load_one(ReviewsByProduct(self.upc.clone()))
            .await?
            .unwrap_or_default())
    }

    /// The mean rating, or null when nobody reviewed it yet.
    async fn average_rating(&self, ctx: &Context<'_>) -> Result<Option<f64>> {
        let reviews = self.reviews(ctx).await?;
        if reviews.is_empty() {
            return Ok(None);
        }
        let sum: i64 = reviews.iter().map(|r| i64::from(r.rating)).sum();
        Ok(Some(sum as f64 / reviews.len() as f64))
    }
}

/// Key: reviews with this id.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ReviewId(pub i64);
/// Key: every review of the product with this upc.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ReviewsByProduct(pub String);
/// Key: every review by the user with this id.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ReviewsByAuthor(pub i64);

/// Loads reviews in one statement per batch, by id, by product or by author.
pub struct ReviewsDb {
    app: AppState,
}

impl ReviewsDb {
    /// A loader over `app`'s database.
    pub fn new(app: &AppState) -> Self {
        Self { app: app.clone() }
    }

    async fn rows(
        &self,
        filter: sea_orm::sea_query::SimpleExpr,
    ) -> std::result::Result<Vec<entity::Model>, Arc<DbErr>> {
        Ok(entity::Entity::find()
            .filter(filter)
            .order_by_desc(entity::Column::CreatedAt)
            .order_by_desc(entity::Column::Id)
            .all(&self.app.db)
            .await?)
    }
}

impl Loader<ReviewId> for ReviewsDb {
    type Value = Review;
    type Error = Arc<DbErr>;

    async fn load(
        &self,
        keys: &[ReviewId],
    ) -> std::result::Result<HashMap<ReviewId, Review>, Self::Error> {
        self.app.metrics.observe_batch("reviews_by_id", keys.len());
        let rows = self
            .rows(entity::Column::Id.is_in(keys.iter().map(|k| k.0)))
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| (ReviewId(row.id), row.into()))
            .collect())
    }
}

impl Loader<ReviewsByProduct> for ReviewsDb {
    type Value = Vec<Review>;
    type Error = Arc<DbErr>;

    async fn load(
        &self,
        keys: &[ReviewsByProduct],
    ) -> std::result::Result<HashMap<ReviewsByProduct, Vec<Review>>, Self::Error> {
        self.app
            .metrics
            .observe_batch("reviews_by_product", keys.len());
        let rows = self
            .rows(entity::Column::ProductUpc.is_in(keys.iter().map(|k| k.0.clone())))
            .await?;
        Ok(tessera_kit::group_by(
            rows,
            |row| ReviewsByProduct(row.product_upc.clone()),
            |row| row.into(),
        ))
    }
}

impl Loader<ReviewsByAuthor> for ReviewsDb {
    type Value = Vec<Review>;
    type Error = Arc<DbErr>;

    async fn load(
        &self,
        keys: &[ReviewsByAuthor],
    ) -> std::result::Result<HashMap<ReviewsByAuthor, Vec<Review>>, Self::Error> {
        self.app
            .metrics
            .observe_batch("reviews_by_author", keys.len());
        let rows = self
            .rows(entity::Column::AuthorId.is_in(keys.iter().map(|k| k.0)))
            .await?;
        Ok(tessera_kit::group_by(
            rows,
            |row| ReviewsByAuthor(row.author_id),
            |row| row.into(),
        ))
    }
}

async fn load_review(ctx: &Context<'_>, id: &str) -> Result<Option<Review>> {
    let Ok(id) = id.parse::<i64>() else {
        return Ok(None);
    };
    Ok(ctx
        .data_unchecked::<DataLoader<ReviewsDb>>()
        .load_one(ReviewId(id))
        .await?)
}

/// The reviews `Query` root.
#[derive(Default)]
pub struct Query;

#[Object]
impl Query {
    /// One review by id.
    async fn review(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Review>> {
        load_review(ctx, &id).await
    }

    /// The newest reviews.
    async fn latest_reviews(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 10)] first: u64,
    ) -> Result<Vec<Review>> {
        if first > 100 {
            return Err(Error::invalid("`first` must be at most 100"));
        }
        let rows = entity::Entity::find()
            .order_by_desc(entity::Column::CreatedAt)
            .order_by_desc(entity::Column::Id)
            .limit(first)
            .all(&ctx.data_unchecked::<AppState>().db)
            .await?;
        Ok(rows.into_iter().map(Review::from).collect())
    }

    /// Resolves `Review` representations (batched).
    #[graphql(entity)]
    async fn find_review_by_id(
        &self,
        ctx: &Context<'_>,
        #[graphql(key)] id: ID,
    ) -> Result<Option<Review>> {
        load_review(ctx, &id).await
    }

    /// Resolves `User` representations: any user id can have reviews.
    #[graphql(entity)]
    async fn find_user_by_id(&self, #[graphql(key)] id: ID) -> User {
        User { id }
    }

    /// Resolves `Product` representations: any product can have reviews.
    #[graphql(entity)]
    async fn find_product_by_upc(&self, #[graphql(key)] upc: String) -> Product {
        Product { upc }
    }
}

/// What `addReview` takes.
#[derive(InputObject)]
pub struct AddReviewInput {
    /// The reviewed product's upc.
    pub upc: String,
    /// The author's user id.
    pub author_id: ID,
    /// 1 to 5 stars.
    pub rating: i32,
    /// The review's text, 1 to 5000 characters.
    pub body: String,
}

/// The reviews `Mutation` root.
#[derive(Default)]
pub struct Mutation;

#[Object]
impl Mutation {
    /// Adds a review; emits `reviewAdded`.
    async fn add_review(&self, ctx: &Context<'_>, input: AddReviewInput) -> Result<Review> {
        let body = input.body.trim();
        if body.is_empty() || body.chars().count() > 5000 {
            return Err(Error::invalid("body must be 1 to 5000 characters"));
        }
        if !(1..=5).contains(&input.rating) {
            return Err(Error::invalid("rating must be between 1 and 5"));
        }
        let upc = input.upc.trim();
        if upc.is_empty() || !upc.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(Error::invalid("upc must be a product code"));
        }
        let author_id = input
            .author_id
            .parse::<i64>()
            .ok()
            .filter(|id| *id > 0)
            .ok_or_else(|| Error::invalid("authorId must be a user id"))?;
        let app = ctx.data_unchecked::<AppState>();
        let txn = app.db.begin().await?;
        let row = entity::ActiveModel {
            product_upc: Set(upc.to_owned()),
            author_id: Set(author_id),
            rating: Set(input.rating),
            body: Set(body.to_owned()),
            created_at: Set(chrono::Utc::now()),
            ..Default::default()
        }
        .insert(&txn)
        .await?;
        let review = Review::from(row);
        outbox::enqueue(&txn, &events::REVIEW_ADDED, &(&review).into()).await?;
        txn.commit().await?;
        app.events_committed();
        Ok(review)
    }
}

/// The reviews `Subscription` root.
#[derive(Default)]
pub struct Subscription;

#[GqlSubscription]
impl Subscription {
    /// Every new review from now on, of product `upc` or of all products.
    async fn review_added(
        &self,
        ctx: &Context<'_>,
        upc: Option<String>,
    ) -> impl Stream<Item = async_graphql::Result<Review>> {
        ctx.data_unchecked::<AppState>()
            .follow(ctx, &events::REVIEW_ADDED)
            .map_ok(Review::from)
            .try_filter(move |review| {
                std::future::ready(upc.as_ref().is_none_or(|upc| *upc == review.product_upc))
            })
    }
}
