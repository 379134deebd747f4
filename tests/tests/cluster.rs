//! The event bus on a three-node Redis Cluster started by each test: sharded pub/sub on the node
//! of each topic's slot, and the event-id, resume and saga tests of the single-server suites
//! run again on the cluster.

use std::time::Duration;

use tessera_kit::events::{Retention, stream_key};
use tessera_tests::{RedisCluster, ShopOptions, TestRedis, unique_prefix};

use crate::event_ids::{event, ready_bus, take_ns};

/// Shop options with every subgraph on `cluster`.
fn on_cluster(cluster: &TestRedis, postgres: bool) -> ShopOptions {
    ShopOptions {
        postgres,
        redis: true,
        redis_cluster: Some(cluster.url()),
        ..ShopOptions::default()
    }
}

/// `PUBSUB <sub> [args]` on node `port`.
async fn pubsub(cluster: &RedisCluster, port: u16, args: &[&str]) -> anyhow::Result<redis::Value> {
    let mut conn = cluster.node(port).await?;
    let mut cmd = redis::cmd("PUBSUB");
    for arg in args {
        cmd.arg(*arg);
    }
    Ok(cmd.query_async(&mut conn).await?)
}

/// Subscribers of shard channel `channel` on node `port`.
async fn shard_subscribers(
    cluster: &RedisCluster,
    port: u16,
    channel: &str,
) -> anyhow::Result<i64> {
    let reply = pubsub(cluster, port, &["SHARDNUMSUB", channel]).await?;
    let counts: Vec<(String, i64)> = redis::from_redis_value(reply)?;
    counts
        .first()
        .map(|(_, count)| *count)
        .ok_or_else(|| anyhow::anyhow!("no SHARDNUMSUB answer"))
}

#[tokio::test]
async fn each_topic_lives_on_the_node_of_its_slot_and_travels_by_sharded_pub_sub()
-> anyhow::Result<()> {
    let redis = TestRedis::cluster().await?;
    let TestRedis::Cluster(cluster) = &redis else {
        unreachable!()
    };
    let prefix = unique_prefix();
    // Topics until two of them are on different nodes.
    let mut topics: Vec<(String, u16)> = Vec::new();
    for n in 0..64 {
        let topic = format!("topic{n}");
        let owner = cluster.owner_of(&stream_key(&prefix, &topic)).await?;
        if topics.iter().all(|(_, port)| *port != owner) {
            topics.push((topic, owner));
        }
        if topics.len() == 3 {
            break;
        }
    }
    anyhow::ensure!(topics.len() >= 2, "every topic hashed to one node");
    // Two processes of one deployment: each follows every topic; one publishes.
    let first = ready_bus(redis.target()?, &prefix, Retention::default()).await?;
    let second = ready_bus(redis.target()?, &prefix, Retention::default()).await?;
    let mut followers = Vec::new();
    for (topic, _) in &topics {
        first.listen(topic).await?;
        second.listen(topic).await?;
        followers.push((
            Box::pin(first.follow(topic, None)),
            Box::pin(second.follow(topic, None)),
        ));
    }
    for (i, (topic, _)) in topics.iter().enumerate() {
        first.publish(&event(topic, i as u64)).await?;
    }
    for (i, (a, b)) in followers.iter_mut().enumerate() {
        assert_eq!(take_ns(a, 1).await?, vec![i as u64]);
        assert_eq!(take_ns(b, 1).await?, vec![i as u64]);
    }
    for (topic, owner) in &topics {
        let channel = format!("{prefix}{{{topic}}}");
        // Both processes hold the sharded subscription on the owner, and no other node has it.
        for port in cluster.ports() {
            let expected = if port == owner { 2 } else { 0 };
            assert_eq!(
                shard_subscribers(cluster, *port, &channel).await?,
                expected,
                "{channel} on node {port} (owner {owner})"
            );
        }
        // The topic's stream and first-id record are on the owner.
        let mut node = cluster.node(*owner).await?;
        let stream = stream_key(&prefix, topic);
        let exists: i64 = redis::cmd("EXISTS")
            .arg(&stream)
            .arg(format!("{stream}:origin"))
            .query_async(&mut node)
            .await?;
        assert_eq!(exists, 2, "{stream} on its owner");
    }
    // No pattern subscription anywhere: the bus does not broadcast to every node.
    for port in cluster.ports() {
        let patterns: i64 = redis::from_redis_value(pubsub(cluster, *port, &["NUMPAT"]).await?)?;
        assert_eq!(patterns, 0, "node {port}");
    }
    Ok(())
}

#[tokio::test]
async fn a_subscriber_catches_up_after_its_shard_connection_drops() -> anyhow::Result<()> {
    let redis = TestRedis::cluster().await?;
    let TestRedis::Cluster(cluster) = &redis else {
        unreachable!()
    };
    let prefix = unique_prefix();
    let subscriber = ready_bus(redis.target()?, &prefix, Retention::default()).await?;
    let publisher = ready_bus(redis.target()?, &prefix, Retention::default()).await?;
    subscriber.listen("orders").await?;
    let mut follower = Box::pin(subscriber.follow("orders", None));
    publisher.publish(&event("orders", 0)).await?;
    assert_eq!(take_ns(&mut follower, 1).await?, vec![0]);
    // Cut the sharded subscription on the topic's node (both processes' pub/sub connections);
    // what is published before redis-rs subscribes again must come from the stream.
    let owner = cluster.owner_of(&stream_key(&prefix, "orders")).await?;
    let mut node = cluster.node(owner).await?;
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut node)
        .await?;
    assert!(killed >= 1, "a pub/sub connection on the owner");
    for n in 1..=20 {
        publisher.publish(&event("orders", n)).await?;
    }
    assert_eq!(
        take_ns(&mut follower, 20).await?,
        (1..=20).collect::<Vec<_>>()
    );
    // And live again afterwards.
    tokio::time::sleep(Duration::from_millis(200)).await;
    publisher.publish(&event("orders", 21)).await?;
    assert_eq!(take_ns(&mut follower, 1).await?, vec![21]);
    Ok(())
}

#[tokio::test]
async fn a_topic_goes_on_when_its_primary_fails_and_its_replica_takes_over() -> anyhow::Result<()> {
    let mut cluster = RedisCluster::start_replicated().await?;
    let prefix = unique_prefix();
    let target = || tessera_kit::events::RedisTarget::parse(&cluster.url(), true);
    let subscriber = ready_bus(target()?, &prefix, Retention::default()).await?;
    let publisher = ready_bus(target()?, &prefix, Retention::default()).await?;
    subscriber.listen("orders").await?;
    let mut follower = Box::pin(subscriber.follow("orders", None));
    for n in 0..5 {
        publisher.publish(&event("orders", n)).await?;
    }
    assert_eq!(take_ns(&mut follower, 5).await?, (0..5).collect::<Vec<_>>());

    // The topic's primary dies; its replica is promoted.
    let stream = stream_key(&prefix, "orders");
    let new_primary = cluster.fail_over(&stream).await?;
    // Publishing goes to the new primary (the relay retries a failed publish the same way),
    // and the subscriber hears it: its sharded subscription moved with the slot, or the
    // stream fills in what it missed.
    for n in 5..10 {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            match publisher.publish(&event("orders", n)).await {
                Ok(_) => break,
                Err(_) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(err) => return Err(err.into()),
            }
        }
    }
    assert_eq!(
        take_ns(&mut follower, 5).await?,
        (5..10).collect::<Vec<_>>()
    );
    // And live from the new primary, each once.
    tokio::time::sleep(Duration::from_millis(300)).await;
    publisher.publish(&event("orders", 10)).await?;
    assert_eq!(take_ns(&mut follower, 1).await?, vec![10]);
    let channel = format!("{prefix}{{orders}}");
    assert_eq!(shard_subscribers(&cluster, new_primary, &channel).await?, 1);
    assert!(
        tokio::time::timeout(
            Duration::from_millis(300),
            futures_util::StreamExt::next(&mut follower)
        )
        .await
        .is_err(),
        "a duplicate"
    );
    Ok(())
}

#[tokio::test]
async fn saga_goes_on_when_a_primary_fails_over() -> anyhow::Result<()> {
    crate::saga::primary_failover(TestRedis::Cluster(RedisCluster::start_replicated().await?)).await
}

#[tokio::test]
async fn subscriptions_through_the_router_go_on_when_a_primary_fails_over() -> anyhow::Result<()> {
    crate::resume::through_a_failover(RedisCluster::start_replicated().await?).await
}

#[tokio::test]
async fn event_ids_publish_once_on_a_cluster() -> anyhow::Result<()> {
    crate::event_ids::publish_once(&TestRedis::cluster().await?).await
}

#[tokio::test]
async fn event_ids_resume_across_the_seam_on_a_cluster() -> anyhow::Result<()> {
    crate::event_ids::resume_across_the_seam(&TestRedis::cluster().await?).await
}

#[tokio::test]
async fn event_ids_gap_on_a_cluster() -> anyhow::Result<()> {
    crate::event_ids::gap(&TestRedis::cluster().await?).await
}

#[tokio::test]
async fn event_ids_lag_catch_up_on_a_cluster() -> anyhow::Result<()> {
    crate::event_ids::lag_catch_up(&TestRedis::cluster().await?).await
}

#[tokio::test]
async fn resume_every_protocol_on_a_cluster() -> anyhow::Result<()> {
    let redis = TestRedis::cluster().await?;
    crate::resume::every_protocol_resumes(on_cluster(&redis, false)).await
}

#[tokio::test]
async fn resume_while_orders_keep_coming_on_a_cluster() -> anyhow::Result<()> {
    let redis = TestRedis::cluster().await?;
    crate::resume::resuming_while_orders_keep_coming(on_cluster(&redis, false)).await
}

#[tokio::test]
async fn resume_after_a_replica_is_away_on_a_cluster() -> anyhow::Result<()> {
    let redis = TestRedis::cluster().await?;
    crate::resume::replica_away(on_cluster(&redis, true)).await
}

#[tokio::test]
async fn saga_order_beyond_the_stock_on_a_cluster() -> anyhow::Result<()> {
    crate::saga::order_beyond_the_stock(&TestRedis::cluster().await?).await
}

#[tokio::test]
async fn saga_order_for_an_unstocked_product_on_a_cluster() -> anyhow::Result<()> {
    crate::saga::order_for_an_unstocked_product(&TestRedis::cluster().await?).await
}

#[tokio::test]
async fn saga_cancelled_order_on_a_cluster() -> anyhow::Result<()> {
    crate::saga::cancelled_order(&TestRedis::cluster().await?).await
}

#[tokio::test]
async fn saga_poison_entry_on_a_cluster() -> anyhow::Result<()> {
    crate::saga::poison_entry(&TestRedis::cluster().await?).await
}

#[tokio::test]
async fn saga_killed_consumer_on_a_cluster() -> anyhow::Result<()> {
    crate::saga::killed_consumer(&TestRedis::cluster().await?).await
}

#[tokio::test]
async fn saga_failing_handler_on_a_cluster() -> anyhow::Result<()> {
    crate::saga::failing_handler(&TestRedis::cluster().await?).await
}
