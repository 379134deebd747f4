//! Deterministic example data for the e-commerce subgraphs.
//!
//! The five subgraphs own separate databases, yet their example data must agree: a review's
//! author must be a user that accounts has, an order's item a product that products sells. So the
//! whole data set is generated here, from a fixed seed, and each subgraph's seeder loads only its
//! own part ([`users`], [`products`], [`stock`], [`reviews`], [`orders`]). Identifiers are
//! positions: user `n` gets id `n` because accounts inserts users in this order into an empty
//! table.

/// How many of each thing the example has.
pub const USERS: usize = 250;
/// Products in the catalog.
pub const PRODUCTS: usize = 300;
/// Reviews across all products.
pub const REVIEWS: usize = 1200;
/// Orders across all users.
pub const ORDERS: usize = 500;

/// A user of the shop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// 1-based id, as accounts assigns it.
    pub id: i64,
    /// Unique login name.
    pub username: String,
    /// Display name.
    pub name: String,
    /// Unique e-mail address.
    pub email: String,
}

/// A product of the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    /// Universal product code, the product's key.
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

/// A review of a product by a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Review {
    /// Reviewed product's upc.
    pub product_upc: String,
    /// Author's user id.
    pub author_id: i64,
    /// 1 to 5 stars.
    pub rating: i32,
    /// The review's text.
    pub body: String,
}

/// An order and its items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    /// The buyer's user id.
    pub buyer_id: i64,
    /// One of `PLACED`, `PAID`, `SHIPPED`, `DELIVERED`, `CANCELLED`.
    pub status: &'static str,
    /// `(upc, quantity, unit price in cents)` per item.
    pub items: Vec<(String, i32, i64)>,
    /// How many days before the seeding the order was placed.
    pub days_ago: i64,
}

/// A small, fixed pseudo-random generator (SplitMix64), so the data is the same on every
/// machine and every run.
struct Rng(u64);

impl Rng {
    fn new(stream: u64) -> Self {
        Self(0x7e55_e7a0_0000_0000 ^ stream)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `lo..=hi`.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        let span = u64::try_from(hi - lo + 1).unwrap_or(1);
        lo + i64::try_from(self.next() % span).unwrap_or(0)
    }

    /// An index in `0..len`.
    fn index(&mut self, len: usize) -> usize {
        let len = u64::try_from(len).unwrap_or(1).max(1);
        usize::try_from(self.next() % len).unwrap_or(0)
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.index(items.len())]
    }
}

const FIRST_NAMES: &[&str] = &[
    "Ada",
    "Grace",
    "Alan",
    "Edsger",
    "Barbara",
    "Donald",
    "Margaret",
    "Ken",
    "Dennis",
    "Frances",
    "John",
    "Radia",
    "Linus",
    "Guido",
    "Hedy",
    "Tim",
    "Katherine",
    "Niklaus",
    "Leslie",
    "Sophie",
];
const LAST_NAMES: &[&str] = &[
    "Lovelace",
    "Hopper",
    "Turing",
    "Dijkstra",
    "Liskov",
    "Knuth",
    "Hamilton",
    "Thompson",
    "Ritchie",
    "Allen",
    "McCarthy",
    "Perlman",
    "Torvalds",
    "Rossum",
    "Lamarr",
    "Berners-Lee",
    "Johnson",
    "Wirth",
    "Lamport",
    "Wilson",
];
const CATEGORIES: &[(&str, &[&str], i64, i64)] = &[
    (
        "Kitchen",
        &[
            "Kettle",
            "Skillet",
            "Knife Set",
            "Blender",
            "Teapot",
            "Grinder",
        ],
        1_500,
        3_000,
    ),
    (
        "Outdoor",
        &[
            "Tent",
            "Backpack",
            "Headlamp",
            "Sleeping Bag",
            "Camp Stove",
            "Water Filter",
        ],
        2_000,
        4_000,
    ),
    (
        "Office",
        &[
            "Desk Lamp",
            "Notebook",
            "Fountain Pen",
            "Monitor Stand",
            "Desk Chair",
            "Stapler",
        ],
        500,
        6_000,
    ),
    (
        "Audio",
        &[
            "Headphones",
            "Speaker",
            "Turntable",
            "Microphone",
            "Amplifier",
            "Earbuds",
        ],
        200,
        5_000,
    ),
    (
        "Garden",
        &[
            "Watering Can",
            "Pruner",
            "Planter",
            "Hose Reel",
            "Seed Kit",
            "Trowel",
        ],
        300,
        4_500,
    ),
];
const ADJECTIVES: &[&str] = &[
    "Classic",
    "Compact",
    "Deluxe",
    "Everyday",
    "Featherweight",
    "Heritage",
    "Modular",
    "Nordic",
    "Pro",
    "Rugged",
    "Silent",
    "Smart",
    "Studio",
    "Trail",
    "Urban",
];
const REVIEW_OPENINGS: &[&str] = &[
    "Exactly as described.",
    "Better than I expected.",
    "Does the job, nothing more.",
    "Arrived quickly and well packed.",
    "I bought a second one for a friend.",
    "Not what I hoped for.",
    "Solid build quality.",
    "Great value for the price.",
];
const REVIEW_CLOSINGS: &[&str] = &[
    "Would buy again.",
    "Four months in and still going strong.",
    "The instructions could be clearer.",
    "Customer service was helpful.",
    "It is a bit heavier than I thought.",
    "Recommended.",
];
const STATUSES: &[&str] = &[
    "PLACED",
    "PAID",
    "SHIPPED",
    "DELIVERED",
    "DELIVERED",
    "CANCELLED",
];

/// The example's users, in id order.
pub fn users() -> Vec<User> {
    let mut rng = Rng::new(1);
    (1..=USERS)
        .map(|n| {
            let first = rng.pick(FIRST_NAMES);
            let last = rng.pick(LAST_NAMES);
            let username = format!("{}{n}", first.to_lowercase());
            User {
                id: i64::try_from(n).unwrap_or(i64::MAX),
                email: format!("{username}@example.com"),
                name: format!("{first} {last}"),
                username,
            }
        })
        .collect()
}

/// The example's products, in upc order.
pub fn products() -> Vec<Product> {
    let mut rng = Rng::new(2);
    (1..=PRODUCTS)
        .map(|n| {
            let (category, nouns, min_weight, max_weight) = CATEGORIES[n % CATEGORIES.len()];
            let noun = rng.pick(nouns);
            let adjective = rng.pick(ADJECTIVES);
            Product {
                upc: upc(n),
                name: format!("{adjective} {noun}"),
                description: format!(
                    "A {} {} from our {} range.",
                    adjective.to_lowercase(),
                    noun.to_lowercase(),
                    category.to_lowercase()
                ),
                price: rng.range(4, 400) * 100 - 1,
                weight: rng.range(min_weight / 10, max_weight / 10) * 10,
                category: category.to_owned(),
            }
        })
        .collect()
}

/// The upc of the `n`-th product (1-based).
pub fn upc(n: usize) -> String {
    format!("{}", 100_000 + n)
}

/// Starting stock per product upc: most are well stocked, some run low.
pub fn stock() -> Vec<(String, i64)> {
    let mut rng = Rng::new(3);
    (1..=PRODUCTS)
        .map(|n| {
            let quantity = if rng.range(0, 9) == 0 {
                rng.range(0, 4)
            } else {
                rng.range(10, 150)
            };
            (upc(n), quantity)
        })
        .collect()
}

/// The example's reviews, in id order.
pub fn reviews() -> Vec<Review> {
    let mut rng = Rng::new(4);
    (0..REVIEWS)
        .map(|_| {
            let product = usize::try_from(rng.range(1, PRODUCTS as i64)).unwrap_or(1);
            let rating = i32::try_from(rng.range(1, 5).max(rng.range(1, 5))).unwrap_or(5);
            Review {
                product_upc: upc(product),
                author_id: rng.range(1, USERS as i64),
                rating,
                body: format!(
                    "{} {}",
                    rng.pick(REVIEW_OPENINGS),
                    rng.pick(REVIEW_CLOSINGS)
                ),
            }
        })
        .collect()
}

/// The example's orders, in id order, priced from [`products`].
pub fn orders() -> Vec<Order> {
    let catalog = products();
    let mut rng = Rng::new(5);
    (0..ORDERS)
        .map(|_| {
            let items = (0..rng.range(1, 4))
                .map(|_| {
                    let product = &catalog[rng.index(catalog.len())];
                    let quantity = i32::try_from(rng.range(1, 3)).unwrap_or(1);
                    (product.upc.clone(), quantity, product.price)
                })
                .collect();
            Order {
                buyer_id: rng.range(1, USERS as i64),
                status: rng.pick(STATUSES),
                items,
                days_ago: rng.range(0, 90),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_is_deterministic_and_consistent() {
        assert_eq!(users(), users());
        assert_eq!(products().len(), PRODUCTS);
        let upcs: std::collections::HashSet<_> = products().into_iter().map(|p| p.upc).collect();
        assert_eq!(upcs.len(), PRODUCTS, "upcs are unique");
        assert!(reviews().iter().all(|r| upcs.contains(&r.product_upc)));
        assert!(
            reviews()
                .iter()
                .all(|r| (1..=USERS as i64).contains(&r.author_id))
        );
        assert!(
            orders()
                .iter()
                .flat_map(|o| &o.items)
                .all(|(upc, _, _)| upcs.contains(upc))
        );
        let usernames: std::collections::HashSet<_> =
            users().into_iter().map(|u| u.username).collect();
        assert_eq!(usernames.len(), USERS, "usernames are unique");
    }
}
