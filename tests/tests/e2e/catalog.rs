//! The catalog walk a person makes at the printer: categories, a product list in pages, search,
//! a product page and its thumbnail; and the errors bad requests get.

use proto::v1 as pb;
use tests::client::{authed, catalog, start_session};
use tests::core::TestCore;
use tonic::Code;

async fn all_products(
    core: &TestCore,
    token: &str,
    category: &str,
    query: &str,
    page_size: i32,
) -> Vec<pb::ProductSummary> {
    let channel = core.channel().await;
    let mut products = Vec::new();
    let mut page_token = String::new();
    for _ in 0..100 {
        let request = pb::ListProductsRequest {
            category_id: category.into(),
            query: query.into(),
            page_size,
            page_token: page_token.clone(),
        };
        let page = catalog(&channel).list_products(authed(token, request)).await.unwrap().into_inner();
        assert!(page_size <= 0 || page.products.len() <= page_size as usize);
        products.extend(page.products);
        if page.next_page_token.is_empty() {
            assert_eq!(products.len(), page.total_size as usize, "total_size counts every product");
            return products;
        }
        page_token = page.next_page_token;
    }
    panic!("paging never ended");
}

#[tokio::test]
async fn walk_categories_products_and_thumbnails() {
    let core = TestCore::start().await;
    let channel = core.channel().await;
    let token = start_session(&channel, "mfd-lobby").await;

    let tree = catalog(&channel)
        .list_categories(authed(&token, pb::ListCategoriesRequest {}))
        .await
        .unwrap()
        .into_inner()
        .categories;
    fn flatten(nodes: &[pb::Category], out: &mut Vec<pb::Category>) {
        for node in nodes {
            out.push(node.clone());
            flatten(&node.subcategories, out);
        }
    }
    let mut categories = Vec::new();
    flatten(&tree, &mut categories);
    assert!(categories.len() >= 3, "at least three categories");
    assert!(tree.iter().any(|c| !c.subcategories.is_empty()), "at least one nested category");

    let everything = all_products(&core, &token, "", "", 0).await;
    assert!(everything.len() >= 10, "at least ten products");
    let kinds: Vec<i32> = everything.iter().map(|p| p.kind).collect();
    assert!(kinds.contains(&(pb::ProductKind::Static as i32)));
    assert!(kinds.contains(&(pb::ProductKind::Customizable as i32)));

    // Every category lists exactly the products that name it, and says how many.
    let mut listed = 0;
    for category in &categories {
        let products = all_products(&core, &token, &category.id, "", 0).await;
        assert_eq!(products.len(), category.product_count as usize, "count of {}", category.id);
        assert!(products.iter().all(|p| p.category_id == category.id));
        listed += products.len();
    }
    assert_eq!(listed, everything.len(), "every product sits in a listed category");

    for summary in &everything {
        let product = catalog(&channel)
            .get_product(authed(&token, pb::GetProductRequest { product_id: summary.id.clone() }))
            .await
            .unwrap()
            .into_inner()
            .product
            .unwrap();
        assert_eq!(product.display_name, summary.display_name);
        assert!(product.page_count >= 1);
        let trim = product.trim_size.unwrap();
        assert!(trim.width_mm > 0.0 && trim.height_mm > 0.0);
        let quantity = product.quantity.unwrap();
        assert!(quantity.minimum <= quantity.default_quantity && quantity.default_quantity <= quantity.maximum);

        let thumbnail = catalog(&channel)
            .get_thumbnail(authed(&token, pb::GetThumbnailRequest { product_id: summary.id.clone() }))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(thumbnail.content_type, "image/png");
        let size = imagesize::blob_size(&thumbnail.data).expect("a real image");
        assert_eq!((size.width as i32, size.height as i32), (thumbnail.width_px, thumbnail.height_px));
        let info = summary.thumbnail.as_ref().unwrap();
        assert_eq!((info.width_px, info.height_px), (thumbnail.width_px, thumbnail.height_px));
    }
}

#[tokio::test]
async fn paging_is_complete_stable_and_bound_to_its_query() {
    let core = TestCore::start().await;
    let channel = core.channel().await;
    let token = start_session(&channel, "mfd-lobby").await;

    let whole = all_products(&core, &token, "", "", 100).await;
    let paged = all_products(&core, &token, "", "", 4).await;
    let ids = |list: &[pb::ProductSummary]| list.iter().map(|p| p.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&whole), ids(&paged), "pages join into the whole list, in order, without repeats");

    // A huge page size is clamped, not refused.
    let page = catalog(&channel)
        .list_products(authed(&token, pb::ListProductsRequest { page_size: 100_000, ..Default::default() }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.products.len(), whole.len().min(100));

    let first = catalog(&channel)
        .list_products(authed(&token, pb::ListProductsRequest { page_size: 2, ..Default::default() }))
        .await
        .unwrap()
        .into_inner();
    assert!(!first.next_page_token.is_empty());

    // The token belongs to its query: replaying it with a search is refused with a hint.
    let replay = pb::ListProductsRequest {
        query: "card".into(),
        page_size: 2,
        page_token: first.next_page_token.clone(),
        ..Default::default()
    };
    let err = catalog(&channel).list_products(authed(&token, replay)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("page_token"), "{}", err.message());

    for garbage in ["nonsense", "AAAA", "%%%"] {
        let request = pb::ListProductsRequest { page_token: garbage.into(), ..Default::default() };
        let err = catalog(&channel).list_products(authed(&token, request)).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{garbage}");
    }
    let negative = pb::ListProductsRequest { page_size: -5, ..Default::default() };
    let err = catalog(&channel).list_products(authed(&token, negative)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn search_matches_names_and_descriptions() {
    let core = TestCore::start().await;
    let channel = core.channel().await;
    let token = start_session(&channel, "mfd-lobby").await;
    let everything = all_products(&core, &token, "", "", 0).await;

    let kraft = all_products(&core, &token, "", "KRAFT", 0).await;
    assert!(!kraft.is_empty() && kraft.len() < everything.len());
    for product in &kraft {
        let full = catalog(&channel)
            .get_product(authed(&token, pb::GetProductRequest { product_id: product.id.clone() }))
            .await
            .unwrap()
            .into_inner()
            .product
            .unwrap();
        let text = format!("{} {} {}", full.display_name, full.short_description, full.description).to_lowercase();
        assert!(text.contains("kraft"), "{} matched without the word", product.id);
    }

    // All words must match: adding a word can only narrow the result.
    let narrower = all_products(&core, &token, "", "kraft card", 0).await;
    assert!(narrower.len() <= kraft.len());
    assert!(all_products(&core, &token, "", "zebra-unicorn-nothing", 0).await.is_empty());

    let too_long = pb::ListProductsRequest { query: "x".repeat(201), ..Default::default() };
    let err = catalog(&channel).list_products(authed(&token, too_long)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("200"), "{}", err.message());
}

#[tokio::test]
async fn unknown_and_malformed_ids_get_clear_errors() {
    let core = TestCore::start().await;
    let channel = core.channel().await;
    let token = start_session(&channel, "mfd-lobby").await;

    let err = catalog(&channel)
        .get_product(authed(&token, pb::GetProductRequest { product_id: "no-such-product".into() }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert!(err.message().contains("no-such-product"));

    // Ids are opaque: empty or over 128 characters is a bad request, any other stranger names nothing.
    let too_long = "p".repeat(129);
    for bad in ["", too_long.as_str()] {
        let err = catalog(&channel)
            .get_thumbnail(authed(&token, pb::GetThumbnailRequest { product_id: bad.into() }))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{bad:?}");
        assert!(err.message().contains("product_id"), "{}", err.message());
    }
    for stranger in ["../../etc/passwd", "a b", "\u{0}"] {
        let err = catalog(&channel)
            .get_thumbnail(authed(&token, pb::GetThumbnailRequest { product_id: stranger.into() }))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::NotFound, "{stranger:?}");
    }

    let request = pb::ListProductsRequest { category_id: "no-such-category".into(), ..Default::default() };
    let err = catalog(&channel).list_products(authed(&token, request)).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}
