//! The weblet in a real browser: the real core, the real gateway serving the committed weblet bundle,
//! and headless Chromium driven by `weblet-gateway/weblet/tests/flow.mjs` (playwright-core) through
//! browse, customize, preview, print (the business card's layout on the printer's sheets and the
//! first sheet's front and back, at 800×480 and 1024×600) and exit, and through single sign-on (log
//! in with "remember me", relaunch signed in without typing, forget), and through a shop on the
//! XMPie uStore test double (anonymous browse, login, uStore's own validation on its field, a
//! conditional field, preview, print with its layout), each ending with nothing kept in the
//! browser. The browser trusts the gateway's development CA through a throw-away NSS database under
//! a temporary HOME, and first proves it refuses the gateway without it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tests::core::TestCore;
use tests::gateway::TestGateway;
use tests::ustore::UstoreDouble;
use tests::ustore::fixtures::PROD_BUSINESS_CARD;
use tokio::process::Command;

/// How long the whole browser walk may take (the script stops itself a little earlier).
const FLOW_TIMEOUT: Duration = Duration::from_secs(120);

/// How long Chromium's first start in this run may take. On a fresh machine it reads a few hundred
/// megabytes from disk while the rest of the suite runs; the walks' own 30 s launch bound is for a
/// warm start (CI once saw two cold starts at once stay silent past it).
const FIRST_START_TIMEOUT: Duration = Duration::from_secs(180);

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ lives in the workspace").to_path_buf()
}

/// `certutil` (NSS), which puts the development CA in the browser's NSS database: `$CERTUTIL` or the
/// first one on `PATH`, or a panic that says how to get it.
fn certutil() -> PathBuf {
    let found = std::env::var_os("CERTUTIL").map(PathBuf::from).or_else(|| {
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .map(|dir| dir.join("certutil"))
            .find(|path| path.is_file())
    });
    match found {
        Some(path) if path.is_file() => path,
        other => panic!(
            "certutil is missing ({other:?}): install it (apt-get install -y --no-install-recommends libnss3-tools) \
             or set CERTUTIL"
        ),
    }
}

/// Node, Chromium, certutil and the weblet's node_modules, or a panic that says how to get them. The
/// test command installs all four; a missing one is a failure, never a skip.
fn browser_tools(weblet: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let node = std::env::var_os("NODE").map_or_else(|| PathBuf::from("node"), PathBuf::from);
    let version = std::process::Command::new(&node).arg("--version").output();
    assert!(
        version.as_ref().is_ok_and(|o| o.status.success()),
        "`{}` does not run ({version:?}): install Node.js (apt-get install -y nodejs npm) or set NODE",
        node.display()
    );
    let chromium = std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    assert!(
        chromium.is_file(),
        "{} is missing: install it (apt-get install -y --no-install-recommends chromium) or set CHROMIUM",
        chromium.display()
    );
    assert!(
        weblet.join("node_modules/playwright-core/package.json").is_file(),
        "{}/node_modules/playwright-core is missing: run `npm ci` in weblet-gateway/weblet",
        weblet.display()
    );
    (node, chromium, certutil())
}

/// Starts Chromium once per run (headless, `about:blank`, a throw-away HOME and profile) before any
/// walk does, so concurrent walks wait for one cold start instead of racing two; panics with what
/// Chromium said if it does not start.
async fn first_start(chromium: &Path) {
    static STARTED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    STARTED
        .get_or_init(|| async {
            let home = tempfile::Builder::new().prefix("weblet-first-start-").tempdir().expect("a temporary HOME");
            let started = Instant::now();
            let run = Command::new(chromium)
                .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--dump-dom"])
                .arg(format!("--user-data-dir={}", home.path().join("profile").display()))
                .arg("about:blank")
                .env("HOME", home.path())
                .stdin(Stdio::null())
                .kill_on_drop(true)
                .output();
            let output = match tokio::time::timeout(FIRST_START_TIMEOUT, run).await {
                Ok(output) => output.expect("chromium starts"),
                Err(_) => panic!("{} did not start within {FIRST_START_TIMEOUT:?}", chromium.display()),
            };
            assert!(
                output.status.success() && String::from_utf8_lossy(&output.stdout).contains("<body>"),
                "{} --headless --dump-dom about:blank failed ({}):\n{}",
                chromium.display(),
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
            println!("chromium's first start took {:.1?}", started.elapsed());
        })
        .await;
}

/// Runs `flow.mjs` against a gateway in front of `core` with `args` (the walk to take), checks
/// that it passed because the browser trusted the CA (not because it ignored errors) and left its
/// temporary HOME behind it, and returns what it printed.
async fn browser_walk(core: &TestCore, name: &str, args: &[&str]) -> String {
    let weblet = workspace().join("weblet-gateway/weblet");
    let (node, chromium, certutil) = browser_tools(&weblet);
    first_start(&chromium).await;
    let gateway =
        TestGateway::builder().weblet_dir(&weblet.join("dist")).spawn(core).await.expect("the gateway starts");
    let url = format!("https://localhost:{}/?device=mfd-lobby", gateway.addr.port());
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("artifacts").join(name);
    // The browser's HOME: flow.mjs makes its NSS database ($HOME/.pki/nssdb) there and trusts the
    // gateway's CA in it, as a kiosk's IT team would; removed below, and on any panic by the drop.
    let home = tempfile::Builder::new().prefix("weblet-browser-home-").tempdir().expect("a temporary HOME");

    let started = Instant::now();
    let run = Command::new(&node)
        .arg(weblet.join("tests/flow.mjs"))
        .arg("--url")
        .arg(&url)
        .arg("--out")
        .arg(&out)
        .arg("--chromium")
        .arg(&chromium)
        .arg("--ca")
        .arg(&gateway.ca)
        .arg("--home")
        .arg(home.path())
        .arg("--certutil")
        .arg(&certutil)
        .args(args)
        .current_dir(&weblet)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = match tokio::time::timeout(FLOW_TIMEOUT, run).await {
        Ok(output) => output.expect("node starts"),
        Err(_) => panic!(
            "the browser walk did not finish within {FLOW_TIMEOUT:?}\ngateway log:\n{}\ncore log:\n{}",
            gateway.log(),
            core.log()
        ),
    };
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the browser walk failed ({}) after {:.1?}; screenshots in {}\n--- stdout\n{stdout}\n--- stderr\n{stderr}\n\
         --- gateway log\n{}\n--- core log\n{}",
        output.status,
        started.elapsed(),
        out.display(),
        gateway.log(),
        core.log()
    );
    // The walk's success came from trusting the CA, not from ignoring certificate errors.
    for proof in ["refused without the CA: net::ERR_CERT_AUTHORITY_INVALID", "trusted ", "PASSED"] {
        assert!(stdout.contains(proof), "the browser walk did not report {proof:?}\n--- stdout\n{stdout}");
    }
    let home_path = home.path().to_path_buf();
    home.close().expect("the browser's temporary HOME is removed");
    assert!(!home_path.exists(), "{} is still there", home_path.display());
    println!("browser walk passed in {:.1?}\n{stdout}", started.elapsed());
    stdout
}

#[tokio::test]
async fn a_person_prints_a_customized_business_card_in_a_real_browser_and_leaves_nothing_behind() {
    let core = TestCore::builder()
        .spool_print_time(Duration::from_millis(500))
        .job_poll(Duration::from_millis(100))
        .spawn()
        .await
        .expect("the core starts");
    let stdout = browser_walk(&core, "weblet", &[]).await;
    assert!(stdout.contains("trusted via NSS"), "the page's certificate was checked\n{stdout}");
}

#[tokio::test]
async fn a_remembered_device_user_is_signed_in_without_typing_in_a_real_browser() {
    let core = TestCore::start().await;
    let assertion = core.device_assertion("employee-4711").await;
    let (user, password, display_name) = tests::client::ANA;
    let stdout = browser_walk(
        &core,
        "weblet-sso",
        &[
            "--scenario",
            "sso",
            "--assertion",
            &assertion,
            "--user",
            user,
            "--password",
            password,
            "--display-name",
            display_name,
        ],
    )
    .await;
    assert!(stdout.contains("with nothing typed"), "{stdout}");
    assert!(!core.log().contains(&assertion), "the core never logs the assertion");
}

#[tokio::test]
async fn a_person_shops_a_ustore_storefront_in_a_real_browser() {
    let double = UstoreDouble::start().await.expect("the uStore double starts");
    let controls = double.controls();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ustore-ca.pem");
    double.write_ca(&ca).unwrap();
    let core = TestCore::builder()
        .ustore(&double.base_url(), double.store_id(), &double.storefront_url(), &ca)
        .spool_print_time(Duration::from_millis(500))
        .job_poll(Duration::from_millis(100))
        .spawn()
        .await
        .expect("the core starts against the uStore double");
    let (user, password, display_name) = tests::client::BEN;
    let stdout = browser_walk(
        &core,
        "weblet-ustore",
        &["--scenario", "ustore", "--user", user, "--password", password, "--display-name", display_name],
    )
    .await;
    assert!(stdout.contains("uStore's Name error") && stdout.contains("reserved"), "{stdout}");

    // What the person did reached uStore: logged in, previewed, and ben's card holds what was typed.
    assert!(controls.count("login") >= 1, "{:?}", controls.counts());
    assert!(controls.count("preview-create") >= 1, "{:?}", controls.counts());
    let items = controls.order_items();
    let item = items
        .iter()
        .find(|i| i.product_id == PROD_BUSINESS_CARD && i.email.as_deref() == Some(user))
        .unwrap_or_else(|| panic!("no business card of {user} among the order items: {items:?}"));
    assert_eq!(item.values.get("Name").map(String::as_str), Some("Ben Okafor"), "{item:?}");
    assert_eq!(item.values.get("ShowPhone").map(String::as_str), Some("Yes"), "{item:?}");
    assert_eq!(item.values.get("Phone").map(String::as_str), Some("+44 20 7946 0018"), "{item:?}");
}
