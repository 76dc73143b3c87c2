//! The `podconnect-client` library against real cores: TLS and mutual TLS, operator calls refused
//! without the operator's certificate, the session token following Login's rotation, retries
//! only for idempotent reads (counted at a relay and in the core's usage events), and a job's
//! watch stream resumed across a dropped connection and ended clearly by a restarted core.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt as _;
use podconnect_client::{
    Client, Code, Document, Grouping, Job, JobState, PrintOptions, ProductQuery, RetryPolicy, Secret, UsageKind,
    UsageQuery,
};
use tests::client::{ANA, VALID_CARD};
use tests::core::TestCore;
use tests::pki::TestCa;
use tests::proxy::TcpProxy;

const OPERATOR_TOKEN: &str = "client-lib-e2e-operator-token-5c1d8e0f7a2b4963";

/// A client of `core` trusting its development CA, through `addr` when given.
fn client_for(core: &TestCore, addr: Option<std::net::SocketAddr>) -> podconnect_client::ClientBuilder {
    let addr = addr.unwrap_or(core.addr);
    Client::builder(&format!("https://{addr}")).ca_file(core.dev_ca.as_ref().expect("the development CA"))
}

/// Retries that finish quickly, so the tests wait little.
fn quick_retries() -> RetryPolicy {
    RetryPolicy { max_attempts: 4, initial_backoff: Duration::from_millis(20), max_backoff: Duration::from_millis(100) }
}

/// How many events of `kind` the core counted.
async fn events(core: &TestCore, kind: UsageKind) -> i64 {
    let operator = client_for(core, None).operator_token(Secret::new(OPERATOR_TOKEN)).connect().await.unwrap();
    let query = UsageQuery { kinds: vec![kind], ..UsageQuery::default() };
    operator.count_usage(&query).await.expect("the operator counts").total
}

/// The usage events are written in batches off the request path: wait until `kind` reaches `n`
/// (or show what it stayed at).
async fn wait_for_events(core: &TestCore, kind: UsageKind, n: i64) {
    tests::wait::eventually(&format!("{n} {kind:?} events"), Duration::from_secs(10), || async {
        let seen = events(core, kind).await;
        if seen == n { Ok(()) } else { Err(seen) }
    })
    .await;
}

/// Starts a session on the lobby MFD and prints the static fire-action notice there; the job.
async fn fire_notice_printing(client: &Client) -> Job {
    client.start_session("mfd-lobby").await.unwrap();
    let draft = client.create_draft("fire-action-notice", 0, &BTreeMap::new()).await.unwrap().draft;
    client.finalize_draft(&draft.id).await.unwrap();
    client.submit_job(&Document::Draft(draft.id), &PrintOptions::default()).await.unwrap().job
}

fn card_values() -> BTreeMap<String, String> {
    VALID_CARD.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[tokio::test]
async fn a_shopper_browses_customizes_and_prints_over_tls() {
    let core = TestCore::start().await;
    let client = client_for(&core, None).connect().await.expect("TLS with the development CA");
    assert!(client.health().await.unwrap(), "the core serves");
    client.start_session("mfd-lobby").await.unwrap();

    let categories = client.list_categories().await.unwrap();
    assert!(categories.iter().any(|c| c.id == "business-cards"), "{categories:?}");
    let page = client
        .list_products(&ProductQuery { category_id: Some("business-cards".into()), page_size: 1, ..Default::default() })
        .await
        .unwrap();
    assert_eq!(page.products.len(), 1);
    assert!(page.next_page_token.is_some() && page.total_size > 1, "{page:?}");
    let product = client.get_product("classic-business-card").await.unwrap();
    assert!(product.price.is_some_and(|p| p.display().ends_with(&p.currency_code)));

    let mut values = card_values();
    values.insert("company".into(), "x".repeat(300));
    let draft = client.create_draft("classic-business-card", 0, &values).await.unwrap();
    assert!(
        draft.field_errors.iter().any(|e| e.field_id.as_deref() == Some("company")),
        "the long company name is an error on its field: {:?}",
        draft.field_errors
    );
    let change = podconnect_client::DraftChange {
        values: BTreeMap::from([("company".to_string(), "Keller Architects".to_string())]),
        ..Default::default()
    };
    let fixed = client.update_draft(&draft.draft.id, &change).await.unwrap();
    assert!(fixed.field_errors.is_empty(), "{:?}", fixed.field_errors);
    let previews = client.render_preview(&draft.draft.id, 400, &[]).await.unwrap();
    assert!(previews.iter().all(|p| p.content_type == "image/png" && p.data.starts_with(b"\x89PNG")));
    let (file, finalized) = client.finalize_draft(&draft.draft.id).await.unwrap();
    assert_eq!(finalized.state, podconnect_client::DraftState::Finalized);
    assert_eq!(file.sha256.len(), 64);

    let job = client.submit_job(&Document::File(file.file_id), &PrintOptions { copies: 1, ..Default::default() }).await;
    let states: Vec<Job> = client.watch_job(&job.unwrap().job.id).map(|s| s.unwrap()).collect().await;
    assert_eq!(states.last().map(|j| j.state), Some(JobState::Completed), "{states:?}");

    client.close_session().await.unwrap();
    let error = client.list_categories().await.unwrap_err();
    assert_eq!(error.code(), Code::FailedPrecondition, "no session left on the client: {error}");
}

#[tokio::test]
async fn a_client_that_trusts_another_ca_does_not_connect() {
    let core = TestCore::start().await;
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other-ca.pem");
    TestCa::new("someone else").write(&other);
    let error = Client::builder(&format!("https://{}", core.addr)).ca_file(&other).connect().await.unwrap_err();
    assert_eq!(error.code(), Code::Unavailable, "{error}");
    assert!(error.to_string().contains("certificate"), "the reason is the certificate: {error}");
    // The system's roots do not include the development CA either.
    let error = Client::builder(&format!("https://{}", core.addr)).system_roots().connect().await.unwrap_err();
    assert_eq!(error.code(), Code::Unavailable, "{error}");
}

#[tokio::test]
async fn operator_calls_need_the_operator_certificate_over_mutual_tls() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("podconnect internal callers");
    let ca_file = dir.path().join("callers-ca.pem");
    ca.write(&ca_file);
    let write_pair = |name: &str| {
        let cert = ca.client(name);
        let (cert_file, key_file) = (dir.path().join(format!("{name}.pem")), dir.path().join(format!("{name}.key")));
        std::fs::write(&cert_file, cert.cert_pem).unwrap();
        std::fs::write(&key_file, cert.key_pem).unwrap();
        (cert_file, key_file)
    };
    let (reporter_cert, reporter_key) = write_pair("usage-reporter");
    let (kiosk_cert, kiosk_key) = write_pair("kiosk");
    let core = TestCore::builder()
        .client_certificates(&ca_file, "optional")
        .operator_cert_name("usage-reporter")
        .spawn()
        .await
        .unwrap();

    let reporter = client_for(&core, None).client_certificate(&reporter_cert, &reporter_key).connect().await.unwrap();
    let query = UsageQuery { group_by: vec![Grouping::Kind], ..Default::default() };
    reporter.count_usage(&query).await.expect("the operator certificate counts usage");
    assert!(reporter.list_devices().await.is_ok(), "and manages devices");

    let anonymous = client_for(&core, None).connect().await.unwrap();
    let error = anonymous.count_usage(&query).await.unwrap_err();
    assert_eq!(error.code(), Code::Unauthenticated, "no credential: {error}");

    let kiosk = client_for(&core, None).client_certificate(&kiosk_cert, &kiosk_key).connect().await.unwrap();
    let error = kiosk.count_usage(&query).await.unwrap_err();
    assert_eq!(error.code(), Code::PermissionDenied, "a certificate that names no operator: {error}");
    kiosk.start_session("mfd-lobby").await.expect("but it may start sessions");
    assert_eq!(kiosk.list_devices().await.unwrap_err().code(), Code::PermissionDenied, "a session is no operator");
}

#[tokio::test]
async fn login_rotates_the_token_and_the_client_follows() {
    let core = TestCore::start().await;
    let client = client_for(&core, None).connect().await.unwrap();
    client.start_session("mfd-lobby").await.unwrap();
    let before = client.session_token().unwrap();

    let (name, _) = client.login(ANA.0, &Secret::new(ANA.1), false).await.unwrap();
    assert_eq!(name, ANA.2);
    let after = client.session_token().unwrap();
    assert_ne!(before, after, "Login hands out a new token");
    client.list_categories().await.expect("the client uses the new token");

    let stale = client_for(&core, None).connect().await.unwrap();
    stale.set_session_token(before);
    assert_eq!(stale.list_categories().await.unwrap_err().code(), Code::Unauthenticated, "the old token is gone");

    let error = client.login(ANA.0, &Secret::new("not-her-password"), false).await.unwrap_err();
    assert_eq!(error.code(), Code::PermissionDenied);
    assert!(!format!("{error:?}{error}").contains("not-her-password"), "no password in errors");
    assert!(!format!("{client:?}").contains(after.expose()), "no token in Debug");
}

#[tokio::test]
async fn only_idempotent_reads_are_retried_when_the_core_is_unreachable() {
    let core = TestCore::builder().operator_token(OPERATOR_TOKEN).spawn().await.unwrap();
    let proxy = TcpProxy::start(core.addr).await.unwrap();
    let setup = client_for(&core, None).connect().await.unwrap();
    setup.start_session("mfd-lobby").await.unwrap();
    let token = setup.session_token().unwrap();
    let draft = setup.create_draft("fire-action-notice", 0, &BTreeMap::new()).await.unwrap().draft;
    setup.finalize_draft(&draft.id).await.unwrap();
    let viewed_before = events(&core, UsageKind::ProductViewed).await;
    let created_before = events(&core, UsageKind::DraftCreated).await;

    // A fresh client through the relay, which turns away its first two connections.
    let through_relay = || {
        let client = client_for(&core, Some(proxy.addr)).retry_policy(quick_retries()).connect_lazy().unwrap();
        client.set_session_token(token.clone());
        client
    };
    proxy.refuse_next(2);
    let product = through_relay().get_product("classic-business-card").await.expect("the read is retried");
    assert_eq!(product.id, "classic-business-card");
    assert_eq!(proxy.refused(), 2, "two attempts were turned away before the third got through");
    wait_for_events(&core, UsageKind::ProductViewed, viewed_before + 1).await;

    // Calls that change something go out once, whatever happens.
    proxy.refuse_next(2);
    let error = through_relay().create_draft("fire-action-notice", 0, &BTreeMap::new()).await.unwrap_err();
    assert_eq!(error.code(), Code::Unavailable, "{error}");
    assert_eq!(proxy.refused(), 3, "CreateDraft was sent once and not repeated");
    proxy.refuse_next(2);
    let error =
        through_relay().submit_job(&Document::Draft(draft.id.clone()), &PrintOptions::default()).await.unwrap_err();
    assert_eq!(error.code(), Code::Unavailable, "{error}");
    assert_eq!(proxy.refused(), 4, "SubmitJob was sent once and not repeated");
    proxy.refuse_next(2);
    let error = through_relay().login(ANA.0, &Secret::new(ANA.1), false).await.unwrap_err();
    assert_eq!(error.code(), Code::Unavailable, "{error}");
    assert_eq!(proxy.refused(), 5, "Login was sent once and not repeated");
    proxy.refuse_next(0);

    // The core saw none of them: no draft was created and the session still has its token.
    assert_eq!(events(&core, UsageKind::DraftCreated).await, created_before);
    through_relay().list_categories().await.expect("the session's token was not rotated");
}

#[tokio::test]
async fn a_watch_resumes_after_the_connection_drops_and_repeats_no_state() {
    let core = TestCore::builder().spool_print_time(Duration::from_secs(2)).spawn().await.unwrap();
    let proxy = TcpProxy::start(core.addr).await.unwrap();
    let client = client_for(&core, Some(proxy.addr)).retry_policy(quick_retries()).connect().await.unwrap();
    let job = fire_notice_printing(&client).await;

    let mut watch = client.watch_job(&job.id);
    let first = watch.next().await.expect("a first state").unwrap();
    assert!(!first.state.is_terminal(), "the spool printer takes a while: {first:?}");
    let connections = proxy.accepted();
    proxy.cut();
    let mut states = vec![first];
    while let Some(state) = watch.next().await {
        states.push(state.expect("the watch bridges the dropped connection"));
    }
    assert!(proxy.accepted() > connections, "the watch connected again");
    assert_eq!(states.last().unwrap().state, JobState::Completed, "{states:?}");
    for pair in states.windows(2) {
        assert!(!pair[0].same_moment(&pair[1]), "a state came twice: {states:?}");
    }
}

/// Starts a core from `builder` behind a TCP relay, prints the fire-action notice, reads the
/// watch's first state, then restarts the core on the same options (and, behind the relay, the
/// same address): the watch, the new core, and the relay the watch goes through.
async fn watch_across_a_restart(
    builder: tests::core::CoreBuilder,
) -> (podconnect_client::JobWatch, TestCore, TcpProxy) {
    let builder = builder.operator_token(OPERATOR_TOKEN).shutdown_grace(Duration::from_millis(300));
    let first_core = builder.clone().spawn().await.unwrap();
    let proxy = TcpProxy::start(first_core.addr).await.unwrap();
    let client = client_for(&first_core, Some(proxy.addr))
        .retry_policy(RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(250),
        })
        .watch_resumes(200)
        .connect()
        .await
        .unwrap();
    let job = fire_notice_printing(&client).await;
    let mut watch = client.watch_job(&job.id);
    let first = watch.next().await.expect("a first state").unwrap();
    assert!(!first.state.is_terminal(), "{first:?}");
    first_core.terminate().await.unwrap();
    let second_core = builder.spawn().await.unwrap();
    proxy.set_target(second_core.addr);
    (watch, second_core, proxy)
}

#[tokio::test]
async fn a_watch_across_a_restarted_core_ends_with_the_reason() {
    let data = tempfile::tempdir().unwrap();
    let builder = TestCore::builder().data_dir(data.path()).spool_print_time(Duration::from_secs(30));
    let (mut watch, second_core, _proxy) = watch_across_a_restart(builder).await;

    // Sessions live in the ephemeral store, which a restart empties: the resumed watch reaches
    // the new core and ends with its answer instead of hanging. An update the first core sent
    // before it stopped (the job starting to print) may still arrive first; it is never an end
    // state, and the library never repeats one.
    let mut rest = Vec::new();
    while let Some(item) = watch.next().await {
        rest.push(item);
    }
    let (error, updates) = match rest.split_last() {
        Some((Err(error), updates)) => (error, updates),
        _ => panic!("expected the watch to end with an error after the restart, got {rest:?}"),
    };
    assert_eq!(error.code(), Code::Unauthenticated, "{error}");
    let states: Vec<JobState> =
        updates.iter().map(|u| u.as_ref().expect("only the last item is an error").state).collect();
    assert!(states.len() <= 1 && states.iter().all(|s| !s.is_terminal()), "{states:?}");
    // The new core reported the job it found interrupted as ended.
    wait_for_events(&second_core, UsageKind::JobEnded, 1).await;
}

#[tokio::test]
async fn a_watch_resumes_across_a_restarted_core_on_redis_and_sees_the_job_end() {
    let redis = tests::redis::RedisServer::start().await.unwrap();
    let data = tempfile::tempdir().unwrap();
    // The same data folder (its session key) and the same Redis: the session, its job and the
    // job's lease outlive the process; the new core takes the job over.
    let builder = TestCore::builder()
        .data_dir(data.path())
        .ephemeral_store(&redis.url())
        .spool_print_time(Duration::from_secs(3))
        .job_lease(Duration::from_secs(1));
    let (mut watch, second_core, _proxy) = watch_across_a_restart(builder).await;

    let mut rest = Vec::new();
    while let Some(item) = watch.next().await {
        rest.push(item.expect("the resumed watch goes on without an error"));
    }
    assert_eq!(rest.last().map(|job| job.state), Some(JobState::Completed), "{rest:?}");
    // Counted once, by the instance that ended it.
    wait_for_events(&second_core, UsageKind::JobEnded, 1).await;
}

#[tokio::test]
async fn each_kind_of_call_goes_out_with_its_own_deadline() {
    let core = TestCore::builder().spawn().await.unwrap();
    // Renders get no time at all; everything else keeps the defaults.
    let deadlines = podconnect_client::Deadlines { render: Duration::from_micros(1), ..Default::default() };
    let client = client_for(&core, None).deadlines(deadlines).connect().await.unwrap();
    client.start_session("mfd-lobby").await.expect("a change within the write deadline");
    let product = client.get_product("classic-business-card").await.expect("a read within the read deadline");
    let card: BTreeMap<String, String> = VALID_CARD.iter().map(|&(k, v)| (k.into(), v.into())).collect();
    let draft = client.create_draft(&product.id, 0, &card).await.unwrap().draft;
    let late = client.render_preview(&draft.id, 400, &[]).await.expect_err("no time to render");
    assert!(matches!(late.code(), Code::DeadlineExceeded | Code::Cancelled), "{late}");
    // The same preview with the default render deadline works.
    let patient = client_for(&core, None).connect().await.unwrap();
    patient.start_session("mfd-lobby").await.unwrap();
    let draft = patient.create_draft(&product.id, 0, &card).await.unwrap().draft;
    assert!(!patient.render_preview(&draft.id, 400, &[]).await.unwrap().is_empty());
}
