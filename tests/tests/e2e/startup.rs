//! Starting and stopping the `podconnect-server` binary: its help, how it refuses bad
//! configuration and broken storefronts (exit code and a message naming the culprit), graceful
//! shutdown on SIGTERM, no secrets in its logs, and configuration files taking effect.

use std::path::{Path, PathBuf};
use std::time::Duration;

use proto::v1 as pb;
use proto::v1::usage_service_client::UsageServiceClient;
use tests::client::{authed, catalog, sessions};
use tests::core::{TestCore, server_binary};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::Command;
use tonic::Code;

/// How long a server that is expected to stop on its own may take.
const EXIT_TIMEOUT: Duration = Duration::from_secs(20);

/// The binary, with no PODCONNECT_* variables inherited from the environment of the test run.
fn server_command() -> Command {
    tests::process::command(&server_binary().expect("the server binary is built"))
}

/// How a run of the binary ended.
#[derive(Debug)]
struct Exit {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs the binary with `args` (on a free loopback port, with a throwaway data folder) until it
/// exits by itself.
async fn run_to_exit(args: &[&str]) -> Exit {
    let data = tempfile::tempdir().unwrap();
    let mut command = server_command();
    command.args(["--listen", "127.0.0.1:0", "--data-dir"]).arg(data.path()).args(args);
    let output = tokio::time::timeout(EXIT_TIMEOUT, command.output())
        .await
        .unwrap_or_else(|_| panic!("podconnect-server {args:?} kept running; it should have refused to start"))
        .expect("the binary runs");
    Exit {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A copy of the sample storefront in `dir` that a test may break.
fn copy_sample_storefront(dir: &Path) -> PathBuf {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), target).unwrap();
            }
        }
    }
    let target = dir.join("storefront");
    copy(&server::config::default_storefront_dir(), &target);
    target
}

#[tokio::test]
async fn help_lists_every_option() {
    let mut command = server_command();
    let output = tokio::time::timeout(EXIT_TIMEOUT, command.arg("--help").output())
        .await
        .expect("--help returns at once")
        .expect("the binary runs");
    assert_eq!(output.status.code(), Some(0), "--help exits 0");
    let help = String::from_utf8_lossy(&output.stdout);
    for flag in [
        "--config",
        "--listen",
        "--data-dir",
        "--tls-cert",
        "--tls-key",
        "--client-ca",
        "--client-auth",
        "--operator-cert-name",
        "--operator-token-file",
        "--insecure-plaintext",
        "--storefront-dir",
        "--session-idle-timeout",
        "--session-absolute-timeout",
        "--database-url",
        "--max-concurrent-calls",
        "--log-format",
        "--log ",
    ] {
        assert!(help.contains(flag), "--help must document {flag}:\n{help}");
    }
    assert!(help.contains("PODCONNECT_OPERATOR_TOKEN"), "--help says where the operator token comes from");
}

#[tokio::test]
async fn configuration_mistakes_stop_the_start_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("core.toml");
    std::fs::write(&config, "[sessions]\nidle_timeout = \"5m\"\nidle_timout = \"5m\"\n").unwrap();
    let unknown_key = run_to_exit(&["--config", config.to_str().unwrap()]).await;
    assert_eq!(unknown_key.code, Some(2), "{unknown_key:?}");
    assert!(unknown_key.stderr.contains("idle_timout"), "stderr must name the unknown key: {unknown_key:?}");
    assert!(unknown_key.stderr.contains("core.toml"), "stderr must name the file: {unknown_key:?}");

    let bad_flag = run_to_exit(&["--session-idle-timeout", "soon"]).await;
    assert!(bad_flag.code.is_some_and(|code| code != 0), "{bad_flag:?}");
    assert!(
        bad_flag.stderr.contains("--session-idle-timeout") && bad_flag.stderr.contains("soon"),
        "stderr must name the flag and the value: {bad_flag:?}"
    );

    std::fs::write(&config, "[sessions]\nabsolute_timeout = \"an hour\"\n").unwrap();
    let bad_file_duration = run_to_exit(&["--config", config.to_str().unwrap()]).await;
    assert_eq!(bad_file_duration.code, Some(2), "{bad_file_duration:?}");
    assert!(
        bad_file_duration.stderr.contains("sessions.absolute_timeout") && bad_file_duration.stderr.contains("10m"),
        "stderr must name the key and show a valid example: {bad_file_duration:?}"
    );

    let no_ca = run_to_exit(&["--client-auth", "required"]).await;
    assert_eq!(no_ca.code, Some(2), "{no_ca:?}");
    assert!(no_ca.stderr.contains("--client-ca"), "stderr must point at --client-ca: {no_ca:?}");
    assert!(no_ca.stdout.is_empty(), "no ready line: {no_ca:?}");
}

#[tokio::test]
async fn a_broken_storefront_stops_the_start_and_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let storefront = copy_sample_storefront(dir.path());
    let product = storefront.join("products/a4-flyer/product.toml");
    let text = std::fs::read_to_string(&product).expect("the sample has an A4 flyer");
    assert!(text.contains("category = \"flyers\""), "the sample product changed; adjust this test");
    std::fs::write(&product, text.replace("category = \"flyers\"", "category = \"no-such-category\"")).unwrap();

    let broken = run_to_exit(&["--storefront-dir", storefront.to_str().unwrap()]).await;
    assert!(broken.code.is_some_and(|code| code != 0), "{broken:?}");
    assert!(broken.stderr.contains(product.to_str().unwrap()), "stderr must name {}: {broken:?}", product.display());
    assert!(broken.stderr.contains("no-such-category"), "stderr must say what is wrong: {broken:?}");
    assert!(broken.stdout.is_empty(), "no ready line: {broken:?}");

    let missing = dir.path().join("no-storefront-here");
    let absent = run_to_exit(&["--storefront-dir", missing.to_str().unwrap()]).await;
    assert!(absent.code.is_some_and(|code| code != 0), "{absent:?}");
    assert!(absent.stderr.contains(missing.to_str().unwrap()), "stderr must name {}: {absent:?}", missing.display());
    assert!(absent.stdout.is_empty(), "no ready line: {absent:?}");
}

#[tokio::test]
async fn standard_output_is_one_ready_line_naming_every_listener() {
    let data = tempfile::tempdir().unwrap();
    let log = data.path().join("stderr.log");
    let mut child = server_command()
        .args(["--listen", "127.0.0.1:0", "--pull-listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path().join("data"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("the binary runs");
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(EXIT_TIMEOUT, stdout.next_line())
        .await
        .expect("the ready line comes")
        .unwrap()
        .expect("a line before the output closes");
    let line: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"));
    let ready = &line["ready"];
    assert_eq!(ready["tls"], true, "{line}");
    assert_eq!(ready["pull_tls"], true, "{line}");
    for listener in ["grpc", "pull"] {
        let addr: std::net::SocketAddr = ready[listener].as_str().and_then(|a| a.parse().ok()).expect(listener);
        tokio::net::TcpStream::connect(addr).await.unwrap_or_else(|err| panic!("{listener} at {addr}: {err}"));
    }
    let ca = ready["dev_ca"].as_str().expect("the development CA's path");
    assert!(Path::new(ca).is_absolute() && Path::new(ca).exists(), "{ca}");
    assert!(std::fs::read_to_string(&log).unwrap().contains("development CA: "), "people read the same on stderr");

    let pid = child.id().unwrap().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().await.unwrap().success());
    let rest = tokio::time::timeout(EXIT_TIMEOUT, stdout.next_line()).await.expect("the core stops").unwrap();
    assert_eq!(rest, None, "nothing but the ready line on standard output");
    assert_eq!(child.wait().await.unwrap().code(), Some(0));
}

#[tokio::test]
async fn sigterm_shuts_down_gracefully() {
    let core = TestCore::builder().spawn().await.expect("the core starts");
    let channel = core.channel().await;
    let token = sessions(&channel)
        .start_session(pb::StartSessionRequest { device_id: "printer-1".into(), ..Default::default() })
        .await
        .expect("the core serves before the signal")
        .into_inner()
        .session_token;
    assert!(!token.is_empty());

    let (code, log) = core.terminate_with_log().await.expect("the core stops after SIGTERM");
    assert_eq!(code, Some(0), "a graceful shutdown exits 0; log:\n{log}");
    assert!(log.contains("shutting down"), "the log must say the server is shutting down:\n{log}");
}

#[tokio::test]
async fn secrets_never_reach_the_log() {
    const OPERATOR_TOKEN: &str = "startup-e2e-operator-token-41c7d2e98ab35f06";
    const WRONG_OPERATOR_TOKEN: &str = "startup-e2e-operator-token-41c7d2e98ab35f07";
    let core =
        TestCore::builder().log_filter("debug").operator_token(OPERATOR_TOKEN).spawn().await.expect("the core starts");
    let channel = core.channel().await;

    let token = sessions(&channel)
        .start_session(pb::StartSessionRequest { device_id: "printer-1".into(), ..Default::default() })
        .await
        .expect("StartSession succeeds")
        .into_inner()
        .session_token;
    catalog(&channel).list_categories(authed(&token, pb::ListCategoriesRequest {})).await.expect("a session call");
    let missing = catalog(&channel)
        .get_product(authed(&token, pb::GetProductRequest { product_id: "no-such-product".into() }))
        .await
        .expect_err("an unknown product");
    assert_eq!(missing.code(), Code::NotFound);

    let usage = UsageServiceClient::new(channel.clone());
    let ask = pb::CountUsageEventsRequest::default;
    usage.clone().count_usage_events(authed(OPERATOR_TOKEN, ask())).await.expect("the operator counts");
    let wrong = usage.clone().count_usage_events(authed(WRONG_OPERATOR_TOKEN, ask())).await.expect_err("wrong token");
    assert_eq!(wrong.code(), Code::Unauthenticated);
    let as_session = usage.clone().count_usage_events(authed(&token, ask())).await.expect_err("session token");
    assert_eq!(as_session.code(), Code::PermissionDenied);

    sessions(&channel).close_session(authed(&token, pb::CloseSessionRequest {})).await.expect("CloseSession");
    let closed = catalog(&channel).list_categories(authed(&token, pb::ListCategoriesRequest {})).await;
    assert_eq!(closed.expect_err("a closed session").code(), Code::Unauthenticated);

    let (code, log) = core.terminate_with_log().await.expect("the core stops after SIGTERM");
    assert_eq!(code, Some(0));
    assert!(log.contains("DEBUG"), "the debug filter took effect, so the test looks at a verbose log:\n{log}");
    for (what, secret) in [
        ("session token", token.as_str()),
        ("operator token", OPERATOR_TOKEN),
        ("wrong operator token", WRONG_OPERATOR_TOKEN),
    ] {
        assert!(!log.contains(secret), "the {what} appears in the log");
    }
}

#[tokio::test]
async fn a_configuration_file_takes_effect() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("core.toml");
    std::fs::write(&config, "[sessions]\nidle_timeout = \"1s\"\n").unwrap();
    let core = TestCore::builder().config_file(&config).in_process().await.expect("the core starts with the file");
    let channel = core.channel().await;
    let started = sessions(&channel)
        .start_session(pb::StartSessionRequest { device_id: "printer-1".into(), ..Default::default() })
        .await
        .expect("StartSession succeeds")
        .into_inner();
    assert_eq!(started.idle_timeout, Some(prost_types::Duration { seconds: 1, nanos: 0 }), "the app is told 1s");
    let token = started.session_token;
    catalog(&channel).list_categories(authed(&token, pb::ListCategoriesRequest {})).await.expect("fresh session");

    core.clock().advance(Duration::from_millis(1500));
    let idle = catalog(&channel)
        .list_categories(authed(&token, pb::ListCategoriesRequest {}))
        .await
        .expect_err("the session ran into the 1s idle limit from the file");
    assert_eq!(idle.code(), Code::Unauthenticated, "{idle:?}");
    assert!(idle.message().contains("StartSession"), "the message says how to recover: {idle:?}");
}

#[tokio::test]
async fn the_shipped_example_configuration_is_accepted() {
    let example = server::config::default_storefront_dir()
        .parent()
        .and_then(Path::parent)
        .expect("server/storefront/sample")
        .join("podconnect.example.toml");
    // The harness's --listen and --data-dir flags win over the file's values.
    let core = TestCore::builder()
        .config_file(&example)
        .spawn()
        .await
        .unwrap_or_else(|err| panic!("{} is refused: {err:#}", example.display()));
    assert_ne!(core.addr.port(), 50443, "--listen wins over the file");
    let channel = core.channel().await;
    let token = sessions(&channel)
        .start_session(pb::StartSessionRequest { device_id: "printer-1".into(), ..Default::default() })
        .await
        .expect("StartSession succeeds")
        .into_inner()
        .session_token;
    assert!(!token.is_empty());
}
