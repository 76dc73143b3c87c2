//! Binaries that run from anywhere: copies of `podconnect-server` and `weblet-gateway` in a
//! folder of their own, started from an empty working folder, serve the sample shop and the
//! weblet built into them.

use std::path::Path;

use bytes::Bytes;
use http::{Method, StatusCode};
use proto::v1 as pb;
use tests::client::{authed, catalog, sessions, start_session};
use tests::core::{TestCore, server_binary};
use tests::gateway::{Http, TestGateway, full, gateway_binary};

/// Copies a binary into `dir`, as an install would.
fn install(binary: &Path, dir: &Path) -> std::path::PathBuf {
    let target = dir.join(binary.file_name().expect("a file name"));
    std::fs::copy(binary, &target).expect("copy the binary");
    target
}

/// Whether the binary carries `file`'s bytes (built in, not read from the source tree at run time).
fn carries(binary: &Path, file: &Path) -> bool {
    let binary = std::fs::read(binary).expect("read the binary");
    let text = std::fs::read_to_string(file).expect("read the file");
    String::from_utf8_lossy(&binary).contains(text.as_str())
}

#[tokio::test]
async fn copied_binaries_started_from_an_empty_folder_serve_the_sample_shop_and_the_weblet() {
    let installed = tempfile::tempdir().unwrap();
    let working = tempfile::tempdir().unwrap();
    let server = install(&server_binary().unwrap(), installed.path());
    let gateway = install(&gateway_binary().unwrap(), installed.path());
    let sample = server::config::default_storefront_dir();
    let dist = Path::new(env!("CARGO_MANIFEST_DIR")).join("../weblet-gateway/weblet/dist");
    assert!(carries(&server, &sample.join("storefront.toml")), "the sample storefront is built into the core");
    assert!(carries(&gateway, &dist.join("index.html")), "the weblet is built into the gateway");

    let core = TestCore::builder().binary(&server).current_dir(working.path()).spawn().await.unwrap();
    let channel = core.channel().await;
    let token = start_session(&channel, "mfd-installed").await;
    // The trade shopper sees every product, the private trade category's too.
    let (username, password, _) = tests::client::BEN;
    let login = pb::LoginRequest { username: username.into(), password: password.into(), remember: false };
    let token = sessions(&channel).login(authed(&token, login)).await.unwrap().into_inner().session_token;
    let request = pb::ListProductsRequest { page_size: 100, ..Default::default() };
    let page = catalog(&channel).list_products(authed(&token, request)).await.unwrap().into_inner();
    let mut served: Vec<String> = page.products.iter().map(|product| product.id.clone()).collect();
    served.sort();
    let mut shipped: Vec<String> = std::fs::read_dir(sample.join("products"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    shipped.sort();
    assert_eq!(served, shipped, "every product of the sample shop");
    let categories = catalog(&channel).list_categories(authed(&token, pb::ListCategoriesRequest {})).await.unwrap();
    assert!(!categories.into_inner().categories.is_empty());
    let pdf = pb::GetProductRequest { product_id: "fire-action-notice".into() };
    let product = catalog(&channel).get_product(authed(&token, pdf)).await.unwrap().into_inner();
    assert_eq!(product.product.map(|p| p.display_name).as_deref(), Some("Fire Action Notice"));

    let gateway = TestGateway::builder()
        .binary(&gateway)
        .current_dir(working.path())
        .built_in_weblet()
        .spawn(&core)
        .await
        .unwrap();
    let mut browser = gateway.client(Http::H2).await;
    let request = browser.request(Method::GET, "/").body(full(Bytes::new())).unwrap();
    let (status, headers, page) = browser.fetch(request).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(headers["content-type"].to_str().unwrap().starts_with("text/html"), "{headers:?}");
    assert_eq!(page, std::fs::read(dist.join("index.html")).unwrap());
    assert!(String::from_utf8_lossy(&page).contains("<script"), "the page loads the app");
    let request =
        browser.request(Method::GET, "/app.js").header("accept-encoding", "gzip, br").body(full(Bytes::new())).unwrap();
    let (status, headers, script) = browser.fetch(request).await.unwrap();
    assert_eq!((status, headers["content-encoding"].to_str().unwrap()), (StatusCode::OK, "br"));
    assert_eq!(script, std::fs::read(dist.join("app.js.br")).unwrap(), "the build's own brotli copy");
    let request = browser.request(Method::GET, "/app.css").body(full(Bytes::new())).unwrap();
    let (status, _, style) = browser.fetch(request).await.unwrap();
    assert_eq!((status, style), (StatusCode::OK, Bytes::from(std::fs::read(dist.join("app.css")).unwrap())));

    drop((gateway, core));
    let left: Vec<_> = std::fs::read_dir(working.path()).unwrap().collect();
    assert!(left.is_empty(), "nothing is written to the working folder: {left:?}");
}
