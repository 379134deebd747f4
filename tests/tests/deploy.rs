//! The Kubernetes manifests of `deploy/k8s` against the binaries they run: every command is a
//! binary of the workspace, every environment variable one that binary reads, every port the
//! one it listens on (and the subgraph's own default), every probe a path that answers 200 on
//! a running shop, every Service and PodDisruptionBudget selects a Deployment's pods, every
//! ConfigMap and Secret key exists, and the in-cluster supergraph names each subgraph by its
//! Service.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use clap::CommandFactory as _;
use serde::Deserialize as _;
use serde_yaml_ng::Value;
use tessera_kit::Subgraph as _;
use tessera_tests::{Shop, ShopOptions};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_path_buf()
}

fn read(path: &str) -> anyhow::Result<String> {
    let full = root().join(path);
    std::fs::read_to_string(&full).map_err(|err| anyhow::anyhow!("{}: {err}", full.display()))
}

fn documents(path: &str) -> anyhow::Result<Vec<Value>> {
    let text = read(path)?;
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(Value::deserialize)
        .filter(|doc| !matches!(doc, Ok(Value::Null)))
        .collect::<Result<_, _>>()
        .map_err(Into::into)
}

fn str_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(value, |v, key| v.get(*key))
        .and_then(Value::as_str)
}

fn labels(value: Option<&Value>) -> BTreeMap<String, String> {
    value
        .and_then(Value::as_mapping)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// The environment variables a binary reads: its flags' `env` names.
fn env_names(command: &clap::Command) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = command
        .get_arguments()
        .filter_map(|arg| arg.get_env())
        .map(|env| env.to_string_lossy().into_owned())
        .collect();
    for sub in command.get_subcommands() {
        names.extend(env_names(sub));
    }
    names.insert("RUST_LOG".to_owned());
    names
}

/// The `[[bin]]` names of the workspace's packages.
fn binaries() -> anyhow::Result<BTreeSet<String>> {
    let mut names = BTreeSet::new();
    for manifest in [
        "router/Cargo.toml",
        "subgraphs/accounts/Cargo.toml",
        "subgraphs/products/Cargo.toml",
        "subgraphs/inventory/Cargo.toml",
        "subgraphs/reviews/Cargo.toml",
        "subgraphs/orders/Cargo.toml",
    ] {
        let text = read(manifest)?;
        let mut in_bin = false;
        for line in text.lines() {
            if line.starts_with('[') {
                in_bin = line.trim() == "[[bin]]";
            } else if in_bin && let Some(name) = line.strip_prefix("name = ") {
                names.insert(name.trim_matches('"').to_owned());
            }
        }
    }
    Ok(names)
}

struct Container {
    deployment: String,
    binary: String,
    port: u16,
    probes: Vec<(String, u16)>,
}

#[tokio::test]
async fn the_kubernetes_manifests_match_what_the_binaries_serve() -> anyhow::Result<()> {
    let docs = documents("deploy/k8s/tessera.yaml")?;
    let kustomization = documents("deploy/k8s/kustomization.yaml")?;
    let secret = documents("deploy/k8s/secret.example.yaml")?;
    let binaries = binaries()?;
    let subgraph_env = env_names(&tessera_kit::Config::command());
    let router_env = env_names(&tessera::server::cli::Cli::command());
    let subgraph_ports: BTreeMap<&str, u16> = [
        ("accounts", tessera_accounts::Accounts::DEFAULT_PORT),
        ("products", tessera_products::Products::DEFAULT_PORT),
        ("inventory", tessera_inventory::Inventory::DEFAULT_PORT),
        ("reviews", tessera_reviews::Reviews::DEFAULT_PORT),
        ("orders", tessera_orders::Orders::DEFAULT_PORT),
    ]
    .into();
    let env_literals: BTreeSet<String> = kustomization[0]["configMapGenerator"]
        .as_sequence()
        .into_iter()
        .flatten()
        .filter(|g| g["name"] == "tessera-env")
        .flat_map(|g| g["literals"].as_sequence().cloned().unwrap_or_default())
        .filter_map(|l| Some(l.as_str()?.split_once('=')?.0.to_owned()))
        .collect();
    let secret_keys: BTreeSet<String> = secret[0]["stringData"]
        .as_mapping()
        .map(|m| {
            m.keys()
                .filter_map(|k| k.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();

    let mut containers = Vec::new();
    let mut pod_labels = Vec::new();
    for doc in docs.iter().filter(|d| d["kind"] == "Deployment") {
        let name = str_at(doc, &["metadata", "name"])
            .unwrap_or_default()
            .to_owned();
        assert!(
            doc["spec"]["replicas"].as_u64() >= Some(2),
            "{name}: replicas"
        );
        let template_labels = labels(doc["spec"]["template"]["metadata"].get("labels"));
        let selector = labels(doc["spec"]["selector"].get("matchLabels"));
        assert!(
            selector
                .iter()
                .all(|(k, v)| template_labels.get(k) == Some(v)),
            "{name}: the selector does not select its own pods"
        );
        pod_labels.push(template_labels);
        for c in doc["spec"]["template"]["spec"]["containers"]
            .as_sequence()
            .into_iter()
            .flatten()
        {
            let binary = c["command"][0].as_str().unwrap_or_default().to_owned();
            assert!(binaries.contains(&binary), "{name}: no binary {binary:?}");
            let known = if binary == "tessera" {
                &router_env
            } else {
                &subgraph_env
            };
            let mut listen = None;
            for env in c["env"].as_sequence().into_iter().flatten() {
                let var = env["name"].as_str().unwrap_or_default();
                assert!(known.contains(var), "{name}: {binary} reads no {var}");
                if var == "LISTEN" || var == "TESSERA_LISTEN" {
                    listen = env["value"].as_str().map(str::to_owned);
                }
                if let Some(key) = str_at(env, &["valueFrom", "configMapKeyRef", "key"]) {
                    assert!(
                        env_literals.contains(key),
                        "{name}: tessera-env has no {key}"
                    );
                }
                if let Some(key) = str_at(env, &["valueFrom", "secretKeyRef", "key"]) {
                    assert!(secret_keys.contains(key), "{name}: the secret has no {key}");
                }
            }
            let listen: std::net::SocketAddr = listen
                .ok_or_else(|| anyhow::anyhow!("{name}: no listen address"))?
                .parse()?;
            let port = c["ports"][0]["containerPort"].as_u64().unwrap_or_default();
            assert_eq!(u64::from(listen.port()), port, "{name}: listens elsewhere");
            assert_eq!(c["ports"][0]["name"], "http", "{name}: the port's name");
            if let Some(default) = subgraph_ports.get(name.as_str()) {
                assert_eq!(listen.port(), *default, "{name}: not its default port");
            }
            let mut probes = Vec::new();
            for probe in ["readinessProbe", "livenessProbe"] {
                let path = str_at(&c[probe], &["httpGet", "path"])
                    .ok_or_else(|| anyhow::anyhow!("{name}: no {probe}"))?;
                let probe_port = c[probe]["httpGet"]["port"].as_u64().unwrap_or_default();
                assert_eq!(probe_port, port, "{name}: {probe} on another port");
                probes.push((path.to_owned(), u16::try_from(probe_port)?));
            }
            for resource in ["cpu", "memory"] {
                assert!(
                    c["resources"]["requests"].get(resource).is_some(),
                    "{name}: no {resource} request"
                );
            }
            containers.push(Container {
                deployment: name.clone(),
                binary,
                port: listen.port(),
                probes,
            });
        }
    }
    assert_eq!(containers.len(), 6, "the router and five subgraphs");
    let selects = |doc: &Value, path: &[&str]| {
        let selector = labels(path.iter().try_fold(doc, |v, k| v.get(*k)));
        !selector.is_empty()
            && pod_labels
                .iter()
                .any(|pod| selector.iter().all(|(k, v)| pod.get(k) == Some(v)))
    };
    let mut services = BTreeMap::new();
    for doc in &docs {
        let name = str_at(doc, &["metadata", "name"]).unwrap_or_default();
        match doc["kind"].as_str() {
            Some("Service") => {
                assert!(
                    selects(doc, &["spec", "selector"]),
                    "service {name} selects nothing"
                );
                let port = doc["spec"]["ports"][0]["port"].as_u64().unwrap_or_default();
                let container = containers
                    .iter()
                    .find(|c| c.deployment == name)
                    .ok_or_else(|| anyhow::anyhow!("service {name}: no deployment"))?;
                assert_eq!(port, u64::from(container.port), "service {name}: port");
                services.insert(name.to_owned(), port);
            }
            Some("PodDisruptionBudget") => {
                assert!(
                    selects(doc, &["spec", "selector", "matchLabels"]),
                    "pdb {name}"
                );
            }
            _ => {}
        }
    }
    assert_eq!(services.len(), 6);

    // The in-cluster supergraph: each subgraph at its Service.
    let supergraph = documents("deploy/k8s/supergraph.yaml")?;
    let listed = supergraph[0]["subgraphs"]
        .as_mapping()
        .ok_or_else(|| anyhow::anyhow!("no subgraphs"))?;
    for (name, port) in &subgraph_ports {
        let entry = &listed[*name];
        let url = format!("http://{name}:{}/graphql", services[*name]);
        assert_eq!(entry["routing_url"].as_str(), Some(url.as_str()));
        assert_eq!(
            str_at(entry, &["schema", "subgraph_url"]),
            Some(url.as_str())
        );
        assert_eq!(u64::from(*port), services[*name]);
    }

    // The probes answer on running processes.
    let shop = Shop::start(ShopOptions::default()).await?;
    let client = reqwest::Client::new();
    for container in &containers {
        let base = if container.binary == "tessera" {
            format!("http://{}", shop.router.addr)
        } else {
            format!("http://{}", shop.subgraph(&container.deployment).addr)
        };
        for (path, _) in &container.probes {
            let status = client.get(format!("{base}{path}")).send().await?.status();
            assert_eq!(status, 200, "{} {path}", container.deployment);
        }
    }
    shop.stop().await
}
