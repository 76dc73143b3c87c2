//! The weblet in a real browser: the real core, the real gateway serving the committed weblet bundle,
//! and headless Chromium driven by `weblet-gateway/weblet/tests/flow.mjs` (playwright-core) through
//! browse, customize, preview, print and exit, ending with nothing kept in the browser.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tests::core::TestCore;
use tests::gateway::TestGateway;
use tokio::process::Command;

/// How long the whole browser walk may take (the script stops itself a little earlier).
const FLOW_TIMEOUT: Duration = Duration::from_secs(120);

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ lives in the workspace").to_path_buf()
}

/// Node, Chromium and the weblet's node_modules, or a panic that says how to get them. The test
/// command installs all three; a missing one is a failure, never a skip.
fn browser_tools(weblet: &Path) -> (PathBuf, PathBuf) {
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
    (node, chromium)
}

#[tokio::test]
async fn a_person_prints_a_customized_business_card_in_a_real_browser_and_leaves_nothing_behind() {
    let weblet = workspace().join("weblet-gateway/weblet");
    let (node, chromium) = browser_tools(&weblet);
    let core = TestCore::builder()
        .arg("--spool-print-time")
        .arg("500ms")
        .arg("--job-poll")
        .arg("100ms")
        .spawn()
        .await
        .expect("the core starts");
    let gateway =
        TestGateway::builder().weblet_dir(&weblet.join("dist")).spawn(&core).await.expect("the gateway starts");
    let url = format!("https://localhost:{}/?device=mfd-lobby", gateway.addr.port());
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("artifacts/weblet");

    let started = Instant::now();
    let run = Command::new(&node)
        .arg(weblet.join("tests/flow.mjs"))
        .arg("--url")
        .arg(&url)
        .arg("--out")
        .arg(&out)
        .arg("--chromium")
        .arg(&chromium)
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
    let stdout = String::from_utf8_lossy(&output.stdout);
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
    println!("browser walk passed in {:.1?}\n{stdout}", started.elapsed());
}
