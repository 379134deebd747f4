//! `tessera-reviews`: the reviews subgraph server.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tessera_kit::run::<tessera_reviews::Reviews>().await?;
    Ok(())
}
