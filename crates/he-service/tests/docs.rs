//! The API documents stay true to the code: every route and every field
//! the server sends appears in docs/openapi.yaml and docs/SERVICE.md.

#![allow(clippy::unwrap_used)] // test helpers may unwrap: a panic is a test failure

mod common;

use he_service::client::Client;
use he_service::wire::{JobState, JobStatus};

fn doc(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn keys(v: &serde_json::Value, out: &mut Vec<String>) {
    if let Some(map) = v.as_object() {
        for (k, v) in map {
            out.push(k.clone());
            keys(v, out);
        }
    }
}

#[test]
fn every_route_and_field_is_documented() {
    let (openapi, guide) = (doc("openapi.yaml"), doc("SERVICE.md"));
    for route in [
        "/v1/health",
        "/v1/info",
        "/v1/jobs",
        "/v1/jobs/{id}",
        "/v1/jobs/{id}/result",
        "/v1/jobs/{id}/tiles/{index}",
    ] {
        assert!(
            openapi.contains(&format!("  {route}:")),
            "openapi.yaml lacks {route}"
        );
        assert!(guide.contains(route), "SERVICE.md lacks {route}");
    }
    let server = common::server(|_| {});
    let client = Client::new(&server.url()).unwrap();
    let mut fields = Vec::new();
    keys(
        &serde_json::to_value(client.health().unwrap()).unwrap(),
        &mut fields,
    );
    let mut info = serde_json::to_value(client.info().unwrap()).unwrap();
    info["filters"] = serde_json::Value::Null;
    keys(&info, &mut fields);
    let status = JobStatus {
        id: String::new(),
        instance: String::new(),
        state: JobState::Done,
        filters: vec![],
        width: 1,
        height: 1,
        key_bits: 512,
        ciphertexts: 1,
        progress_done: 0,
        progress_total: 0,
        validate_seconds: 0.0,
        queued_seconds: None,
        filter_seconds: None,
        result_bytes: None,
        expires_in_seconds: None,
        error: None,
        tiles: Some(he_service::wire::TilesStatus {
            tile_rows: 1,
            halo_rows: 1,
            states: vec![],
        }),
    };
    keys(&serde_json::to_value(status).unwrap(), &mut fields);
    // The manifest's JSON.
    let chain = vec![he_filter::Filter::Mean { k: 3 }];
    let opts = he_filter::encrypt_options(&chain).unwrap();
    let manifest = he_service::wire::TiledManifest::new(
        chain,
        enc_image::ColorLayout::Rgb8,
        enc_image::TilePlan::new(4, 4, 2, 1).unwrap(),
        &opts,
    );
    let mut json = serde_json::to_value(manifest).unwrap();
    json["filters"] = serde_json::Value::Null;
    keys(&json, &mut fields);
    for s in [
        he_service::wire::MANIFEST_CONTENT_TYPE,
        "missing, queued, running, done, fetched, failed",
        "\"410\":",
    ] {
        assert!(openapi.contains(s), "openapi.yaml lacks {s}");
    }
    for s in [
        he_service::wire::MANIFEST_CONTENT_TYPE,
        "`fetched`",
        "`410`",
    ] {
        assert!(guide.contains(s), "SERVICE.md lacks {s}");
    }
    let mut error = he_service::wire::ErrorBody::new(String::new());
    error.instance = Some(String::new());
    error.quota = Some(String::new());
    error.retry_after_seconds = Some(1);
    error.estimate_units = Some(1);
    error.budget_units = Some(1);
    keys(&serde_json::to_value(error).unwrap(), &mut fields);
    for f in fields {
        assert!(
            openapi.contains(&format!("{f}:")),
            "openapi.yaml lacks the field {f}"
        );
    }
    // Tokens and their answers.
    for s in [
        "bearerToken:",
        "scheme: bearer",
        "\"401\":",
        "\"429\":",
        "WWW-Authenticate",
    ] {
        assert!(openapi.contains(s), "openapi.yaml lacks {s}");
    }
    for kind in [
        "concurrent_jobs",
        "stored_jobs",
        "stored_bytes",
        "compute_per_hour",
    ] {
        assert!(
            openapi.contains(kind),
            "openapi.yaml lacks the quota {kind}"
        );
    }
}

/// Every setting of the server's `Config` (and of its per-token `Quota`)
/// is named in SERVICE.md with its default.
#[test]
fn every_setting_is_documented() {
    let guide = doc("SERVICE.md");
    let config = format!("{:?}", he_service::server::Config::default());
    let mut names = Vec::new();
    for (i, _) in config.match_indices(": ") {
        let name: String = config[..i]
            .chars()
            .rev()
            .take_while(|c| c.is_ascii_lowercase() || *c == '_')
            .collect::<String>()
            .chars()
            .rev()
            .collect();
        if !name.is_empty() {
            names.push(name);
        }
    }
    assert!(names.len() > 15, "{config}");
    for name in names {
        assert!(
            guide.contains(&format!("`{name}`")) || guide.contains(&format!("`quota.{name}`")),
            "SERVICE.md does not document the setting {name}"
        );
    }
}
