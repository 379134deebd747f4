//! `tessera-inventory`: the inventory subgraph server.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tessera_kit::run::<tessera_inventory::Inventory>().await?;
    Ok(())
}
