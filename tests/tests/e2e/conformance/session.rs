//! SessionService as session.proto documents it: StartSession's answer and argument checks, and
//! what CloseSession ends. Login, Logout and single sign-on are in `sso.rs`.

use std::time::{SystemTime, UNIX_EPOCH};

use proto::v1 as pb;
use tonic::Code;

use super::*;

async fn start(conf: &Conf, request: pb::StartSessionRequest) -> Result<pb::StartSessionResponse, tonic::Status> {
    conf.sessions().start_session(request).await.map(tonic::Response::into_inner)
}

fn on(device_id: &str) -> pb::StartSessionRequest {
    pb::StartSessionRequest { device_id: device_id.into(), ..Default::default() }
}

#[tokio::test]
async fn start_session_needs_no_credential_and_says_when_the_session_ends() {
    let conf =
        Conf::with(|b| b.session_idle(Duration::from_secs(420)).session_absolute(Duration::from_secs(7200))).await;
    let started = start(&conf, on(DEVICE)).await.expect("StartSession needs no credential");
    let token = &started.session_token;
    assert!(!token.is_empty() && token.len() <= 256 && token.is_ascii(), "token: {} characters", token.len());
    let idle = started.idle_timeout.expect("idle_timeout is set");
    assert_eq!((idle.seconds, idle.nanos), (7 * 60, 0), "the configured idle limit");
    let expire = started.expire_time.expect("expire_time is set");
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    assert!((expire.seconds - now - 2 * 3600).abs() <= 60, "the absolute limit, 2 h from now: {expire:?}");
    assert!(!started.sso_available, "always false without an assertion");
    // The token works.
    conf.catalog().list_categories(tests::client::authed(token, pb::ListCategoriesRequest {})).await.expect("works");
}

#[tokio::test]
async fn start_session_with_an_empty_device_id_is_invalid_argument() {
    let conf = Conf::start().await;
    expect_status(start(&conf, on("")).await, Code::InvalidArgument, &["device_id"]);
}

#[tokio::test]
async fn start_session_with_a_device_id_over_64_characters_is_invalid_argument() {
    let conf = Conf::start().await;
    start(&conf, on(&"d".repeat(64))).await.expect("64 characters are allowed");
    expect_status(start(&conf, on(&"d".repeat(65))).await, Code::InvalidArgument, &["device_id"]);
}

#[tokio::test]
async fn start_session_with_a_device_id_outside_its_characters_is_invalid_argument() {
    let conf = Conf::start().await;
    start(&conf, on("Mfd_3.floor-2")).await.expect("[A-Za-z0-9._-] is allowed");
    for bad in ["bad id", "mfd/1", "mfé", "mfd:1", "mfd\u{0}"] {
        expect_status(start(&conf, on(bad)).await, Code::InvalidArgument, &["device_id"]);
    }
}

#[tokio::test]
async fn start_session_with_a_malformed_locale_is_invalid_argument() {
    let conf = Conf::start().await;
    let too_long = format!("en-{}", ["abcdefgh"; 8].join("-"));
    for bad in ["not a locale", "de_CH", "x", "en-", "-en", "12-34", "en--US", too_long.as_str()] {
        let request = pb::StartSessionRequest { locale: bad.into(), ..on(DEVICE) };
        expect_status(start(&conf, request).await, Code::InvalidArgument, &["locale"]);
    }
}

#[tokio::test]
async fn start_session_with_a_well_formed_locale_or_none_succeeds() {
    let conf = Conf::start().await;
    for good in ["", "en", "de-CH", "zh-Hant-TW", "sr-Latn-RS", "es-419"] {
        let request = pb::StartSessionRequest { locale: good.into(), ..on(DEVICE) };
        start(&conf, request).await.unwrap_or_else(|s| panic!("{good:?} is well-formed BCP-47: {s:?}"));
    }
}

#[tokio::test]
async fn start_session_with_an_assertion_over_16_kib_is_invalid_argument() {
    let conf = Conf::start().await;
    let request = pb::StartSessionRequest { device_user_assertion: "a".repeat(16 * 1024 + 1), ..on(DEVICE) };
    expect_status(start(&conf, request).await, Code::InvalidArgument, &["device_user_assertion"]);
}

#[tokio::test]
async fn start_session_on_an_unregistered_device_is_not_found_when_registration_is_required() {
    let conf = Conf::bare(|b| b.require_registered_devices()).await;
    expect_status(start(&conf, on("mfd-never-registered")).await, Code::NotFound, &["mfd-never-registered"]);
}

#[tokio::test]
async fn an_open_watch_job_stream_keeps_its_session_alive_past_the_idle_limit() {
    // session.proto, idle_timeout: "Every call counts as activity, and so does an open
    // PrintService.WatchJob stream until its job ends." A second session without a stream is the
    // control: it must have ended when the watched one has not.
    let (builder, spool) = Conf::builder_printing(Duration::from_secs(3600));
    let conf = Conf::from(builder.session_idle(Duration::from_secs(1)), spool).await;
    let idle = conf.new_session().await;
    let (draft, _) = conf.finalized_static().await;
    let job = conf.submit(submit_draft(&draft.id)).await;
    let mut stream =
        conf.print().watch_job(conf.req(pb::WatchJobRequest { job_id: job.id.clone() })).await.unwrap().into_inner();
    stream.message().await.expect("the first message").expect("the job as it is now");
    // Each probe of the control is itself activity, so probe less often than the idle limit.
    let mut probes = 0;
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        let probe = conf.catalog().list_categories(tests::client::authed(&idle, pb::ListCategoriesRequest {})).await;
        if probe.is_err_and(|s| s.code() == Code::Unauthenticated) {
            break;
        }
        probes += 1;
        assert!(probes < 10, "the control session never reached its idle limit");
    }
    let job_now = conf.print().get_job(conf.req(pb::GetJobRequest { job_id: job.id })).await;
    job_now.expect("the session with an open stream is still alive");
}
