//! The orders tables: `orders`, `order_items` and `price_list`.

/// A row of `orders`.
pub mod order {
    use sea_orm::entity::prelude::*;

    /// An order.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "orders")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub buyer_id: i64,
        pub status: String,
        pub total: i64,
        pub created_at: DateTimeUtc,
        pub status_reason: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// A row of `order_items`.
pub mod item {
    use sea_orm::entity::prelude::*;

    /// One line of an order.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "order_items")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub order_id: i64,
        pub product_upc: String,
        pub quantity: i32,
        pub unit_price: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// A row of `price_list`: the price orders sells a product at.
pub mod price {
    use sea_orm::entity::prelude::*;

    /// The price of one product.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "price_list")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub upc: String,
        pub price: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
