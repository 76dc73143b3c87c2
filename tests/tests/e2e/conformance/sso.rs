//! SessionService.Login/Logout and SsoService as session.proto and sso.proto document them, against
//! the real core: login rotates the token and changes what the shopper sees, failed logins are
//! limited, a device user who chose "remember me" is signed in on the next launch with nothing
//! typed, and stored credentials that no longer work are deleted with a reason, never a crash.
//! What is kept on disk holds no credential.

use std::path::Path;

use proto::v1 as pb;
use tests::client::{ANA, BEN, authed, catalog, sessions, sso};
use tests::core::TestCore;
use tonic::transport::Channel;
use tonic::{Code, Status};

const DEVICE: &str = "mfd-1";

async fn start(channel: &Channel, device: &str, assertion: &str) -> pb::StartSessionResponse {
    sessions(channel)
        .start_session(pb::StartSessionRequest {
            device_id: device.into(),
            device_user_assertion: assertion.into(),
            ..Default::default()
        })
        .await
        .expect("StartSession succeeds")
        .into_inner()
}

async fn login(
    channel: &Channel,
    token: &str,
    (username, password, _): (&str, &str, &str),
    remember: bool,
) -> Result<pb::LoginResponse, Status> {
    let request = pb::LoginRequest { username: username.into(), password: password.into(), remember };
    sessions(channel).login(authed(token, request)).await.map(tonic::Response::into_inner)
}

async fn category_ids(channel: &Channel, token: &str) -> Result<Vec<String>, Status> {
    let response = catalog(channel).list_categories(authed(token, pb::ListCategoriesRequest {})).await?;
    Ok(response.into_inner().categories.into_iter().map(|c| c.id).collect())
}

async fn price(channel: &Channel, token: &str, product: &str) -> i64 {
    let request = pb::GetProductRequest { product_id: product.into() };
    let product = catalog(channel).get_product(authed(token, request)).await.unwrap().into_inner().product.unwrap();
    product.price.unwrap().amount_minor
}

#[tokio::test]
async fn login_rotates_the_token_and_gives_the_account_its_own_catalog() {
    let core = TestCore::start().await;
    let channel = core.channel().await;
    let anonymous = start(&channel, DEVICE, "").await.session_token;
    let before = category_ids(&channel, &anonymous).await.unwrap();
    assert!(!before.contains(&"trade-counter".to_owned()), "the trade category is private: {before:?}");
    let retail_price = price(&channel, &anonymous, "open-closed-door-sign").await;
    let hidden = catalog(&channel)
        .get_product(authed(&anonymous, pb::GetProductRequest { product_id: "door-sign-trade-pack".into() }))
        .await
        .unwrap_err();
    assert_eq!(hidden.code(), Code::NotFound, "a private product looks like one that does not exist");

    let logged_in = login(&channel, &anonymous, BEN, false).await.unwrap();
    assert_eq!(logged_in.display_name, BEN.2);
    assert!(!logged_in.remembered, "no remember asked, no device user");
    assert_ne!(logged_in.session_token, anonymous);
    let err = category_ids(&channel, &anonymous).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "the old token stops working at once");

    let token = logged_in.session_token;
    assert!(category_ids(&channel, &token).await.unwrap().contains(&"trade-counter".to_owned()));
    let trade_price = price(&channel, &token, "open-closed-door-sign").await;
    assert_eq!(trade_price, (retail_price * 85 + 50) / 100, "trade customers get 15 % off");

    // Logout: the same token, anonymous again.
    sessions(&channel).logout(authed(&token, pb::LogoutRequest {})).await.unwrap();
    assert!(!category_ids(&channel, &token).await.unwrap().contains(&"trade-counter".to_owned()));
    assert_eq!(price(&channel, &token, "open-closed-door-sign").await, retail_price);
    // Logging out twice is fine.
    sessions(&channel).logout(authed(&token, pb::LogoutRequest {})).await.unwrap();
}

#[tokio::test]
async fn a_draft_made_before_login_is_still_there_after_it() {
    let core = TestCore::start().await;
    let channel = core.channel().await;
    let token = start(&channel, DEVICE, "").await.session_token;
    let mut drafts = proto::v1::customization_service_client::CustomizationServiceClient::new(channel.clone());
    let draft = drafts
        .create_draft(authed(
            &token,
            pb::CreateDraftRequest { product_id: "classic-business-card".into(), ..Default::default() },
        ))
        .await
        .unwrap()
        .into_inner()
        .draft
        .unwrap();
    let new_token = login(&channel, &token, ANA, false).await.unwrap().session_token;
    let unchanged = pb::UpdateDraftRequest { draft_id: draft.id.clone(), ..Default::default() };
    let found = drafts.update_draft(authed(&new_token, unchanged)).await;
    assert_eq!(found.unwrap().into_inner().draft.unwrap().id, draft.id);
}

#[tokio::test]
async fn wrong_credentials_get_one_answer_that_names_neither() {
    let core = TestCore::start().await;
    let channel = core.channel().await;
    let token = start(&channel, DEVICE, "").await.session_token;
    let wrong_password = login(&channel, &token, (ANA.0, "not-her-password", ""), false).await.unwrap_err();
    let unknown_user = login(&channel, &token, ("nobody@example.com", ANA.1, ""), false).await.unwrap_err();
    assert_eq!(wrong_password.code(), Code::PermissionDenied);
    assert_eq!(wrong_password.message(), unknown_user.message(), "the answer never says which was wrong");
    assert!(!wrong_password.message().contains("ana"), "{}", wrong_password.message());
    // A refused login leaves the session as it was.
    category_ids(&channel, &token).await.unwrap();

    for (username, password, field) in [
        ("", "x", "username"),
        ("a", "", "password"),
        (&*"u".repeat(257), "x", "username"),
        ("a", &*"p".repeat(1025), "password"),
    ] {
        let err = login(&channel, &token, (username, password, ""), false).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{field}: {}", err.message());
        assert!(err.message().contains(field), "{}", err.message());
    }
}

#[tokio::test]
async fn failed_logins_are_limited_per_account_and_per_device() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("core.toml");
    std::fs::write(
        &config,
        "[login]\nmax_failures_per_account = 2\nmax_failures_per_device = 3\nfailure_window = \"10m\"\n",
    )
    .unwrap();
    let core = TestCore::builder().config_file(&config).spawn().await.unwrap();
    let channel = core.channel().await;
    let first = start(&channel, "mfd-1", "").await.session_token;
    for _ in 0..2 {
        let err = login(&channel, &first, (ANA.0, "wrong", ""), false).await.unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied);
    }
    // Ana's account is now held, even with the right password and from another printer.
    let elsewhere = start(&channel, "mfd-2", "").await.session_token;
    let held = login(&channel, &elsewhere, ANA, false).await.unwrap_err();
    assert_eq!(held.code(), Code::ResourceExhausted, "{}", held.message());
    assert!(held.message().contains("retry in about"), "says when: {}", held.message());
    // Ben's account is not, but the first printer runs out after one more failure.
    let err = login(&channel, &first, (BEN.0, "wrong", ""), false).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let held = login(&channel, &first, BEN, false).await.unwrap_err();
    assert_eq!(held.code(), Code::ResourceExhausted, "{}", held.message());
    assert!(held.message().contains("printer"), "{}", held.message());
    // The other printer is still free for Ben.
    assert_eq!(login(&channel, &elsewhere, BEN, false).await.unwrap().display_name, BEN.2);
}

const OPERATOR: &str = "signin-e2e-operator-token-0123456789abcdef";

#[tokio::test]
async fn a_remembered_device_user_is_signed_in_on_the_next_launch_until_forgotten() {
    let core = TestCore::builder().operator_token(OPERATOR).spawn().await.unwrap();
    let channel = core.channel().await;
    let assertion = core.device_assertion("employee-4711").await;

    // First launch: nothing stored yet; log in with "remember me".
    let first = start(&channel, DEVICE, &assertion).await;
    assert!(!first.sso_available);
    let logged_in = login(&channel, &first.session_token, ANA, true).await.unwrap();
    assert!(logged_in.remembered);
    sessions(&channel).close_session(authed(&logged_in.session_token, pb::CloseSessionRequest {})).await.unwrap();

    // Second launch: signed in with nothing typed.
    let second = start(&channel, DEVICE, &assertion).await;
    assert!(second.sso_available);
    let key = sso(&channel).get_vault_key(authed(&second.session_token, pb::GetVaultKeyRequest {})).await.unwrap();
    let key = key.into_inner();
    assert!(key.vault_key.len() >= 22 && key.expire_time.is_some());
    let signed_in = sso(&channel)
        .silent_login(authed(&second.session_token, pb::SilentLoginRequest { vault_key: key.vault_key.clone() }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(signed_in.display_name, ANA.2);
    let err = category_ids(&channel, &second.session_token).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "silent login rotates the token too");
    let token = signed_in.session_token;
    category_ids(&channel, &token).await.unwrap();

    // A vault key works once.
    let again = sso(&channel)
        .silent_login(authed(&token, pb::SilentLoginRequest { vault_key: key.vault_key.clone() }))
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::NotFound, "{}", again.message());

    // Forget: deleted once, then there is nothing to delete; the next launch is not signed in.
    let forgot = sso(&channel).forget(authed(&token, pb::ForgetRequest {})).await.unwrap().into_inner();
    assert!(forgot.deleted);
    assert!(!sso(&channel).forget(authed(&token, pb::ForgetRequest {})).await.unwrap().into_inner().deleted);
    category_ids(&channel, &token).await.expect("Forget does not end the login");
    let third = start(&channel, DEVICE, &assertion).await;
    assert!(!third.sso_available);
    let err = sso(&channel).get_vault_key(authed(&third.session_token, pb::GetVaultKeyRequest {})).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    // Another device user never sees Ana's enrollment.
    let other = core.device_assertion("employee-0815").await;
    login(&channel, &start(&channel, DEVICE, &assertion).await.session_token, ANA, true).await.unwrap();
    assert!(!start(&channel, DEVICE, &other).await.sso_available);

    // Usage events say what happened (and, by their schema, nothing about who).
    use pb::UsageEventKind as Kind;
    let request = pb::CountUsageEventsRequest {
        group_by: vec![pb::UsageGrouping::Kind as i32],
        kinds: [Kind::SsoEnrolled, Kind::SsoUsed, Kind::SsoForgotten].map(|k| k as i32).to_vec(),
        ..Default::default()
    };
    let counts = proto::v1::usage_service_client::UsageServiceClient::new(channel.clone())
        .count_usage_events(authed(OPERATOR, request))
        .await
        .unwrap()
        .into_inner();
    let count = |kind: Kind| counts.counts.iter().find(|r| r.kind == kind as i32).map_or(0, |r| r.count);
    assert_eq!((count(Kind::SsoEnrolled), count(Kind::SsoUsed), count(Kind::SsoForgotten)), (2, 1, 1), "{counts:?}");
}

#[tokio::test]
async fn vault_keys_are_bound_to_their_session_and_checked() {
    let core = TestCore::start().await;
    let channel = core.channel().await;
    let assertion = core.device_assertion("employee-1").await;
    let first = start(&channel, DEVICE, &assertion).await;
    login(&channel, &first.session_token, BEN, true).await.unwrap();

    let owner = start(&channel, DEVICE, &assertion).await.session_token;
    let thief = start(&channel, DEVICE, &assertion).await.session_token;
    let key = sso(&channel).get_vault_key(authed(&owner, pb::GetVaultKeyRequest {})).await.unwrap().into_inner();
    let stolen = sso(&channel)
        .silent_login(authed(&thief, pb::SilentLoginRequest { vault_key: key.vault_key.clone() }))
        .await
        .unwrap_err();
    assert_eq!(stolen.code(), Code::NotFound, "a key issued to another session");
    let spent = sso(&channel)
        .silent_login(authed(&owner, pb::SilentLoginRequest { vault_key: key.vault_key }))
        .await
        .unwrap_err();
    assert_eq!(spent.code(), Code::NotFound, "a key tried elsewhere is spent");

    for malformed in ["", "short", &"!".repeat(43)] {
        let err = sso(&channel)
            .silent_login(authed(&owner, pb::SilentLoginRequest { vault_key: malformed.into() }))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{malformed:?}: {}", err.message());
    }
    let unknown = sso(&channel)
        .silent_login(authed(&owner, pb::SilentLoginRequest { vault_key: "A".repeat(43) }))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
}

#[tokio::test]
async fn single_sign_on_needs_a_verified_device_user() {
    let core = TestCore::start().await;
    let channel = core.channel().await;
    let token = start(&channel, DEVICE, "").await.session_token;
    let no_user = |status: Status| {
        assert_eq!(status.code(), Code::FailedPrecondition, "{}", status.message());
        assert!(status.message().contains("device user"), "{}", status.message());
    };
    no_user(sso(&channel).get_vault_key(authed(&token, pb::GetVaultKeyRequest {})).await.unwrap_err());
    no_user(sso(&channel).forget(authed(&token, pb::ForgetRequest {})).await.unwrap_err());
    no_user(sso(&channel).enroll(authed(&token, pb::EnrollRequest::default())).await.unwrap_err());
    // Remember without a device user: the login works, nothing is remembered.
    let logged_in = login(&channel, &token, ANA, true).await.unwrap();
    assert!(!logged_in.remembered);

    for bad in ["not-a-jwt", "a.b.c", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."] {
        let err = sessions(&channel)
            .start_session(pb::StartSessionRequest {
                device_id: DEVICE.into(),
                device_user_assertion: bad.into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated, "{bad}");
        assert!(err.message().contains("without single sign-on"), "actionable: {}", err.message());
    }
}

#[tokio::test]
async fn enroll_stores_explicit_or_current_credentials() {
    let core = TestCore::start().await;
    let channel = core.channel().await;
    let assertion = core.device_assertion("employee-2").await;
    let token = start(&channel, DEVICE, &assertion).await.session_token;

    let not_logged_in = sso(&channel).enroll(authed(&token, pb::EnrollRequest::default())).await.unwrap_err();
    assert_eq!(not_logged_in.code(), Code::FailedPrecondition, "{}", not_logged_in.message());
    let wrong = pb::StorefrontCredentials { username: ANA.0.into(), password: "wrong".into() };
    let refused =
        sso(&channel).enroll(authed(&token, pb::EnrollRequest { credentials: Some(wrong) })).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    let empty = pb::StorefrontCredentials { username: String::new(), password: "x".into() };
    let invalid =
        sso(&channel).enroll(authed(&token, pb::EnrollRequest { credentials: Some(empty) })).await.unwrap_err();
    assert_eq!(invalid.code(), Code::InvalidArgument);

    let explicit = pb::StorefrontCredentials { username: ANA.0.into(), password: ANA.1.into() };
    let enrolled = sso(&channel)
        .enroll(authed(&token, pb::EnrollRequest { credentials: Some(explicit) }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((enrolled.display_name.as_str(), enrolled.replaced), (ANA.2, false));
    category_ids(&channel, &token).await.expect("explicit credentials do not change the session's login");

    // Now the current login (Ben's) replaces Ana's.
    let token = login(&channel, &token, BEN, false).await.unwrap().session_token;
    let replaced = sso(&channel).enroll(authed(&token, pb::EnrollRequest::default())).await.unwrap().into_inner();
    assert_eq!((replaced.display_name.as_str(), replaced.replaced), (BEN.2, true));
    let next = start(&channel, DEVICE, &assertion).await.session_token;
    let key = sso(&channel).get_vault_key(authed(&next, pb::GetVaultKeyRequest {})).await.unwrap().into_inner();
    let signed_in = sso(&channel)
        .silent_login(authed(&next, pb::SilentLoginRequest { vault_key: key.vault_key }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(signed_in.display_name, BEN.2);
}

/// A copy of the sample storefront whose accounts file the test can change.
fn storefront_copy(into: &Path) {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../server/storefront/sample");
    copy_dir(&sample, into);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[tokio::test]
async fn a_changed_password_deletes_the_stored_sign_in_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let (shop, data) = (dir.path().join("shop"), dir.path().join("data"));
    storefront_copy(&shop);
    let core = TestCore::builder().storefront_dir(&shop).data_dir(&data).spawn().await.unwrap();
    let channel = core.channel().await;
    let assertion = core.device_assertion("employee-3").await;
    let token = start(&channel, DEVICE, &assertion).await.session_token;
    assert!(login(&channel, &token, ANA, true).await.unwrap().remembered);
    core.terminate().await.unwrap();

    // Ana changes her password at the shop: the shop's IT puts the new hash, made with the
    // documented `hash-password` command, in place of her old one.
    let new_password = "print-shop-ana-2";
    let hashed = hash_password(new_password).await;
    let accounts = shop.join("accounts.toml");
    let text = std::fs::read_to_string(&accounts).unwrap();
    let ana_hash = text.lines().find(|l| l.starts_with("password_hash")).unwrap().to_owned();
    std::fs::write(&accounts, text.replacen(&ana_hash, &format!("password_hash = \"{hashed}\""), 1)).unwrap();

    let core = TestCore::builder().storefront_dir(&shop).data_dir(&data).spawn().await.unwrap();
    let channel = core.channel().await;
    let started = start(&channel, DEVICE, &assertion).await;
    assert!(started.sso_available);
    let key = sso(&channel).get_vault_key(authed(&started.session_token, pb::GetVaultKeyRequest {})).await.unwrap();
    let err = sso(&channel)
        .silent_login(authed(&started.session_token, pb::SilentLoginRequest { vault_key: key.into_inner().vault_key }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{}", err.message());
    assert!(err.message().contains("log in again"), "tells the person what to do: {}", err.message());
    assert!(!start(&channel, DEVICE, &assertion).await.sso_available, "the unusable entry was deleted");
    // She logs in with her new password (and could be remembered anew).
    let token = start(&channel, DEVICE, &assertion).await.session_token;
    assert!(login(&channel, &token, (ANA.0, new_password, ""), true).await.unwrap().remembered);
}

/// `podconnect-server hash-password` for `password`, as the storefront README tells IT to run it.
async fn hash_password(password: &str) -> String {
    use tokio::io::AsyncWriteExt as _;
    let mut child = tests::process::command(&tests::core::server_binary().unwrap())
        .arg("hash-password")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(format!("{password}\n").as_bytes()).await.unwrap();
    drop(stdin);
    let output = child.wait_with_output().await.unwrap();
    assert!(output.status.success(), "hash-password failed");
    let hash = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    assert!(hash.starts_with("$argon2id$") && !hash.contains(password), "{hash}");
    hash
}

#[tokio::test]
async fn nothing_on_disk_holds_a_credential() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let core = TestCore::builder().data_dir(&data).spawn().await.unwrap();
    let channel = core.channel().await;
    let assertion = core.device_assertion("employee-5").await;
    let token = start(&channel, DEVICE, &assertion).await.session_token;
    assert!(login(&channel, &token, BEN, true).await.unwrap().remembered);
    core.terminate().await.unwrap();

    let files = tests::disk::files_below(&data);
    for (file, bytes) in &files {
        for needle in [BEN.1, BEN.0, "employee-5"] {
            assert!(!tests::disk::holds(bytes, needle), "{} holds {needle:?}", file.display());
        }
    }
    assert!(files.len() >= 2, "the database and the key file were searched");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(data.join("sso-keys.json")).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the key file is the service's alone");
    }
}

#[tokio::test]
async fn operators_rotate_and_rewrap_and_old_entries_stay_readable() {
    let token = OPERATOR;
    let core = TestCore::builder().operator_token(token).spawn().await.unwrap();
    let channel = core.channel().await;
    let assertion = core.device_assertion("employee-6").await;
    let session = start(&channel, DEVICE, &assertion).await.session_token;
    login(&channel, &session, ANA, true).await.unwrap();

    let rotated = sso(&channel).rotate_key(authed(token, pb::RotateKeyRequest {})).await.unwrap().into_inner();
    assert_eq!(rotated.key_version, 2);
    assert!(rotated.create_time.is_some());
    // Ana's entry, sealed under version 1, still opens.
    let next = start(&channel, DEVICE, &assertion).await.session_token;
    let key = sso(&channel).get_vault_key(authed(&next, pb::GetVaultKeyRequest {})).await.unwrap().into_inner();
    let next = sso(&channel)
        .silent_login(authed(&next, pb::SilentLoginRequest { vault_key: key.vault_key }))
        .await
        .unwrap()
        .into_inner()
        .session_token;

    let report = sso(&channel).rewrap(authed(token, pb::RewrapRequest {})).await.unwrap().into_inner();
    assert_eq!((report.key_version, report.rewrapped, report.already_current, report.failed), (2, 1, 0, 0));
    let again = sso(&channel).rewrap(authed(token, pb::RewrapRequest {})).await.unwrap().into_inner();
    assert_eq!((again.rewrapped, again.already_current), (0, 1), "rewrap is idempotent");

    // Sessions are not operators.
    let err = sso(&channel).rotate_key(authed(&next, pb::RotateKeyRequest {})).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
}

#[tokio::test]
async fn a_retired_key_version_ends_the_entries_it_sealed_with_a_reason() {
    let core = TestCore::builder().operator_token(OPERATOR).spawn().await.unwrap();
    let channel = core.channel().await;
    let assertion = core.device_assertion("employee-7").await;
    let session = start(&channel, DEVICE, &assertion).await.session_token;
    login(&channel, &session, BEN, true).await.unwrap();
    sso(&channel).rotate_key(authed(OPERATOR, pb::RotateKeyRequest {})).await.unwrap();

    let set = |version: u32| {
        let request = pb::SetMinDecryptionVersionRequest { min_decryption_version: version };
        let mut client = sso(&channel);
        async move { client.set_min_decryption_version(authed(OPERATOR, request)).await.map(|r| r.into_inner()) }
    };
    for bad in [0, 3] {
        let err = set(bad).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{bad}: {}", err.message());
    }
    // Raised and lowered again, as in Vault: nothing is lost while the version is in the ring.
    assert_eq!(
        set(2).await.unwrap(),
        pb::SetMinDecryptionVersionResponse { key_version: 2, min_decryption_version: 2 }
    );
    set(1).await.unwrap();
    assert!(start(&channel, DEVICE, &assertion).await.sso_available);

    // Retired for real: Ben's entry, still under version 1, can no longer be used.
    set(2).await.unwrap();
    let next = start(&channel, DEVICE, &assertion).await.session_token;
    let key = sso(&channel).get_vault_key(authed(&next, pb::GetVaultKeyRequest {})).await.unwrap().into_inner();
    let err = sso(&channel)
        .silent_login(authed(&next, pb::SilentLoginRequest { vault_key: key.vault_key }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{}", err.message());
    assert!(err.message().contains("log in again"), "{}", err.message());
    assert!(!start(&channel, DEVICE, &assertion).await.sso_available, "deleted");
    // The session is still usable, anonymous.
    category_ids(&channel, &next).await.unwrap();
}
