//! The uStore test double itself: that it answers as the shared spec says, keeps users' order
//! items apart, and that its fault switches do what they claim.

use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::{Value, json};
use tests::ustore::fixtures::{self, PROD_BUSINESS_CARD};
use tests::ustore::{FailMode, UstoreDouble};

const UNSUB: &str = "v1/store/login/user/orders/unsubmitted/items";

async fn login(double: &UstoreDouble, email: &str, password: &str) -> String {
    let body = json!({"Email": email, "Password": password, "StoreID": double.store_id()});
    let reply = double.call(Method::POST, "v1/store/login", None, Some(&body)).await.unwrap();
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    reply.json().unwrap()["Token"].as_str().unwrap().to_string()
}

async fn get(double: &UstoreDouble, target: &str, token: &str) -> (StatusCode, Value) {
    let reply = double.call(Method::GET, target, Some(token), None).await.unwrap();
    (reply.status, reply.json().unwrap_or(Value::Null))
}

/// Polls `poll` until its Status is no longer 1.
async fn until_done(mut poll: impl AsyncFnMut() -> Value) -> Value {
    for _ in 0..100 {
        let answer = poll().await;
        if answer["Status"] != 1 {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never finished");
}

#[tokio::test]
async fn logins_catalog_paging_and_the_trade_category() {
    let double = UstoreDouble::start().await.unwrap();
    let anon = double
        .call_h2(
            Method::POST,
            "v1/store/loginByUrl",
            None,
            Some(&json!({"FullURL": double.storefront_url(), "UserID": null})),
        )
        .await
        .unwrap();
    assert_eq!(anon.status, StatusCode::OK);
    let anon = anon.json().unwrap();
    assert_eq!(anon["StoreID"], double.store_id());
    let anon_token = anon["Token"]["Token"].as_str().unwrap().to_string();
    let (_, user) = get(&double, "v1/store/login/user", &anon_token).await;
    assert_eq!(user["IsAnonymous"], true);

    let wrong = json!({"FullURL": "https://elsewhere.example/ustore/12", "UserID": null});
    let reply = double.call(Method::POST, "v1/store/loginByUrl", None, Some(&wrong)).await.unwrap();
    assert_eq!(
        (reply.status, reply.json().unwrap()["TypeName"].clone()),
        (StatusCode::BAD_REQUEST, json!("ResourceNotAvailable.Store"))
    );
    let bad = json!({"Email": "ana@example.com", "Password": "nope", "StoreID": double.store_id()});
    let reply = double.call(Method::POST, "v1/store/login", None, Some(&bad)).await.unwrap();
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.json().unwrap()["TypeName"], "AuthenticationFailed");

    let ana = login(&double, "ana@example.com", "print-shop-ana").await;
    let ben = login(&double, "ben@example.com", "print-shop-ben").await;
    let (_, user) = get(&double, "v1/store/login/user", &ben).await;
    assert_eq!((user["FirstName"].as_str(), user["LastName"].as_str()), (Some("Ben"), Some("Okafor")));

    let names = |tree: &Value| -> Vec<String> {
        tree["Categories"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["Category"]["Name"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, tree) = get(&double, "v1/store/categories/tree?depth=2", &ana).await;
    assert_eq!(names(&tree), ["Stationery", "Marketing"]);
    assert_eq!(tree["Categories"][0]["SubCategories"][0]["Category"]["Name"], "Business cards");
    let (_, tree) = get(&double, "v1/store/categories/tree?depth=2", &ben).await;
    assert!(names(&tree).contains(&"Trade counter".to_string()));
    let trade = format!("v1/store/categories/{}/products", fixtures::CAT_TRADE);
    assert_eq!(get(&double, &trade, &ana).await.0, StatusCode::NOT_FOUND);
    assert_eq!(get(&double, &trade, &ben).await.1["Count"], 1);

    let marketing = fixtures::CAT_MARKETING;
    let mut seen = Vec::new();
    for page in 1..=3 {
        let target =
            format!("v1/store/categories/{marketing}/products?pageNumber={page}&pageSize=3&calculateMinimumPrice=true");
        let (status, answer) = get(&double, &target, &ana).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(answer["Count"], 4);
        seen.extend(answer["Products"].as_array().unwrap().iter().map(|p| p["ID"].clone()));
    }
    assert_eq!(seen.len(), 4);
    let (status, answer) = get(&double, &format!("v1/store/categories/{marketing}/products?pageSize=201"), &ana).await;
    assert_eq!(
        (status, answer["Message"].as_str()),
        (StatusCode::BAD_REQUEST, Some("pageSize must be between 1 and 200"))
    );
    let (_, found) = get(&double, "v1/store/products/search?search=A5%20FLYER&pageNumber=1&pageSize=10", &ana).await;
    assert_eq!(found["Count"], 1);

    let (_, thumbs) = get(&double, &format!("v1/store/products/{PROD_BUSINESS_CARD}/thumbnails"), &ana).await;
    let url = thumbs["Thumbnails"][0]["Url"].as_str().unwrap();
    let image = double.call(Method::GET, url, None, None).await.unwrap();
    assert_eq!((image.status, image.content_type.as_str()), (StatusCode::OK, "image/png"));
    assert_eq!(imagesize::blob_size(&image.body).unwrap().width, 200);

    let renewed = double.call(Method::POST, "v1/store/login/renew", Some(&ana), None).await.unwrap();
    let renewed = renewed.json().unwrap()["Token"].as_str().unwrap().to_string();
    assert_eq!(get(&double, "v1/store", &ana).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(get(&double, "v1/store", &renewed).await.1["StoreType"], 2);
    assert!(double.controls().count("categories") >= 2);
}

#[tokio::test]
async fn customize_preview_and_proof_a_business_card_and_items_stay_private() {
    let double = UstoreDouble::builder()
        .preview_delay(Duration::from_millis(50))
        .proof_delay(Duration::from_millis(100))
        .start()
        .await
        .unwrap();
    let ana = login(&double, "ana@example.com", "print-shop-ana").await;
    let ben = double.controls().token_for("ben@example.com").unwrap();
    let draft = format!("v1/store/login/user/orders/draft/items?productID={PROD_BUSINESS_CARD}");
    let item = double.call(Method::POST, &draft, Some(&ana), None).await.unwrap().json().unwrap();
    let oi = item["ID"].as_str().unwrap().to_string();

    let (_, form) = get(&double, &format!("{UNSUB}/{oi}/properties/form"), &ana).await;
    let id = |key: &str| form["JSONSchema"]["definitions"][key]["custom"]["id"].as_str().unwrap().to_string();
    assert_eq!(form["UISchema"]["PaperTint"]["ui:widget"], "CmykColorPicker");
    assert_eq!(form["formData"]["ShowPhone"], "No");
    assert!(form["JSONSchema"]["dependencies"]["ShowPhone"]["oneOf"].is_array());

    let state = json!([
        {"id": id("Name"), "value": "Forbidden Fruit"},
        {"id": id("ShowPhone"), "value": "Yes"},
        {"id": id("Phone"), "value": "call me"},
        {"id": "uStoreOrderItemQuantity", "value": 7},
    ]);
    let reply = double
        .call(Method::PUT, &format!("{UNSUB}/{oi}/properties/form/state"), Some(&ana), Some(&state))
        .await
        .unwrap();
    let errors = reply.json().unwrap()["errors"].clone();
    assert_eq!(errors["Name"], json!(["This name is reserved; choose another."]));
    assert!(errors["Phone"].is_array() && errors["uStoreOrderItemQuantity"].is_array(), "{errors}");

    let values = json!([
        {"id": id("Name"), "value": "Ana Silva"},
        {"id": id("Accent"), "value": "red"},
        {"id": "uStoreOrderItemQuantity", "value": 250},
    ]);
    let saved =
        double.call(Method::PUT, &format!("{UNSUB}/{oi}/properties/form"), Some(&ana), Some(&values)).await.unwrap();
    assert_eq!(saved.status, StatusCode::OK);

    // Ben cannot see, change or delete Ana's item.
    for (method, target) in [
        (Method::GET, format!("{UNSUB}/{oi}")),
        (Method::GET, format!("{UNSUB}/{oi}/properties/form")),
        (Method::POST, format!("{UNSUB}/{oi}/proof")),
        (Method::DELETE, format!("{UNSUB}/{oi}")),
    ] {
        let reply = double.call(method, &target, Some(&ben), Some(&json!({}))).await.unwrap();
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{target}");
        assert_eq!(reply.json().unwrap()["TypeName"], "ResourceNotAvailable.OrderItem");
    }
    let items = double.controls().order_items();
    assert_eq!(items.len(), 1);
    assert_eq!((items[0].email.as_deref(), items[0].quantity), (Some("ana@example.com"), 250));

    let preview = format!("{UNSUB}/{oi}/preview");
    let mut pages = Vec::new();
    for name in ["Ana Silva", "Ana Silva-Okafor"] {
        let body = json!({"Properties": [{"ID": id("Name"), "Value": name}]});
        let created = double.call(Method::POST, &preview, Some(&ana), Some(&body)).await.unwrap().json().unwrap();
        let pid = created["PreviewID"].as_str().unwrap().to_string();
        let done = until_done(async || get(&double, &format!("{preview}/{pid}"), &ana).await.1).await;
        assert_eq!(done["Items"].as_array().unwrap().len(), 2);
        let url = done["Items"][0]["Url"].as_str().unwrap();
        let path = url.strip_prefix(&double.base_url()).unwrap();
        let png = double.call(Method::GET, path, Some(&ana), None).await.unwrap();
        assert_eq!(png.content_type, "image/png");
        let size = imagesize::blob_size(&png.body).unwrap();
        assert_eq!((size.width, size.height), (600, 402), "91 x 61 mm");
        pages.push(png.body);
    }
    assert_ne!(pages[0], pages[1], "the preview follows the values");

    let proof = format!("{UNSUB}/{oi}/proof");
    let done = until_done(async || {
        double.call(Method::POST, &proof, Some(&ana), Some(&json!({}))).await.unwrap().json().unwrap()
    })
    .await;
    assert_eq!(done["Status"], 2);
    let pdf =
        double.call(Method::GET, &format!("{proof}/download?fileName=proof.pdf"), Some(&ana), None).await.unwrap();
    assert_eq!(pdf.content_type, "application/pdf");
    assert!(pdf.body.starts_with(b"%PDF"));
    let text = String::from_utf8_lossy(&pdf.body);
    assert!(text.contains("(Name: Ana Silva)") && text.contains("(Accent colour: red)"), "{text}");
    assert!(text.contains("/TrimBox"));

    double.controls().fail_next_proofs(1);
    let again = json!([{"id": id("JobTitle"), "value": "Owner"}]);
    double.call(Method::PUT, &format!("{UNSUB}/{oi}/properties/form"), Some(&ana), Some(&again)).await.unwrap();
    let failed = until_done(async || {
        double.call(Method::POST, &proof, Some(&ana), Some(&json!({}))).await.unwrap().json().unwrap()
    })
    .await;
    assert_eq!(failed["Status"], 3);
    let retried = until_done(async || {
        double.call(Method::POST, &proof, Some(&ana), Some(&json!({}))).await.unwrap().json().unwrap()
    })
    .await;
    assert_eq!(retried["Status"], 2);
}

#[tokio::test]
async fn fault_switches() {
    let double = UstoreDouble::start().await.unwrap();
    let controls = double.controls();
    let ana = login(&double, "ana@example.com", "print-shop-ana").await;
    let draft = format!("v1/store/login/user/orders/draft/items?productID={PROD_BUSINESS_CARD}");
    let item = double.call(Method::POST, &draft, Some(&ana), None).await.unwrap().json().unwrap();
    let preview = format!("{UNSUB}/{}/preview", item["ID"].as_str().unwrap());

    controls.throttle_next(1);
    let reply = double.call(Method::POST, &preview, Some(&ana), Some(&json!({"Properties": []}))).await.unwrap();
    assert_eq!(
        (reply.status, reply.json().unwrap()["Message"].clone()),
        (StatusCode::TOO_MANY_REQUESTS, json!("Too much requests."))
    );
    let reply = double.call(Method::POST, &preview, Some(&ana), Some(&json!({"Properties": []}))).await.unwrap();
    assert_eq!(reply.status, StatusCode::OK);

    controls.set_malformed_catalog(true);
    let reply = double.call(Method::GET, "v1/store/categories/tree", Some(&ana), None).await.unwrap();
    assert!(reply.status == StatusCode::OK && reply.json().is_err());
    controls.set_malformed_catalog(false);

    controls.set_oversized_catalog(Some(1 << 20));
    let reply = double.call_h2(Method::GET, "v1/store/categories/tree", Some(&ana), None).await.unwrap();
    assert!(reply.body.len() > 1 << 20);
    controls.set_oversized_catalog(None);

    // Headers at once, then the (valid) body a few hundred bytes a second.
    controls.set_slow_catalog(Some(400));
    let started = std::time::Instant::now();
    let reply = double.call(Method::GET, "v1/store/categories/tree?depth=2", Some(&ana), None).await.unwrap();
    assert!(started.elapsed() >= Duration::from_secs(1) && reply.json().is_ok(), "{:?}", started.elapsed());
    controls.set_slow_catalog(None);

    controls.set_fail(Some(FailMode::Status(503)));
    assert_eq!(get(&double, "v1/store", &ana).await.0, StatusCode::SERVICE_UNAVAILABLE);
    controls.set_fail(Some(FailMode::Down));
    assert!(double.call(Method::GET, "v1/store", Some(&ana), None).await.is_err());
    controls.set_fail(None);
    assert_eq!(get(&double, "v1/store", &ana).await.0, StatusCode::OK);

    controls.expire_tokens();
    let (status, answer) = get(&double, "v1/store", &ana).await;
    assert_eq!((status, answer["TypeName"].as_str()), (StatusCode::UNAUTHORIZED, Some("AccessDenied")));

    let bad = double.call(Method::POST, "v1/store/login", None, None).await.unwrap();
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(controls.count("login") >= 2 && controls.count("preview-create") == 2);
}
