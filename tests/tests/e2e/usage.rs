//! UsageService as an operator sees it: who may count (operator token or operator client
//! certificate, never a session), what the counts say after real sessions, how queries are
//! checked, and that the stored events are durable and hold no personal data.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proto::v1 as pb;
use proto::v1::usage_service_client::UsageServiceClient;
use sha2::{Digest as _, Sha256};
use tests::client::{authed, catalog, sessions, start_session};
use tests::core::TestCore;
use tests::pki::TestCa;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

use pb::UsageEventKind as Kind;
use pb::UsageGrouping as Group;

/// The operator token the cores here are started with (at least 32 characters).
const OPERATOR_TOKEN: &str = "usage-e2e-operator-token-7f3a9c21d4b8e650";

async fn operator_core() -> TestCore {
    TestCore::builder().operator_token(OPERATOR_TOKEN).spawn().await.expect("the core starts")
}

fn usage(channel: &Channel) -> UsageServiceClient<Channel> {
    UsageServiceClient::new(channel.clone())
}

fn query(kinds: &[Kind], group_by: &[Group]) -> pb::CountUsageEventsRequest {
    pb::CountUsageEventsRequest {
        kinds: kinds.iter().map(|&k| k as i32).collect(),
        group_by: group_by.iter().map(|&g| g as i32).collect(),
        ..Default::default()
    }
}

/// Counts as the operator (by token).
async fn count(
    channel: &Channel,
    request: pb::CountUsageEventsRequest,
) -> Result<pb::CountUsageEventsResponse, Status> {
    usage(channel).count_usage_events(authed(OPERATOR_TOKEN, request)).await.map(tonic::Response::into_inner)
}

/// Rows grouped by kind only, as kind -> count.
fn by_kind(response: &pb::CountUsageEventsResponse) -> BTreeMap<Kind, i64> {
    response
        .counts
        .iter()
        .map(|row| (Kind::try_from(row.kind).unwrap_or_else(|_| panic!("unknown kind in {row:?}")), row.count))
        .collect()
}

fn assert_status(result: Result<pb::CountUsageEventsResponse, Status>, code: Code, hint: &str) -> Status {
    let status = result.expect_err("the call must fail");
    assert_eq!(status.code(), code, "unexpected status: {status:?}");
    assert!(status.message().contains(hint), "the message should mention {hint:?}: {:?}", status.message());
    status
}

/// `YYYY-MM-DD` of `at` in UTC (proleptic Gregorian, days-to-civil).
fn utc_day(at: SystemTime) -> String {
    let days = i64::try_from(at.duration_since(UNIX_EPOCH).expect("after 1970").as_secs() / 86_400).expect("small");
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// The id of the first product the catalog lists.
async fn some_product(channel: &Channel, token: &str) -> String {
    let page = catalog(channel)
        .list_products(authed(token, pb::ListProductsRequest::default()))
        .await
        .expect("ListProducts succeeds")
        .into_inner();
    page.products.first().expect("the sample storefront has products").id.clone()
}

async fn view(channel: &Channel, token: &str, product_id: &str) {
    catalog(channel)
        .get_product(authed(token, pb::GetProductRequest { product_id: product_id.into() }))
        .await
        .expect("GetProduct succeeds");
}

async fn close(channel: &Channel, token: &str) {
    sessions(channel).close_session(authed(token, pb::CloseSessionRequest {})).await.expect("CloseSession succeeds");
}

#[tokio::test]
async fn usage_counts_need_an_operator_credential() {
    let core = operator_core().await;
    let channel = core.channel().await;

    let none = usage(&channel).count_usage_events(Request::new(query(&[], &[]))).await.map(tonic::Response::into_inner);
    let status = assert_status(none, Code::Unauthenticated, "operator");
    assert!(status.message().contains("Bearer"), "the message should say how to send the token: {status:?}");

    let session = start_session(&channel, "usage-printer").await;
    let as_session =
        usage(&channel).count_usage_events(authed(&session, query(&[], &[]))).await.map(tonic::Response::into_inner);
    assert_status(as_session, Code::PermissionDenied, "operator");

    let wrong = "not-the-operator-token-but-just-as-long-0000";
    let as_wrong =
        usage(&channel).count_usage_events(authed(wrong, query(&[], &[]))).await.map(tonic::Response::into_inner);
    assert_status(as_wrong, Code::Unauthenticated, "operator");

    let right = count(&channel, query(&[], &[])).await.expect("the operator token is accepted");
    assert_eq!(right.total, 1, "the one session started above is counted");
}

#[tokio::test]
async fn counts_reflect_sessions_and_product_views() {
    let day_before = utc_day(SystemTime::now());
    let core = operator_core().await;
    let channel = core.channel().await;

    let first = start_session(&channel, "printer-1").await;
    let second = start_session(&channel, "printer-2").await;
    let product = some_product(&channel, &first).await;
    view(&channel, &first, &product).await;
    view(&channel, &first, &product).await;
    close(&channel, &second).await;

    let grouped = count(&channel, query(&[], &[Group::Kind])).await.expect("count by kind");
    let expected = BTreeMap::from([(Kind::SessionStarted, 2), (Kind::SessionClosed, 1), (Kind::ProductViewed, 2)]);
    assert_eq!(by_kind(&grouped), expected, "rows: {:?}", grouped.counts);
    assert_eq!(grouped.total, 5);
    assert!(grouped.counts.iter().all(|row| row.product_id.is_empty() && row.day.is_empty()), "{grouped:?}");

    let products = count(&channel, query(&[], &[Group::Product])).await.expect("count by product");
    let viewed: Vec<_> = products.counts.iter().filter(|row| !row.product_id.is_empty()).collect();
    assert_eq!(viewed.len(), 1, "only one product has events: {products:?}");
    assert_eq!((viewed[0].product_id.as_str(), viewed[0].count), (product.as_str(), 2));
    assert_eq!(products.total, 5);

    let only_views = count(&channel, query(&[Kind::ProductViewed], &[Group::Product])).await.expect("filtered count");
    assert_eq!(only_views.counts.len(), 1, "{only_views:?}");
    assert_eq!((only_views.counts[0].product_id.as_str(), only_views.total), (product.as_str(), 2));

    let days = count(&channel, query(&[], &[Group::Day])).await.expect("count by day");
    let day_after = utc_day(SystemTime::now());
    assert!(!days.counts.is_empty(), "{days:?}");
    for row in &days.counts {
        assert!(row.day == day_before || row.day == day_after, "events happened today (UTC), not {:?}", row.day);
    }
    assert_eq!(days.total, 5);

    let lifecycle = count(&channel, query(&[Kind::SessionStarted, Kind::SessionClosed], &[])).await.expect("kinds");
    assert_eq!(lifecycle.total, 3, "2 started + 1 closed: {lifecycle:?}");

    let now = SystemTime::now();
    let hour = Duration::from_secs(3600);
    let window = |start: SystemTime, end: SystemTime| pb::CountUsageEventsRequest {
        start_time: Some(start.into()),
        end_time: Some(end.into()),
        ..Default::default()
    };
    let around_now = count(&channel, window(now - hour, now + hour)).await.expect("window around now");
    assert_eq!(around_now.total, 5, "a window around now holds every event");
    let later = count(&channel, window(now + hour, now + 2 * hour)).await.expect("window after now");
    assert_eq!(later.total, 0, "no events in the future");
    let earlier = count(&channel, window(now - 2 * hour, now - hour)).await.expect("window before now");
    assert_eq!(earlier.total, 0, "no events an hour ago");
    let open_start = pb::CountUsageEventsRequest { end_time: Some((now - hour).into()), ..Default::default() };
    assert_eq!(count(&channel, open_start).await.expect("open start").total, 0, "nothing before an hour ago");
}

#[tokio::test]
async fn invalid_usage_queries_name_the_field() {
    let core = operator_core().await;
    let channel = core.channel().await;
    let now = SystemTime::now();

    let backwards = pb::CountUsageEventsRequest {
        start_time: Some(now.into()),
        end_time: Some((now - Duration::from_secs(60)).into()),
        ..Default::default()
    };
    assert_status(count(&channel, backwards).await, Code::InvalidArgument, "end_time");

    assert_status(count(&channel, query(&[Kind::Unspecified], &[])).await, Code::InvalidArgument, "kinds");
    let unknown_kind = pb::CountUsageEventsRequest { kinds: vec![999], ..Default::default() };
    assert_status(count(&channel, unknown_kind).await, Code::InvalidArgument, "kinds");
    assert_status(count(&channel, query(&[], &[Group::Unspecified])).await, Code::InvalidArgument, "group_by");
}

#[tokio::test]
async fn operators_can_sign_in_with_a_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("podconnect internal callers");
    let ca_file = dir.path().join("ca.pem");
    ca.write(&ca_file);
    let core = TestCore::builder()
        .client_certificates(&ca_file, "optional")
        .operator_cert_name("ops-console")
        .spawn()
        .await
        .expect("the core starts");
    start_session(&core.channel().await, "cert-printer").await;

    let ops = ca.client("ops-console");
    let ops_channel = core.channel_with(Some((&ops.cert_pem, &ops.key_pem))).await.expect("ops-console connects");
    let counts = usage(&ops_channel)
        .count_usage_events(query(&[], &[Group::Kind]))
        .await
        .expect("an operator certificate needs no token")
        .into_inner();
    assert_eq!(by_kind(&counts), BTreeMap::from([(Kind::SessionStarted, 1)]));

    let weblet = ca.client("weblet-gateway");
    let weblet_channel = core.channel_with(Some((&weblet.cert_pem, &weblet.key_pem))).await.expect("weblet connects");
    let refused = usage(&weblet_channel).count_usage_events(query(&[], &[])).await.map(tonic::Response::into_inner);
    // A valid certificate that names no operator: known caller, not allowed (session.proto).
    assert_status(refused, Code::PermissionDenied, "operator");
}

#[tokio::test]
async fn usage_events_hold_no_personal_data_and_survive_a_restart() {
    const DEVICE: &str = "mfd-secret-device-42";
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let core =
        TestCore::builder().operator_token(OPERATOR_TOKEN).data_dir(&data_dir).spawn().await.expect("the core starts");
    let channel = core.channel().await;
    let token = start_session(&channel, DEVICE).await;
    let product = some_product(&channel, &token).await;
    view(&channel, &token, &product).await;
    close(&channel, &token).await;
    // No count before stopping: the events must reach the database on a graceful shutdown.
    assert_eq!(core.terminate().await.expect("the core stops"), Some(0));

    let token_hash = Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect::<String>();
    let mut inspected = 0;
    for name in ["podconnect.db", "podconnect.db-wal"] {
        let path = data_dir.join(name);
        let Ok(bytes) = std::fs::read(&path) else { continue };
        inspected += 1;
        for secret in [DEVICE, token.as_str(), token_hash.as_str()] {
            assert!(
                !bytes.windows(secret.len()).any(|window| window == secret.as_bytes()),
                "{} must not contain {secret:?}",
                path.display()
            );
        }
    }
    assert!(inspected > 0, "the database file exists in {}", data_dir.display());

    let restarted = TestCore::builder()
        .operator_token(OPERATOR_TOKEN)
        .data_dir(&data_dir)
        .spawn()
        .await
        .expect("the core restarts");
    let counts = count(&restarted.channel().await, query(&[], &[Group::Kind])).await.expect("count after restart");
    let expected = BTreeMap::from([(Kind::SessionStarted, 1), (Kind::SessionClosed, 1), (Kind::ProductViewed, 1)]);
    assert_eq!(by_kind(&counts), expected, "events persist across a restart");
}

// The tests below pin details of the documented contract (proto/podconnect/v1/usage.proto).

#[tokio::test]
async fn ungrouped_counts_carry_only_a_total() {
    let core = operator_core().await;
    let channel = core.channel().await;
    start_session(&channel, "printer-1").await;
    let ungrouped = count(&channel, query(&[], &[])).await.expect("count without grouping");
    assert_eq!(ungrouped.total, 1);
    // usage.proto, CountUsageEventsRequest.group_by: "Empty = no grouping: `counts` is empty and
    // only `total` is set."
    assert!(ungrouped.counts.is_empty(), "no grouping means no rows, only a total: {ungrouped:?}");
}

#[tokio::test]
async fn grouped_rows_follow_the_documented_order() {
    let core = operator_core().await;
    let channel = core.channel().await;
    let first = start_session(&channel, "printer-1").await;
    let second = start_session(&channel, "printer-2").await;
    let product = some_product(&channel, &first).await;
    view(&channel, &first, &product).await;
    close(&channel, &second).await;

    // usage.proto, CountUsageEventsResponse.counts: "ordered by the keys in the order of
    // `group_by` (kind by enum number, the others by their text)".
    let kinds = count(&channel, query(&[], &[Group::Kind])).await.expect("count by kind");
    let order: Vec<i32> = kinds.counts.iter().map(|row| row.kind).collect();
    let expected = vec![Kind::SessionStarted as i32, Kind::SessionClosed as i32, Kind::ProductViewed as i32];
    assert_eq!(order, expected, "rows by kind must come in enum order: {kinds:?}");

    let product_then_kind = count(&channel, query(&[], &[Group::Product, Group::Kind])).await.expect("count");
    let keys: Vec<(String, i32)> =
        product_then_kind.counts.iter().map(|row| (row.product_id.clone(), row.kind)).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "rows must be ordered by product first, then kind: {product_then_kind:?}");
}

#[tokio::test]
async fn an_empty_time_range_is_refused() {
    let core = operator_core().await;
    let channel = core.channel().await;
    let now = SystemTime::now();
    // usage.proto, CountUsageEvents errors: "INVALID_ARGUMENT: `start_time` is not before
    // `end_time` (when both are set)".
    let empty =
        pb::CountUsageEventsRequest { start_time: Some(now.into()), end_time: Some(now.into()), ..Default::default() };
    assert_status(count(&channel, empty).await, Code::InvalidArgument, "start_time");
}

#[tokio::test]
async fn sessions_ended_by_their_idle_limit_count_as_closed() {
    let core = TestCore::builder()
        .operator_token(OPERATOR_TOKEN)
        .session_idle(Duration::from_secs(1))
        .in_process()
        .await
        .expect("the core starts");
    let channel = core.channel().await;
    let token = start_session(&channel, "idle-printer").await;
    core.clock().advance(Duration::from_millis(1500));
    let expired = catalog(&channel).list_categories(authed(&token, pb::ListCategoriesRequest {})).await;
    assert_eq!(expired.expect_err("the session has expired").code(), Code::Unauthenticated);

    // usage.proto, USAGE_EVENT_KIND_SESSION_CLOSED: "A session ended (CloseSession, or its idle
    // or absolute limit)."
    let closed = count(&channel, query(&[Kind::SessionClosed], &[])).await.expect("count");
    assert_eq!(closed.total, 1, "a session that ran into its idle limit has ended: {closed:?}");
}
