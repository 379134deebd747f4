//! Bundles the shop's live dashboard (`web/`) with npm and embeds it: see `tessera-webbuild`.

fn main() {
    tessera_webbuild::embed("web", "dashboard", "tessera::server::assets::Asset");
}
