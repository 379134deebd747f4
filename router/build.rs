//! Bundles GraphiQL (`web/`) with npm and embeds it: see `tessera-webbuild`.

fn main() {
    tessera_webbuild::embed("web", "graphiql", "crate::server::assets::Asset");
}
