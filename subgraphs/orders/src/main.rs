//! `tessera-orders`: the orders subgraph server.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tessera_kit::run::<tessera_orders::Orders>().await?;
    Ok(())
}
