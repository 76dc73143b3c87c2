//! UsageService as usage.proto documents it, beyond what `usage.rs` already checks (who may
//! count, time windows, UNSPECIFIED values, row order): each event kind recorded by the RPC it
//! names with its product id, device models as registered, and how groupings combine.

use proto::v1 as pb;
use tests::client::authed;
use tonic::Code;

use super::*;

use pb::UsageEventKind as Kind;
use pb::UsageGrouping as Group;

async fn count(
    conf: &Conf,
    request: pb::CountUsageEventsRequest,
) -> Result<pb::CountUsageEventsResponse, tonic::Status> {
    conf.usage().count_usage_events(authed(OPERATOR_TOKEN, request)).await.map(tonic::Response::into_inner)
}

fn grouped(groups: &[Group]) -> pb::CountUsageEventsRequest {
    pb::CountUsageEventsRequest { group_by: groups.iter().map(|&g| g as i32).collect(), ..Default::default() }
}

/// (kind, product) -> count, from rows grouped by kind and product.
fn by_kind_and_product(response: &pb::CountUsageEventsResponse) -> Vec<(Kind, String, i64)> {
    response.counts.iter().map(|r| (r.kind(), r.product_id.clone(), r.count)).collect()
}

#[tokio::test]
async fn each_rpc_records_its_event_kind_with_the_product_where_one_applies() {
    let conf = Conf::start().await;
    conf.catalog()
        .get_product(conf.req(pb::GetProductRequest { product_id: CARD_PRODUCT.into() }))
        .await
        .expect("GetProduct");
    let draft = conf.valid_card().await;
    conf.customize()
        .render_preview(conf.req(pb::RenderPreviewRequest {
            draft_id: draft.id.clone(),
            width_px: 100,
            page_numbers: vec![1],
        }))
        .await
        .expect("RenderPreview");
    conf.finalize(&draft.id).await;
    let job = conf.submit(submit_draft(&draft.id)).await;
    let (states, _) = conf.watch(&conf.token, &job.id).await;
    assert_eq!(states.last().map(|j| j.state()), Some(pb::JobState::Completed));
    conf.sessions().close_session(conf.req(pb::CloseSessionRequest {})).await.expect("CloseSession");

    let response = count(&conf, grouped(&[Group::Kind, Group::Product])).await.expect("CountUsageEvents");
    let card = CARD_PRODUCT.to_string();
    let expected = vec![
        (Kind::SessionStarted, String::new(), 1),
        (Kind::SessionClosed, String::new(), 1),
        (Kind::ProductViewed, card.clone(), 1),
        (Kind::DraftCreated, card.clone(), 1),
        (Kind::PreviewRendered, card.clone(), 1),
        (Kind::DraftFinalized, card.clone(), 1),
        (Kind::JobSubmitted, card.clone(), 1),
        (Kind::JobEnded, card, 1),
    ];
    assert_eq!(by_kind_and_product(&response), expected);
    assert_eq!(response.total, 8, "the total is the sum of the rows");
}

#[tokio::test]
async fn a_repeated_grouping_counts_once() {
    let conf = Conf::start().await;
    conf.new_session().await;
    let once = count(&conf, grouped(&[Group::Kind])).await.expect("CountUsageEvents");
    let twice = count(&conf, grouped(&[Group::Kind, Group::Kind])).await.expect("a repeated grouping");
    assert_eq!(twice, once);
}

#[tokio::test]
async fn rows_grouped_by_device_model_carry_the_model_as_registered() {
    let conf = Conf::start().await;
    let device = pb::Device {
        id: "mfd-model".into(),
        display_name: "Model check".into(),
        model: "Xerox AltaLink C8170".into(),
        delivery_mode: pb::DeliveryMode::SpoolFolder as i32,
        ..Default::default()
    };
    let register = authed(OPERATOR_TOKEN, pb::RegisterDeviceRequest { device: Some(device) });
    conf.devices().register_device(register).await.expect("RegisterDevice");
    conf.new_session_on("mfd-model").await;
    let request = pb::CountUsageEventsRequest {
        kinds: vec![Kind::SessionStarted as i32],
        group_by: vec![Group::DeviceModel as i32],
        ..Default::default()
    };
    let response = count(&conf, request).await.expect("CountUsageEvents");
    let rows: Vec<(String, i64)> = response.counts.iter().map(|r| (r.device_model.clone(), r.count)).collect();
    // The conformance session's device has no registration, so no model: an empty key, sorted first.
    assert_eq!(rows, [(String::new(), 1), ("Xerox AltaLink C8170".to_string(), 1)]);
    assert!(
        response.counts.iter().all(|r| r.kind() == Kind::Unspecified && r.product_id.is_empty() && r.day.is_empty())
    );
}

#[tokio::test]
async fn an_unknown_grouping_is_invalid_argument() {
    let conf = Conf::start().await;
    let request = pb::CountUsageEventsRequest { group_by: vec![999], ..Default::default() };
    expect_status(count(&conf, request).await, Code::InvalidArgument, &["group_by"]);
}

#[tokio::test]
async fn a_canceled_job_counts_as_ended() {
    let conf = Conf::printing(Duration::from_secs(3600)).await;
    let (draft, _) = conf.finalized_static().await;
    let job = conf.submit(submit_draft(&draft.id)).await;
    conf.print().cancel_job(conf.req(pb::CancelJobRequest { job_id: job.id.clone() })).await.expect("CancelJob");
    let (states, _) = conf.watch(&conf.token, &job.id).await;
    assert_eq!(states.last().map(|j| j.state()), Some(pb::JobState::Canceled));
    let request = pb::CountUsageEventsRequest { kinds: vec![Kind::JobEnded as i32], ..Default::default() };
    assert_eq!(count(&conf, request).await.expect("CountUsageEvents").total, 1);
}
