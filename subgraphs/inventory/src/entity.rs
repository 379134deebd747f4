//! The inventory tables: `stock`, `reserved_orders` and `reserved_lines`.

/// A row of `stock`: how many units of a product are on hand.
pub mod stock {
    use sea_orm::entity::prelude::*;

    /// Units on hand of one product.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "stock")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub upc: String,
        pub quantity: i64,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// A row of `reserved_orders`: an order whose stock was already taken.
pub mod reserved_orders {
    use sea_orm::entity::prelude::*;

    /// An order inventory has handled: `outcome` is `RESERVED`, `REJECTED` or `RELEASED` (its
    /// reserved units went back when it was cancelled).
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "reserved_orders")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub order_id: i64,
        pub reserved_at: DateTimeUtc,
        pub outcome: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// A row of `reserved_lines`: units taken for one line of a reserved order.
pub mod reserved_lines {
    use sea_orm::entity::prelude::*;

    /// Units of one product taken for an order.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "reserved_lines")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub order_id: i64,
        pub upc: String,
        pub quantity: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
