//! `tessera-accounts`: the accounts subgraph server.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tessera_kit::run::<tessera_accounts::Accounts>().await?;
    Ok(())
}
