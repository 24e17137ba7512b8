//! The inventory console in headless Chromium, against a real center (SQLite) and two real
//! agents on this machine (so they share their packages): every server tab renders what the
//! API holds for that server (software, accounts with root at uid 0, ports, processes,
//! auto-start, kernel modules, middleware, change history); the software tab's search box
//! filters and its CSV link downloads with the console session; "Collect now" makes the agent
//! report a port opened after its baseline, which shows on the ports tab and, as `added`, in
//! the change history; the fleet asset page finds a package both servers have, shows it on 2
//! servers with an SVG bar chart, and leads to the list of both servers.

use fantoccini::Locator;
use hostward_e2e::*;
use serde_json::Value;

const KINDS: [&str; 7] = [
    "accounts",
    "ports",
    "processes",
    "software",
    "autostart",
    "kernel_modules",
    "middleware",
];

/// Rows per page of the console's inventory lists.
const PER_PAGE: usize = 100;

/// Every item of a server's kind, through the API (all pages).
async fn all_items(api: &Api, server: &str, kind: &str) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for page in 1.. {
        let r = api
            .get(&format!(
                "/api/v1/servers/{server}/inventory/{kind}?per_page=1000&page={page}"
            ))
            .await?
            .expect(200)?;
        let items = r.json["items"].as_array().cloned().unwrap_or_default();
        let total = r.json["total"].as_u64().unwrap_or(0) as usize;
        let done = items.is_empty();
        out.extend(items);
        if done || out.len() >= total {
            break;
        }
    }
    Ok(out)
}

async fn total(api: &Api, server: &str, kind: &str) -> Result<usize> {
    let r = api
        .get(&format!(
            "/api/v1/servers/{server}/inventory/{kind}?per_page=1"
        ))
        .await?
        .expect(200)?;
    Ok(r.json["total"].as_u64().unwrap_or(0) as usize)
}

/// Clicks the server tab `tab` and waits for its page.
async fn open_tab(b: &Browser, server: &str, tab: &str) -> Result<()> {
    b.client
        .find(Locator::Css(&format!(
            "#server-tabs a[data-tab={}]",
            css(tab)
        )))
        .await
        .with_context(|| format!("no tab {tab}"))?
        .click()
        .await?;
    let path = match tab {
        "overview" => format!("/servers/{server}"),
        "changes" => format!("/servers/{server}/changes"),
        k => format!("/servers/{server}/inventory/{k}"),
    };
    b.wait_path(&path, None).await?;
    let active = b.text("#server-tabs a.tab.active").await?;
    ensure!(
        b.client
            .find(Locator::Css(&format!(
                "#server-tabs a.active[data-tab={}]",
                css(tab)
            )))
            .await
            .is_ok(),
        "tab {tab} is not the active one (active: {active:?})"
    );
    Ok(())
}

#[tokio::test]
async fn inventory_console_in_headless_chromium() -> Result<()> {
    if !browser_available()? {
        return Ok(());
    }
    let env = TestEnv::new("inventory-console");
    env.run(async {
        let center = Center::start(&env, Backend::Sqlite, CenterOpts::default()).await?;
        let api = center.api();
        let one = Agent::start(&env, &center, "one").await?;
        let two = Agent::start(&env, &center, "two").await?;
        for a in [&one, &two] {
            api.wait_status(&a.server_id, "online", None, secs(30))
                .await?;
        }
        // Both agents' first collection is a full snapshot of every kind (the baseline).
        for a in [&one, &two] {
            let path = format!("/api/v1/servers/{}/inventory", a.server_id);
            wait_until(
                &format!("{}'s first inventory of every kind", a.label),
                secs(120),
                millis(500),
                || async {
                    let r = api.get(&path).await?.expect(200)?;
                    let kinds: Vec<String> = r.json["kinds"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter(|k| k["collected_at"].as_i64().unwrap_or(0) > 0)
                        .filter_map(|k| k["kind"].as_str().map(str::to_string))
                        .collect();
                    ensure!(
                        KINDS.iter().all(|k| kinds.iter().any(|x| x == k)),
                        "kinds reported so far: {kinds:?}"
                    );
                    Ok(())
                },
            )
            .await?;
            ensure!(
                total(&api, &a.server_id, "software").await? > 0,
                "{} reported no software: is this a Debian box with a dpkg database?",
                a.label
            );
        }

        Browser::drive_center(&env, &center, async |b| {
            drive(&env, &center, b, &one, &two).await
        })
        .await
    })
    .await
}

/// A package both servers have in the same version whose name few other package names contain,
/// so a search for it lists few groups. (name, version)
fn common_package(one: &[Value], two: &[Value]) -> Result<(String, String)> {
    let pairs = |v: &[Value]| -> Vec<(String, String)> {
        v.iter()
            .filter_map(|i| {
                Some((
                    i["name"].as_str()?.to_string(),
                    i["value"].as_str()?.to_string(),
                ))
            })
            .collect()
    };
    let (a, b) = (pairs(one), pairs(two));
    let names: Vec<&str> = a.iter().map(|(n, _)| n.as_str()).collect();
    a.iter()
        .filter(|p| p.0.len() >= 4 && b.contains(p))
        .min_by_key(|(n, _)| {
            (
                names.iter().filter(|x| x.contains(n.as_str())).count(),
                std::cmp::Reverse(n.len()),
            )
        })
        .cloned()
        .ok_or_else(|| anyhow!("the two servers share no package"))
}

async fn drive(
    env: &TestEnv,
    center: &Center,
    b: &Browser,
    one: &Agent,
    two: &Agent,
) -> Result<()> {
    let url = center.url();
    let api = center.api();
    let sid = &one.server_id;
    b.fill_login(&url, ADMIN_USER, ADMIN_PASSWORD).await?;
    // Signing in lands on the dashboard.
    b.client
        .wait()
        .at_most(secs(15))
        .for_element(Locator::Css("#score-panel"))
        .await?;

    // The overview has the tab bar with every section.
    b.client.goto(&format!("{url}/servers/{sid}")).await?;
    b.find("#server-tabs").await?;
    let mut tabs = Vec::new();
    for t in b
        .client
        .find_all(Locator::Css("#server-tabs a.tab"))
        .await?
    {
        tabs.push(t.attr("data-tab").await?.unwrap_or_default());
    }
    let mut want = vec!["overview".to_string()];
    want.extend(KINDS.iter().map(|k| k.to_string()));
    want.push("changes".into());
    want.push("risks".into());
    want.push("baselines".into());
    want.push("login-ips".into());
    want.push("ssh-whitelist".into());
    want.push("file-changes".into());
    want.push("tamper".into());
    want.push("ransom".into());
    want.push("malware".into());
    want.push("edition".into());
    ensure!(tabs == want, "tabs {tabs:?}, want {want:?}");

    // Every kind's tab lists what the API holds for this server.
    for kind in KINDS {
        open_tab(b, sid, kind).await?;
        b.find(&format!("#inventory[data-kind={}]", css(kind)))
            .await?;
        b.find("#inventory-table").await?;
        let rows = b.count("#inventory-table tbody tr").await?;
        let n = total(&api, sid, kind).await?;
        if kind == "ports" {
            // Sockets come and go while we look (the browser's own, for one).
            ensure!(
                n == 0 || rows > 0,
                "ports: the API has {n}, the tab shows none"
            );
        } else {
            ensure!(
                rows == n.min(PER_PAGE),
                "{kind}: the tab shows {rows} rows, the API holds {n}"
            );
            if n > 0 {
                let shown = b.text("#item-count strong").await?;
                ensure!(
                    shown == n.to_string(),
                    "{kind}: item count {shown:?}, API {n}"
                );
            }
        }
        let csv = b
            .client
            .find(Locator::Css("#csv-download"))
            .await?
            .attr("href")
            .await?
            .unwrap_or_default();
        ensure!(
            csv.starts_with(&format!(
                "/api/v1/servers/{sid}/inventory/{kind}?format=csv"
            )),
            "{kind}: CSV link {csv:?}"
        );
    }

    // Software: the API's first package (by name) is on the first page of the tab.
    open_tab(b, sid, "software").await?;
    let first = api
        .get(&format!(
            "/api/v1/servers/{sid}/inventory/software?per_page=1"
        ))
        .await?
        .expect(200)?;
    let first_name = first.json["items"][0]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let first_version = first.json["items"][0]["value"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let version = b
        .text(&format!(
            "#inventory-table tr[data-name={}] td[data-col=version]",
            css(&first_name)
        ))
        .await?;
    // Long versions are cut with an ellipsis (the whole one is the cell's title).
    let shown = version.trim_end_matches('…');
    ensure!(
        !shown.is_empty() && first_version.starts_with(shown),
        "software tab shows {first_name} at {version:?}, the API says {first_version:?}"
    );

    // The search box filters the software tab.
    let sw_one = all_items(&api, sid, "software").await?;
    let sw_two = all_items(&api, &two.server_id, "software").await?;
    let (pkg, pkg_version) = common_package(&sw_one, &sw_two)?;
    let q = b
        .client
        .find(Locator::Css("#inventory-search input[name=q]"))
        .await?;
    q.send_keys(&pkg).await?;
    b.client
        .find(Locator::Css("#inventory-search button[type=submit]"))
        .await?
        .click()
        .await?;
    b.wait_path(&format!("/servers/{sid}/inventory/software"), Some("q="))
        .await?;
    b.find(&format!("#inventory-table tr[data-name={}]", css(&pkg)))
        .await?;
    let want_rows = sw_one
        .iter()
        .filter(|i| {
            let l = pkg.to_lowercase();
            i["name"].as_str().unwrap_or("").to_lowercase().contains(&l)
                || i["value"]
                    .as_str()
                    .unwrap_or("")
                    .to_lowercase()
                    .contains(&l)
        })
        .count();
    let rows = b.count("#inventory-table tbody tr").await?;
    ensure!(
        rows == want_rows.min(PER_PAGE),
        "a search for {pkg:?} shows {rows} rows, want {want_rows}"
    );
    // Its CSV link downloads the same search with the console's session cookie.
    let csv = b
        .client
        .find(Locator::Css("#csv-download"))
        .await?
        .attr("href")
        .await?
        .unwrap_or_default();
    ensure!(
        csv.contains("format=csv") && csv.contains("q="),
        "CSV link {csv:?}"
    );
    let console = center.console_login(ADMIN_USER, ADMIN_PASSWORD).await?;
    let download = console.get(&html_unescape(&csv)).await?;
    ensure!(
        download.status == 200 && download.body.starts_with("name,value,key,data"),
        "CSV download answered {}: {}",
        download.status,
        truncate(&download.body, 300)
    );
    ensure!(
        download.body.lines().count() == want_rows + 1
            && download
                .body
                .lines()
                .skip(1)
                .any(|l| l.starts_with(&format!("{pkg},"))),
        "the CSV of {pkg:?} has {} lines, want {}: {}",
        download.body.lines().count(),
        want_rows + 1,
        truncate(&download.body, 300)
    );
    if let Some(p) = b.screenshot(env, "software-search").await {
        eprintln!("screenshot: {}", p.display());
    }

    // Accounts: root, uid 0, root-equivalent.
    open_tab(b, sid, "accounts").await?;
    let uid = b
        .text("#inventory-table tr[data-name=\"root\"] td[data-col=uid]")
        .await?;
    ensure!(uid == "0", "root's uid shows as {uid:?}");
    let root = b
        .text("#inventory-table tr[data-name=\"root\"] td[data-col=root]")
        .await?;
    ensure!(
        root.contains("root-equivalent") && root.contains("uid0"),
        "root's root-equivalence shows as {root:?}"
    );

    // Collect now: a port opened after the baseline shows on the ports tab and as "added" in
    // the change history.
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    open_tab(b, sid, "ports").await?;
    b.find("#collect-now").await?.click().await?;
    b.wait_path(
        &format!("/servers/{sid}/inventory/ports"),
        Some("done=collect"),
    )
    .await?;
    b.find("#flash").await?;
    let port_cell = "#inventory-table td[data-col=port]";
    wait_until(
        &format!("port {port} on the ports tab"),
        secs(30),
        millis(500),
        || async {
            b.client.refresh().await?;
            b.find("#inventory-table").await?;
            let mut ports = Vec::new();
            for c in b.client.find_all(Locator::Css(port_cell)).await? {
                ports.push(c.text().await?);
            }
            ensure!(ports.contains(&port.to_string()), "ports shown: {ports:?}");
            Ok(())
        },
    )
    .await?;
    let tasks = api
        .get(&format!("/api/v1/servers/{sid}/tasks"))
        .await?
        .expect(200)?;
    ensure!(
        tasks.json["items"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|t| t["kind"] == "collect_inventory" && t["params"]["kinds"][0] == "ports"),
        "no collect_inventory task for ports: {}",
        truncate(&tasks.text, 500)
    );

    open_tab(b, sid, "changes").await?;
    b.find("#changes").await?;
    b.client
        .find(Locator::Css("#change-filters select[name=kind]"))
        .await?
        .select_by_value("ports")
        .await?;
    b.client
        .find(Locator::Css("#change-filters select[name=change]"))
        .await?
        .select_by_value("added")
        .await?;
    b.client
        .find(Locator::Css("#change-filters button[type=submit]"))
        .await?
        .click()
        .await?;
    b.wait_path(&format!("/servers/{sid}/changes"), Some("kind=ports"))
        .await?;
    b.find("#changes").await?;
    let mut names = Vec::new();
    for r in b.client.find_all(Locator::Css("#changes tbody tr")).await? {
        ensure!(
            r.attr("data-kind").await?.as_deref() == Some("ports")
                && r.attr("data-change").await?.as_deref() == Some("added"),
            "the filtered history shows another row: {}",
            r.text().await?
        );
        names.push(r.find(Locator::Css("td.item-name")).await?.text().await?);
    }
    ensure!(
        names.iter().any(|n| n.starts_with(&format!("tcp/{port}"))),
        "the change history lacks the added port tcp/{port}: {names:?}"
    );
    drop(listener);

    // Back to the overview through its tab.
    open_tab(b, sid, "overview").await?;
    b.find("#statuses").await?;

    // Fleet-wide: the package is on both servers, with a chart.
    b.client
        .find(Locator::Css("header nav a[href=\"/assets\"]"))
        .await?
        .click()
        .await?;
    b.wait_path("/assets", None).await?;
    b.find("#asset-groups").await?;
    b.client
        .find(Locator::Css("#asset-search input[name=q]"))
        .await?
        .send_keys(&pkg)
        .await?;
    b.client
        .find(Locator::Css("#asset-search button[type=submit]"))
        .await?
        .click()
        .await?;
    b.wait_path("/assets", Some("q=")).await?;
    let row = format!(
        "#asset-groups tr[data-name={}][data-value={}]",
        css(&pkg),
        css(&pkg_version)
    );
    let n = b.text(&format!("{row} a.group-servers")).await?;
    ensure!(
        n == "2",
        "{pkg} {pkg_version} shows on {n:?} servers, want 2"
    );
    let bars = b.count("svg#asset-chart rect").await?;
    ensure!(bars >= 1, "the asset chart has {bars} bars");
    let title = b.text("#chart-title").await?;
    ensure!(!title.is_empty(), "the chart has no title");
    if let Some(p) = b.screenshot(env, "assets").await {
        eprintln!("screenshot: {}", p.display());
    }

    // The group leads to both servers.
    b.client
        .find(Locator::Css(&format!("{row} a.group-servers")))
        .await?
        .click()
        .await?;
    b.wait_path("/assets/software/servers", Some("name="))
        .await?;
    b.find("#asset-servers").await?;
    let mut ids = Vec::new();
    for r in b
        .client
        .find_all(Locator::Css("#asset-servers tr[data-server-id]"))
        .await?
    {
        ids.push(r.attr("data-server-id").await?.unwrap_or_default());
    }
    ids.sort();
    ids.dedup();
    let mut want_ids = vec![one.server_id.clone(), two.server_id.clone()];
    want_ids.sort();
    ensure!(ids == want_ids, "servers listed {ids:?}, want {want_ids:?}");
    let body = b.text("#asset-servers").await?;
    for a in [one, two] {
        let name = api.server(&a.server_id).await?["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        ensure!(
            body.contains(&name),
            "the server list lacks {name:?}: {body}"
        );
    }
    // A server link opens that server's page.
    b.client
        .find(Locator::Css(&format!(
            "#asset-servers tr[data-server-id={}] a.server-name",
            css(&two.server_id)
        )))
        .await?
        .click()
        .await?;
    b.wait_path(&format!("/servers/{}", two.server_id), None)
        .await?;

    // The fleet's change list shows the added port too.
    b.client
        .goto(&format!("{url}/assets/changes?kind=ports&change=added"))
        .await?;
    b.find("#changes").await?;
    let fleet = b.text("#changes").await?;
    ensure!(
        fleet.contains(&format!("tcp/{port}")),
        "the fleet change list lacks tcp/{port}: {}",
        truncate(&fleet, 500)
    );
    Ok(())
}
