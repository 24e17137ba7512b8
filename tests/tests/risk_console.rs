//! The risk console in headless Chromium, against a real center (SQLite) and a real agent on
//! this machine: a one-advisory OSV feed built around a package this host really has is
//! imported with the CLI, and the server's Risks tab lists the finding the center matched; an
//! account made with `useradd` + `chpasswd` gets a dictionary password; "Scan now" on the Risks
//! tab runs the agent's checks, and the tab then shows that account as weak and this Debian
//! host's password-policy results (with failures such as PASS_MAX_DAYS 99999), exactly as the
//! API holds them; the finding is ignored through the tab's form and its handling history
//! names who did it; /risk/scans shows the scan task done; /vulnerabilities shows the database
//! line, the CVE and the severity chart.
//!
//! Screenshots of the Risks tab and of /vulnerabilities are saved as `risk_*.png` in the
//! system's temp directory for a person to look at.

use std::path::{Path, PathBuf};

use fantoccini::Locator;
use hostward_e2e::*;
use serde_json::{Value, json};

const CVE: &str = "CVE-2099-7001";

/// Removes the test's account, even when the test fails.
struct Users(Vec<String>);

impl Drop for Users {
    fn drop(&mut self) {
        for u in &self.0 {
            let _ = std::process::Command::new("userdel").arg(u).output();
        }
    }
}

/// Saves what the browser shows as `risk_<name>.png` in the temp dir (and in the test dir).
async fn screenshot(env: &TestEnv, b: &Browser, name: &str) -> Result<PathBuf> {
    let png = b.client.screenshot().await?;
    let to = std::env::temp_dir().join(format!("risk_{name}.png"));
    std::fs::write(&to, &png)?;
    std::fs::write(env.root().join(format!("risk_{name}.png")), &png)?;
    eprintln!("screenshot: {}", to.display());
    Ok(to)
}

/// An installed dpkg package whose source package is itself and whose version has no epoch:
/// (name, version).
async fn plain_package() -> Result<(String, String)> {
    let out = run_cmd(
        Path::new("dpkg-query"),
        &[
            "-W".into(),
            "-f".into(),
            "${db:Status-Abbrev}\t${Package}\t${Version}\t${source:Package}\t${source:Version}\n"
                .into(),
        ],
        None,
    )
    .await?
    .ok()?;
    out.stdout
        .lines()
        .filter(|l| l.starts_with("ii "))
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f.len() == 5 && f[1] == f[3] && f[2] == f[4] && !f[2].contains(':'))
                .then(|| (f[1].to_string(), f[2].to_string()))
        })
        .find(|(n, _)| n != "linux" && !n.starts_with("linux-"))
        .ok_or_else(|| anyhow!("no installed package whose source is itself"))
}

fn osv_record(package: &str, fixed: &str) -> Value {
    json!({
        "schema_version": "1.6.0",
        "id": format!("DEBIAN-{CVE}"),
        "aliases": [CVE],
        "summary": format!("hostward console e2e advisory for {package}"),
        "published": "2026-11-01T00:00:00Z",
        "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
        "affected": [{
            "package": {"ecosystem": "Debian:12", "name": package},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]}],
        }],
    })
}

#[tokio::test]
async fn risk_console_in_headless_chromium() -> Result<()> {
    if !browser_available()? {
        return Ok(());
    }
    let env = TestEnv::new("risk-console");
    env.run(async {
        let tag = format!("{:06x}", rand::random::<u32>() & 0xff_ffff);
        let weak = format!("hwcon{tag}");
        let _users = Users(vec![weak.clone()]);
        run_cmd(
            Path::new("useradd"),
            &["-M".into(), "-s".into(), "/bin/bash".into(), weak.clone()],
            None,
        )
        .await?
        .ok()?;
        run_cmd(
            Path::new("chpasswd"),
            &[],
            Some(&format!("{weak}:qwerty\n")),
        )
        .await?
        .ok()?;

        let center = Center::start(&env, Backend::Sqlite, CenterOpts::default()).await?;
        let api = center.api();
        let agent = Agent::start(&env, &center, "risk").await?;
        let sid = agent.server_id.clone();
        api.wait_status(&sid, "online", None, secs(30)).await?;

        // A feed whose one advisory this host has: fixed just above the installed version.
        let (package, version) = plain_package().await?;
        let feed = env.root().join("advisory.json");
        std::fs::write(
            &feed,
            serde_json::to_vec(&osv_record(&package, &format!("{version}+hw1")))?,
        )?;
        wait_until(
            "the agent's software inventory",
            secs(120),
            millis(250),
            || async {
                let s = api
                    .get(&format!("/api/v1/servers/{sid}/inventory"))
                    .await?
                    .expect(200)?;
                let ok = s.json["kinds"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|k| k["kind"] == "software" && k["in_sync"] == true);
                ensure!(ok, "software not in yet");
                Ok(())
            },
        )
        .await?;
        center
            .cli(&["vulndb", "import", &feed.display().to_string()], None)
            .await?
            .ok()?;
        let finding = wait_until(
            "the center's finding for the feed",
            secs(60),
            millis(250),
            || async {
                let r = api
                    .get(&format!("/api/v1/servers/{sid}/vulnerabilities?cve={CVE}"))
                    .await?
                    .expect(200)?;
                let f = r.json["items"][0].clone();
                ensure!(f["package"] == package.as_str(), "findings: {}", r.text);
                Ok(f)
            },
        )
        .await?;
        let fid = finding["id"].as_str().unwrap_or_default().to_string();

        Browser::drive_center(&env, &center, async |b| {
            drive(&env, &center, b, &sid, &fid, &package, &weak).await
        })
        .await
    })
    .await
}

async fn drive(
    env: &TestEnv,
    center: &Center,
    b: &Browser,
    sid: &str,
    fid: &str,
    package: &str,
    weak: &str,
) -> Result<()> {
    let url = center.url();
    let api = center.api();
    b.fill_login(&url, ADMIN_USER, ADMIN_PASSWORD).await?;
    b.find("#score-panel").await?; // signed in: the dashboard

    // The server's Risks tab, reached through the tab bar.
    b.client.goto(&format!("{url}/servers/{sid}")).await?;
    b.find("#server-tabs a[data-tab=\"risks\"]")
        .await?
        .click()
        .await?;
    let tab = format!("/servers/{sid}/risks");
    b.wait_path(&tab, None).await?;
    b.find("#server-tabs a.active[data-tab=\"risks\"]").await?;
    let row = format!("#findings tr[data-finding-id={}]", css(fid));
    let pkg = b.text(&format!("{row} td.package")).await?;
    ensure!(
        pkg == package,
        "the finding's package shows as {pkg:?}, want {package}"
    );
    let state = b.text(&format!("{row} td.finding-state")).await?;
    ensure!(state.contains("unhandled"), "state {state:?}");
    // A critical finding, but the weak-password and policy checks have not run: the status
    // says what it still waits for, not a verdict.
    let status = b.text("#risk-status").await?;
    ensure!(
        status.contains("pending") && status.contains("weak-password check not run yet"),
        "before the first scan: {status:?}"
    );

    // Scan now: the agent runs every check; the tab shows what it found.
    b.find("#scan-now").await?.click().await?;
    b.wait_path(&tab, Some("done=scan")).await?;
    b.find("#flash").await?;
    let weak_row = format!("#weak-table tr[data-account={}]", css(weak));
    wait_until(
        "the scan's results on the Risks tab",
        secs(300),
        millis(1000),
        || async {
            b.client.goto(&format!("{url}{tab}")).await?;
            b.find("#password-policy").await?;
            ensure!(
                b.count("#weak-scanned[data-scanned]").await? == 1
                    && b.count("#policy-scanned[data-scanned]").await? == 1,
                "not scanned yet: {}",
                b.text("#scan-state").await?
            );
            ensure!(
                b.count(&weak_row).await? == 1,
                "{weak} is not listed: {}",
                b.text("#weak-passwords").await?
            );
            Ok(())
        },
    )
    .await?;
    let status = b.text("#risk-status").await?;
    ensure!(
        status.contains("risky") && !status.contains("not run yet"),
        "every check ran and found something: {status:?}"
    );
    let reasons = b.text(&format!("{weak_row} td:nth-child(4)")).await?;
    ensure!(reasons.contains("common password"), "why weak: {reasons:?}");
    let login = b.text(&format!("{weak_row} td:nth-child(3)")).await?;
    ensure!(login == "yes", "login allowed shows as {login:?}");
    let weak_html = b
        .client
        .find(Locator::Css("#weak-passwords"))
        .await?
        .html(false)
        .await?;
    ensure!(
        !weak_html.contains("qwerty") && !weak_html.contains("$y$"),
        "the weak-password section shows nothing but the account"
    );

    // Password policy: every item the API holds, failures included.
    let policy = api
        .get(&format!("/api/v1/servers/{sid}/password-policy"))
        .await?
        .expect(200)?;
    let items = policy.json["items"].as_array().cloned().unwrap_or_default();
    ensure!(!items.is_empty(), "the API has no policy results");
    let rows = b.count("#policy-results tbody tr").await?;
    ensure!(
        rows == items.len(),
        "{rows} policy rows, the API has {}",
        items.len()
    );
    let failed = b.count("#policy-results tr[data-pass=\"false\"]").await?;
    let api_failed = items.iter().filter(|i| i["pass"] == false).count();
    ensure!(
        failed == api_failed && failed > 0,
        "{failed} failed rows, the API has {api_failed} (this Debian host fails some)"
    );
    let max_days = items
        .iter()
        .find(|i| i["check_id"] == "login_defs.pass_max_days")
        .ok_or_else(|| anyhow!("no PASS_MAX_DAYS item: {}", policy.text))?;
    let cell = b
        .text("#policy-results tr[data-check=\"login_defs.pass_max_days\"] td.policy-result")
        .await?;
    let want = if max_days["pass"] == true {
        "pass"
    } else {
        "fail"
    };
    ensure!(
        cell == want,
        "PASS_MAX_DAYS shows {cell:?}, the API says {want}"
    );
    screenshot(env, b, "server_tab").await?;
    b.client.goto(&format!("{url}{tab}#weak-passwords")).await?;
    b.find("#policy-results").await?;
    screenshot(env, b, "server_tab_policy").await?;

    // Ignore the finding through the tab's form.
    b.client.goto(&format!("{url}{tab}")).await?;
    b.find(&format!("{row} input[type=checkbox]"))
        .await?
        .click()
        .await?;
    b.find("#finding-form input[name=note]")
        .await?
        .send_keys("accepted in e2e")
        .await?;
    b.find("#finding-form button.act-ignore")
        .await?
        .click()
        .await?;
    b.wait_path(&tab, Some("done=ignore")).await?;
    let flash = b.text("#flash").await?;
    ensure!(flash.contains("1 finding(s) ignored"), "flash {flash:?}");
    let state = b.text(&format!("{row} td.finding-state")).await?;
    ensure!(state.contains("ignored"), "state after ignoring {state:?}");
    let f = api
        .get(&format!("/api/v1/vulnerabilities/findings/{fid}"))
        .await?
        .expect(200)?;
    ensure!(f.json["finding"]["state"] == "ignored", "{}", f.text);
    // Its detail page has the history: who, what, why.
    b.find(&format!("{row} a.finding-detail"))
        .await?
        .click()
        .await?;
    b.wait_path(&format!("/vulnerabilities/findings/{fid}"), None)
        .await?;
    let history = b.text("#finding-history").await?;
    ensure!(
        history.contains(ADMIN_USER)
            && history.contains("ignore")
            && history.contains("accepted in e2e"),
        "history: {history}"
    );
    screenshot(env, b, "finding").await?;

    // The scans page: the task is done.
    b.client
        .find(Locator::Css("header nav a[href=\"/vulnerabilities\"]"))
        .await?
        .click()
        .await?;
    b.wait_path("/vulnerabilities", None).await?;
    b.find("#risk-sections a[data-section=\"scans\"]")
        .await?
        .click()
        .await?;
    b.wait_path("/risk/scans", None).await?;
    let scan_row = format!("#scans tr[data-server-id={}]", css(sid));
    b.find(&scan_row).await?;
    let st = b.text(&format!("{scan_row} td.scan-state")).await?;
    ensure!(st == "done", "the scan task shows as {st:?}");
    let done = b.text("#scan-counts a[data-state=\"done\"] .n").await?;
    ensure!(done.parse::<u32>().unwrap_or(0) >= 1, "done count {done:?}");
    screenshot(env, b, "scans").await?;

    // Vulnerabilities: the database line, the CVE, the chart.
    b.find("#risk-sections a[data-section=\"vulnerabilities\"]")
        .await?
        .click()
        .await?;
    b.wait_path("/vulnerabilities", None).await?;
    let line = b.text("#vulndb-line").await?;
    let status = api.get("/api/v1/vulndb").await?.expect(200)?;
    let version = status.json["status"]["version"].as_i64().unwrap_or(0);
    ensure!(
        version >= 1 && line.contains(&format!("version {version}")) && line.contains("1 advisory"),
        "database line {line:?} (API: {})",
        status.text
    );
    let cve_row = format!("#vuln-groups tr[data-cve={}]", css(CVE));
    let servers = b.text(&format!("{cve_row} td.servers")).await?;
    ensure!(servers == "1", "{CVE} on {servers:?} servers");
    let sev = b.text(&format!("{cve_row} .badge")).await?;
    ensure!(sev == "Critical", "severity {sev:?}");
    ensure!(
        b.count("svg#severity-chart rect").await? == 4,
        "four severity bars"
    );
    screenshot(env, b, "vulnerabilities").await?;

    // The CVE's page lists the server.
    b.find(&format!("{cve_row} a.cve-link"))
        .await?
        .click()
        .await?;
    b.wait_path(&format!("/vulnerabilities/{CVE}"), None)
        .await?;
    b.find(&format!("#findings tr[data-server-id={}]", css(sid)))
        .await?;
    screenshot(env, b, "cve").await?;

    // The policy page: an administrator may edit it.
    b.client.goto(&format!("{url}/risk/policy")).await?;
    b.find("#policy-form #save-policy").await?;
    screenshot(env, b, "policy").await?;

    // The fleet's weak passwords and failed policy items include this server's.
    b.client.goto(&format!("{url}/risk/weak-passwords")).await?;
    b.find(&format!(
        "#weak-table tr[data-server-id={}][data-account={}]",
        css(sid),
        css(weak)
    ))
    .await?;
    screenshot(env, b, "weak").await?;
    b.client
        .goto(&format!("{url}/risk/password-policy?failed=1"))
        .await?;
    let shown = b
        .count(&format!("#policy-results tr[data-server-id={}]", css(sid)))
        .await?;
    ensure!(
        shown > 0 && b.count("#policy-results tr[data-pass=\"true\"]").await? == 0,
        "failed items only: {shown} rows of this server"
    );
    screenshot(env, b, "policy_failed").await?;
    b.client
        .goto(&format!("{url}/risk/rules?cve={CVE}"))
        .await?;
    b.find("#create-rule-form").await?;
    screenshot(env, b, "rules").await?;
    Ok(())
}
