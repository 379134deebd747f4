//! `tessera-products`: the products subgraph server.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tessera_kit::run::<tessera_products::Products>().await?;
    Ok(())
}
