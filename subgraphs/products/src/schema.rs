//! The products schema: `Product` and the catalog queries.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::{DataLoader, Loader};
use async_graphql::{Context, Object, SimpleObject};
use sea_orm::{ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use tessera_kit::{AppState, Error, PageInfo, Result};

use crate::entity;

/// Largest page a query may ask for.
const MAX_PAGE: i32 = 100;

/// A product of the catalog.
#[derive(SimpleObject, Clone, Debug)]
pub struct Product {
    /// Universal product code: the product's key.
    pub upc: String,
    /// Display name.
    pub name: String,
    /// One-sentence description.
    pub description: String,
    /// Price in cents.
    pub price: i64,
    /// Weight in grams.
    pub weight: i64,
    /// Category name.
    pub category: String,
}

impl From<entity::Model> for Product {
    fn from(row: entity::Model) -> Self {
        Self {
            upc: row.upc,
            name: row.name,
            description: row.description,
            price: row.price,
            weight: row.weight,
            category: row.category,
        }
    }
}

/// A page of products.
#[derive(SimpleObject, Clone, Debug)]
pub struct ProductConnection {
    /// The products of this page.
    pub nodes: Vec<Product>,
    /// Where this page ends.
    pub page_info: PageInfo,
}

/// Loads products by upc in one statement per batch.
pub struct ProductsDb {
    app: AppState,
}

impl ProductsDb {
    /// A loader over `app`'s database.
    pub fn new(app: &AppState) -> Self {
        Self { app: app.clone() }
    }
}

impl Loader<String> for ProductsDb {
    type Value = Product;
    type Error = Arc<DbErr>;

    async fn load(
        &self,
        keys: &[String],
    ) -> std::result::Result<HashMap<String, Product>, Self::Error> {
        self.app
            .metrics
            .observe_batch("products_by_upc", keys.len());
        let rows = entity::Entity::find()
            .filter(entity::Column::Upc.is_in(keys.iter().cloned()))
            .all(&self.app.db)
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| (row.upc.clone(), row.into()))
            .collect())
    }
}

fn page_size(first: i32) -> Result<u64> {
    if !(0..=MAX_PAGE).contains(&first) {
        return Err(Error::invalid(format!(
            "`first` must be between 0 and {MAX_PAGE}"
        )));
    }
    Ok(u64::try_from(first).unwrap_or(0))
}

/// The products `Query` root.
#[derive(Default)]
pub struct Query;

#[Object]
impl Query {
    /// The most expensive products first.
    async fn top_products(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 5)] first: i32,
    ) -> Result<Vec<Product>> {
        let rows = entity::Entity::find()
            .order_by_desc(entity::Column::Price)
            .order_by_asc(entity::Column::Upc)
            .limit(page_size(first)?)
            .all(&ctx.data_unchecked::<AppState>().db)
            .await?;
        Ok(rows.into_iter().map(Product::from).collect())
    }

    /// One product by upc.
    async fn product(&self, ctx: &Context<'_>, upc: String) -> Result<Option<Product>> {
        Ok(ctx
            .data_unchecked::<DataLoader<ProductsDb>>()
            .load_one(upc)
            .await?)
    }

    /// Products in upc order, optionally of one category: `first` of them after cursor `after`.
    async fn products(
        &self,
        ctx: &Context<'_>,
        category: Option<String>,
        #[graphql(default = 20)] first: i32,
        after: Option<String>,
    ) -> Result<ProductConnection> {
        let limit = page_size(first)?;
        let mut query = entity::Entity::find().order_by_asc(entity::Column::Upc);
        if let Some(category) = category {
            query = query.filter(entity::Column::Category.eq(category));
        }
        if let Some(after) = after {
            query = query.filter(entity::Column::Upc.gt(after));
        }
        // One extra row tells whether another page follows.
        let mut rows = query
            .limit(limit + 1)
            .all(&ctx.data_unchecked::<AppState>().db)
            .await?;
        let has_next_page = rows.len() as u64 > limit;
        rows.truncate(usize::try_from(limit).unwrap_or(0));
        let end_cursor = rows.last().map(|row| row.upc.clone());
        Ok(ProductConnection {
            nodes: rows.into_iter().map(Product::from).collect(),
            page_info: PageInfo {
                has_next_page,
                end_cursor,
            },
        })
    }

    /// The catalog's categories, sorted.
    async fn categories(&self, ctx: &Context<'_>) -> Result<Vec<String>> {
        let rows: Vec<String> = entity::Entity::find()
            .select_only()
            .column(entity::Column::Category)
            .distinct()
            .order_by_asc(entity::Column::Category)
            .into_tuple()
            .all(&ctx.data_unchecked::<AppState>().db)
            .await?;
        Ok(rows)
    }

    /// Resolves `Product` representations for the router (batched).
    #[graphql(entity)]
    async fn find_product_by_upc(
        &self,
        ctx: &Context<'_>,
        #[graphql(key)] upc: String,
    ) -> Result<Option<Product>> {
        Ok(ctx
            .data_unchecked::<DataLoader<ProductsDb>>()
            .load_one(upc)
            .await?)
    }
}
