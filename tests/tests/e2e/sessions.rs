//! Sessions as the security guide promises them: a token from StartSession is needed for every
//! app call, it stops working when closed or expired, closing deletes everything the session had,
//! and one session never reaches another's data.

use std::time::Duration;

use proto::v1 as pb;
use server::domain::ephemeral::EphemeralStore as _;
use tests::client::{authed, catalog, sessions, start_session};
use tests::core::TestCore;
use tonic::metadata::MetadataValue;
use tonic::{Code, Request};

fn list_categories(token: Option<&str>) -> Request<pb::ListCategoriesRequest> {
    match token {
        Some(token) => authed(token, pb::ListCategoriesRequest {}),
        None => Request::new(pb::ListCategoriesRequest {}),
    }
}

async fn expect_unauthenticated(
    channel: &tonic::transport::Channel,
    request: Request<pb::ListCategoriesRequest>,
) -> String {
    let err = catalog(channel).list_categories(request).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{}", err.message());
    assert!(
        err.message().contains("StartSession") || err.message().contains("Bearer"),
        "actionable: {}",
        err.message()
    );
    err.message().to_owned()
}

#[tokio::test]
async fn every_unauthenticated_case_is_refused() {
    let core = TestCore::start().await;
    let channel = core.channel().await;

    // Missing header.
    expect_unauthenticated(&channel, list_categories(None)).await;

    // Wrong scheme and an empty bearer.
    for header in ["Basic dXNlcjpwYXNz", "Bearer ", "token-without-scheme"] {
        let mut request = list_categories(None);
        request.metadata_mut().insert("authorization", MetadataValue::try_from(header).unwrap());
        expect_unauthenticated(&channel, request).await;
    }

    // Malformed and well-formed-but-unknown tokens.
    expect_unauthenticated(&channel, list_categories(Some("short"))).await;
    let unknown = "A".repeat(43);
    expect_unauthenticated(&channel, list_categories(Some(&unknown))).await;

    // A real token works, then stops working once closed.
    let token = start_session(&channel, "mfd-1").await;
    catalog(&channel).list_categories(list_categories(Some(&token))).await.unwrap();
    sessions(&channel).close_session(authed(&token, pb::CloseSessionRequest {})).await.unwrap();
    expect_unauthenticated(&channel, list_categories(Some(&token))).await;
    let err = sessions(&channel).close_session(authed(&token, pb::CloseSessionRequest {})).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);

    // StartSession itself needs no token but checks its input.
    let err = sessions(&channel)
        .start_session(pb::StartSessionRequest { device_id: "bad id!".into(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("device_id"));
}

#[tokio::test]
async fn idle_and_absolute_limits_end_sessions() {
    let core = TestCore::builder()
        .session_idle(Duration::from_secs(600))
        .session_absolute(Duration::from_secs(1800))
        .in_process()
        .await
        .unwrap();
    let channel = core.channel().await;
    let minutes = |n: u64| Duration::from_secs(60 * n);

    let started = sessions(&channel)
        .start_session(pb::StartSessionRequest { device_id: "mfd-1".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(started.idle_timeout.unwrap().seconds, 600);
    let expire = started.expire_time.unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    assert!((expire.seconds - now - 1800).abs() <= 2, "expire_time is the absolute limit");

    // Absolute: a call every 9 minutes keeps it past the 10-minute idle limit three times over,
    // but it still ends at the 30-minute absolute limit.
    let busy = started.session_token;
    for _ in 0..3 {
        core.clock().advance(minutes(9));
        catalog(&channel).list_categories(list_categories(Some(&busy))).await.expect("activity keeps it open");
    }
    core.clock().advance(minutes(4));
    let message = expect_unauthenticated(&channel, list_categories(Some(&busy))).await;
    assert!(message.contains("expired"), "{message}");

    // Idle: untouched for longer than the idle limit.
    let idle = start_session(&channel, "mfd-1").await;
    catalog(&channel).list_categories(list_categories(Some(&idle))).await.unwrap();
    core.clock().advance(minutes(9));
    catalog(&channel).list_categories(list_categories(Some(&idle))).await.expect("not idle for 10 minutes yet");
    core.clock().advance(minutes(10));
    let message = expect_unauthenticated(&channel, list_categories(Some(&idle))).await;
    assert!(message.contains("expired"), "{message}");
}

#[tokio::test]
async fn close_session_leaves_nothing_in_the_ephemeral_store() {
    let core = TestCore::builder().in_process().await.unwrap();
    let channel = core.channel().await;
    let store = core.store();

    let keep = start_session(&channel, "mfd-1").await;
    let before = store.scopes().await.unwrap();
    let names_before = store.names("session-tokens").await.unwrap();

    let token = start_session(&channel, "mfd-2").await;
    let names_with = store.names("session-tokens").await.unwrap();
    assert_eq!(names_with.len(), names_before.len() + 1);
    // The store keeps the token's SHA-256, never the token.
    let hash = sha_hex(&token);
    assert!(names_with.contains(&hash));
    for scope in store.scopes().await.unwrap() {
        for name in store.names(&scope).await.unwrap() {
            assert!(!name.contains(&token) && !scope.contains(&token));
            let value = store.get(&scope, &name).await.unwrap().unwrap_or_default();
            assert!(!value.windows(token.len()).any(|w| w == token.as_bytes()), "token stored in clear");
        }
    }

    sessions(&channel).close_session(authed(&token, pb::CloseSessionRequest {})).await.unwrap();
    assert_eq!(store.names("session-tokens").await.unwrap(), names_before, "only the closed session's record went");
    assert_eq!(store.scopes().await.unwrap(), before, "no scope of the closed session remains");

    // The other session is untouched.
    catalog(&channel).list_categories(list_categories(Some(&keep))).await.unwrap();
}

#[tokio::test]
async fn one_session_cannot_act_on_another() {
    let core = TestCore::start().await;
    let channel = core.channel().await;
    let a = start_session(&channel, "mfd-1").await;
    let b = start_session(&channel, "mfd-1").await;
    assert_ne!(a, b, "every launch gets its own token");

    // Closing B ends B only.
    sessions(&channel).close_session(authed(&b, pb::CloseSessionRequest {})).await.unwrap();
    catalog(&channel).list_categories(list_categories(Some(&a))).await.unwrap();
    expect_unauthenticated(&channel, list_categories(Some(&b))).await;

    // A token that differs from A's by one character is not A.
    let mut near = a.clone().into_bytes();
    near[10] = if near[10] == b'A' { b'B' } else { b'A' };
    expect_unauthenticated(&channel, list_categories(Some(std::str::from_utf8(&near).unwrap()))).await;
}

fn sha_hex(token: &str) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}
