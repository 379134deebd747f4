//! Writes that collide with existing data get a coded user error, never an internal one:
//! concurrent `createUser` for one username on PostgreSQL, where only the unique index can
//! tell who was first.

use serde_json::json;
use tessera_tests::{post_graphql, spawn_seeded};

const CREATE: &str = "mutation($u: String!, $e: String!) { createUser(input: { username: $u, name: \"N\", email: $e }) { id username } }";

#[tokio::test]
async fn concurrent_creations_of_one_username_give_one_user_and_username_taken_to_the_rest()
-> anyhow::Result<()> {
    let (db, accounts) = spawn_seeded::<tessera_accounts::Accounts>().await?;
    let url = accounts.graphql_url();
    let attempts = (0..10).map(|i| {
        let url = url.clone();
        async move {
            post_graphql(
                &url,
                CREATE,
                json!({ "u": "racer", "e": format!("racer{i}@example.com") }),
            )
            .await
        }
    });
    let results = futures_util::future::join_all(attempts).await;
    let mut created = 0;
    for result in results {
        let body = result?;
        if body["data"]["createUser"]["username"] == "racer" {
            created += 1;
            continue;
        }
        let error = &body["errors"][0];
        assert_eq!(error["extensions"]["code"], "USERNAME_TAKEN", "{body}");
        let message = error["message"].as_str().unwrap_or_default();
        assert!(
            !message.contains("duplicate"),
            "internal detail leaked: {message}"
        );
    }
    assert_eq!(created, 1);
    // The e-mail address is unique too, and says so.
    let first = post_graphql(
        &url,
        CREATE,
        json!({ "u": "owner", "e": "owner@example.com" }),
    )
    .await?;
    assert_eq!(first["data"]["createUser"]["username"], "owner", "{first}");
    let again = post_graphql(
        &url,
        CREATE,
        json!({ "u": "other", "e": "owner@example.com" }),
    )
    .await?;
    assert_eq!(
        again["errors"][0]["extensions"]["code"], "EMAIL_TAKEN",
        "{again}"
    );
    accounts.shutdown().await;
    db.drop().await
}
