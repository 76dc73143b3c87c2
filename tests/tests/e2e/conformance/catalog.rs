//! CatalogService as catalog.proto documents it, beyond what `catalog.rs` already checks (paging
//! joins into the whole list, clamping above 100, malformed or replayed page tokens, the query's
//! 200-character limit, unknown ids).

use proto::v1 as pb;
use tonic::Code;

use super::*;

fn flatten(nodes: &[pb::Category], out: &mut Vec<pb::Category>) {
    for node in nodes {
        out.push(node.clone());
        flatten(&node.subcategories, out);
    }
}

fn products_below(node: &pb::Category) -> i32 {
    node.product_count + node.subcategories.iter().map(products_below).sum::<i32>()
}

async fn categories(conf: &Conf) -> Vec<pb::Category> {
    let tree = conf.catalog().list_categories(conf.req(pb::ListCategoriesRequest {})).await.expect("ListCategories");
    let mut all = Vec::new();
    flatten(&tree.into_inner().categories, &mut all);
    all
}

async fn list(conf: &Conf, request: pb::ListProductsRequest) -> Result<pb::ListProductsResponse, tonic::Status> {
    conf.catalog().list_products(conf.req(request)).await.map(tonic::Response::into_inner)
}

#[tokio::test]
async fn list_categories_leaves_out_categories_without_products_at_any_depth() {
    let conf = Conf::start().await;
    let all = categories(&conf).await;
    assert!(!all.is_empty());
    for category in &all {
        assert!(products_below(category) > 0, "{} has no product at any depth", category.id);
    }
}

#[tokio::test]
async fn a_categorys_product_count_is_what_list_products_finds_directly_in_it() {
    let conf = Conf::start().await;
    for category in categories(&conf).await {
        let request =
            pb::ListProductsRequest { category_id: category.id.clone(), page_size: 100, ..Default::default() };
        let page = list(&conf, request).await.expect("ListProducts of a listed category");
        assert_eq!(page.total_size, category.product_count, "{}", category.id);
        assert_eq!(page.products.len() as i32, category.product_count, "{}", category.id);
        assert!(page.products.iter().all(|p| p.category_id == category.id), "directly in {}", category.id);
    }
}

#[tokio::test]
async fn list_products_page_size_zero_is_the_default_of_twenty() {
    let conf = Conf::start().await;
    let page = list(&conf, pb::ListProductsRequest::default()).await.expect("ListProducts");
    assert_eq!(page.products.len() as i32, page.total_size.min(20));
    assert_eq!(page.next_page_token.is_empty(), page.total_size <= 20, "a next page exactly when more remain");
}

#[tokio::test]
async fn list_products_page_token_from_another_category_is_invalid_argument() {
    let conf = Conf::start().await;
    let first = list(&conf, pb::ListProductsRequest { page_size: 1, ..Default::default() }).await.expect("a page");
    assert!(!first.next_page_token.is_empty(), "the sample catalog has more than one product");
    let replay = pb::ListProductsRequest {
        category_id: "business-cards".into(),
        page_size: 1,
        page_token: first.next_page_token,
        ..Default::default()
    };
    expect_status(list(&conf, replay).await, Code::InvalidArgument, &["page_token"]);
}

#[tokio::test]
async fn list_products_query_matches_every_word_in_any_order_case_insensitively() {
    // catalog.proto: "Only products whose name and descriptions contain every word of this text
    // (split at white space), in any order, compared case-insensitively".
    let conf = Conf::start().await;
    let found = |query: &str| {
        let request = pb::ListProductsRequest { query: query.into(), page_size: 100, ..Default::default() };
        let conf = &conf;
        async move { list(conf, request).await.expect("ListProducts").products }
    };
    let ids = |products: &[pb::ProductSummary]| products.iter().map(|p| p.id.clone()).collect::<Vec<_>>();
    assert!(ids(&found("card business").await).contains(&"classic-business-card".to_string()), "any order");
    assert_eq!(ids(&found("CARD Business").await), ids(&found("business card").await), "case-insensitive");
    assert!(found("business card zebra-no-such-word").await.is_empty(), "every word must appear");
    for query in ["CaRd", "business card", "card business", "a4 flyer"] {
        let products = found(query).await;
        assert!(!products.is_empty(), "{query:?} finds something in the sample shop");
        for summary in &products {
            let product = product(&conf, &summary.id).await;
            let text = format!("{}\n{}\n{}", product.display_name, product.short_description, product.description)
                .to_lowercase();
            for word in query.split_whitespace() {
                assert!(text.contains(&word.to_lowercase()), "{} does not contain {word:?}", product.id);
            }
        }
    }
}

#[tokio::test]
async fn every_product_carries_a_kind_a_valid_price_quantity_rule_and_trim_size() {
    let conf = Conf::start().await;
    let category_ids: Vec<String> = categories(&conf).await.into_iter().map(|c| c.id).collect();
    let page = list(&conf, pb::ListProductsRequest { page_size: 100, ..Default::default() }).await.expect("a page");
    for summary in page.products {
        let product = product(&conf, &summary.id).await;
        let id = &product.id;
        assert_eq!(id, &summary.id);
        assert!(id.len() <= 128);
        assert_ne!(product.kind(), pb::ProductKind::Unspecified, "{id}");
        assert!(category_ids.contains(&product.category_id), "{id} is in a listed category");
        if let Some(price) = &product.price {
            assert!(price.per_quantity >= 1, "{id}: per_quantity at least 1");
            assert!(
                price.currency_code.len() == 3 && price.currency_code.chars().all(|c| c.is_ascii_uppercase()),
                "{id}: ISO 4217 code {:?}",
                price.currency_code
            );
        }
        let rule = product.quantity.clone().expect("a quantity rule");
        assert!(rule.minimum >= 1, "{id}: minimum at least 1");
        assert!(rule.maximum == 0 || rule.maximum >= rule.minimum, "{id}: {rule:?}");
        assert!(rule.default_quantity >= rule.minimum, "{id}: {rule:?}");
        assert!(rule.maximum == 0 || rule.default_quantity <= rule.maximum, "{id}: {rule:?}");
        assert!(rule.options.windows(2).all(|w| w[0] < w[1]), "{id}: options ascending");
        if !rule.options.is_empty() {
            assert!(rule.options.contains(&rule.default_quantity), "{id}: the default is an option");
        }
        if let Some(trim) = &product.trim_size {
            assert!(trim.width_mm > 0.0 && trim.height_mm > 0.0 && trim.bleed_mm >= 0.0, "{id}: {trim:?}");
        }
    }
}
