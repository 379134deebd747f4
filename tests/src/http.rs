//! GraphQL over HTTP: [`post_graphql`] for well-formed requests, [`post_raw`] for anything else.

use std::time::Duration;

use anyhow::Context as _;

/// Longest any single harness HTTP request may take, so a hung server fails the test instead of
/// stalling it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A new client for one request.
///
/// Each `#[tokio::test]` has its own runtime and a pooled connection does not survive the
/// runtime that opened it, so clients are not shared between calls. Proxies are ignored: every
/// server under test is on 127.0.0.1.
pub(crate) fn client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .context("building the HTTP client")
}

/// POSTs `{query, variables}` to `url` and returns the JSON body, whatever the HTTP status.
pub async fn post_graphql(
    url: &str,
    query: &str,
    variables: serde_json::Value,
) -> anyhow::Result<serde_json::Value> {
    let body = serde_json::json!({ "query": query, "variables": variables });
    let (_, json) = post_raw(url, &body.to_string()).await?;
    Ok(json)
}

/// [`post_graphql`] with extra request headers.
pub async fn post_graphql_with_headers(
    url: &str,
    query: &str,
    variables: serde_json::Value,
    headers: &[(&str, &str)],
) -> anyhow::Result<serde_json::Value> {
    let body = serde_json::json!({ "query": query, "variables": variables });
    let (_, json) = post_raw_with_headers(url, &body.to_string(), headers).await?;
    Ok(json)
}

/// POSTs `body` verbatim as `application/json` and returns the status and the JSON body.
///
/// Fails when the response body is not JSON, quoting it.
pub async fn post_raw(url: &str, body: &str) -> anyhow::Result<(u16, serde_json::Value)> {
    post_raw_with_headers(url, body, &[]).await
}

/// [`post_raw`] with extra request headers.
pub async fn post_raw_with_headers(
    url: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> anyhow::Result<(u16, serde_json::Value)> {
    let mut request = client()?
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request
        .body(body.to_owned())
        .send()
        .await
        .with_context(|| format!("POST {url}"))?;
    let status = response.status().as_u16();
    let text = response
        .text()
        .await
        .with_context(|| format!("reading the response of POST {url}"))?;
    let json = serde_json::from_str(&text).with_context(|| {
        format!("POST {url} answered {status} with a body that is not JSON: {text}")
    })?;
    Ok((status, json))
}

/// Reads a streaming response (SSE, multipart) until `until` holds for what came so far, or
/// the stream ends; fails after `timeout`.
pub async fn read_stream_until(
    response: reqwest::Response,
    timeout: Duration,
    until: impl Fn(&str) -> bool,
) -> anyhow::Result<String> {
    use futures_util::StreamExt as _;
    let mut text = String::new();
    let mut body = response.bytes_stream();
    let deadline = tokio::time::Instant::now() + timeout;
    while !until(&text) {
        let chunk = tokio::time::timeout_at(deadline, body.next())
            .await
            .map_err(|_| anyhow::anyhow!("timed out; so far: {text:?}"))?;
        let Some(chunk) = chunk else { break };
        text.push_str(&String::from_utf8_lossy(&chunk?));
    }
    Ok(text)
}
