//! Must hold #5: a viewer of project B (and, stronger, an admin of B) can neither read nor change
//! anything of project A, through any endpoint of the route table that takes an id or a project,
//! nor through the console. Objects of A answer 404 (as if absent); where an endpoint refuses by
//! role before looking at the object, the answer must be identical for a nonexistent id, so it
//! leaks nothing. Afterwards, A is verified unchanged.

use hostward_e2e::*;
use serde_json::{Value, json};

const PASSWORD: &str = "authz-test-password-42";
const NOWHERE: &str = "00000000-0000-4000-8000-000000000000";

/// Ids of project A's objects.
struct A {
    project: String,
    server: String,
    task: String,
    token: String,
    alice: String,
    alice_token: String,
    alice_api_token_id: String,
    /// A package A's agent reported.
    package: String,
    /// A vulnerability finding on A's server, and a whitelist rule of A.
    finding: String,
    rule: String,
    /// A brute-force alarm on A's server.
    alarm: String,
}

fn ids(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["id"].as_str().map(str::to_string))
        .collect()
}

/// One attempt on A's object and the same attempt on an object that does not exist.
struct Probe {
    method: &'static str,
    path: String,
    /// The same request aimed at nothing.
    control: String,
    body: Option<Value>,
}

fn probe(method: &'static str, path: String, control: String, body: Option<Value>) -> Probe {
    Probe {
        method,
        path,
        control,
        body,
    }
}

fn probes(a: &A, bob_id: &str) -> Vec<Probe> {
    let (s, t, k, u) = (&a.server, &a.task, &a.token, &a.alice);
    let n = NOWHERE;
    let p = &a.project;
    vec![
        probe("GET", format!("/api/v1/servers/{s}"), format!("/api/v1/servers/{n}"), None),
        probe("DELETE", format!("/api/v1/servers/{s}"), format!("/api/v1/servers/{n}"), None),
        probe("PUT", format!("/api/v1/servers/{s}/protection"), format!("/api/v1/servers/{n}/protection"), Some(json!({"enabled": false}))),
        probe("POST", format!("/api/v1/servers/{s}/revoke"), format!("/api/v1/servers/{n}/revoke"), None),
        probe("GET", format!("/api/v1/servers/{s}/tasks"), format!("/api/v1/servers/{n}/tasks"), None),
        probe("POST", format!("/api/v1/servers/{s}/tasks"), format!("/api/v1/servers/{n}/tasks"), Some(json!({"kind": "ping"}))),
        probe("GET", format!("/api/v1/tasks/{t}"), format!("/api/v1/tasks/{n}"), None),
        probe("DELETE", format!("/api/v1/enrollment-tokens/{k}"), format!("/api/v1/enrollment-tokens/{n}"), None),
        probe("DELETE", format!("/api/v1/users/{u}"), format!("/api/v1/users/{n}"), None),
        probe("PUT", format!("/api/v1/users/{u}/password"), format!("/api/v1/users/{n}/password"), Some(json!({"password": "hijacked-password-123"}))),
        probe("PUT", format!("/api/v1/users/{u}/roles"), format!("/api/v1/users/{n}/roles"), Some(json!({"project_id": p, "role": "admin"}))),
        probe("DELETE", format!("/api/v1/api-tokens/{}", a.alice_api_token_id), format!("/api/v1/api-tokens/{n}"), None),
        probe("GET", format!("/api/v1/servers/{s}/inventory"), format!("/api/v1/servers/{n}/inventory"), None),
        probe("GET", format!("/api/v1/servers/{s}/inventory/software"), format!("/api/v1/servers/{n}/inventory/software"), None),
        probe("GET", format!("/api/v1/servers/{s}/inventory/accounts?format=csv"), format!("/api/v1/servers/{n}/inventory/accounts?format=csv"), None),
        probe("GET", format!("/api/v1/servers/{s}/inventory/changes"), format!("/api/v1/servers/{n}/inventory/changes"), None),
        probe("POST", format!("/api/v1/servers/{s}/tasks"), format!("/api/v1/servers/{n}/tasks"), Some(json!({"kind": "collect_inventory", "params": {"full": true}}))),
        probe("GET", format!("/api/v1/projects/{p}/inventory-policy"), format!("/api/v1/projects/{n}/inventory-policy"), None),
        probe("PUT", format!("/api/v1/projects/{p}/inventory-policy"), format!("/api/v1/projects/{n}/inventory-policy"), Some(json!({"interval_secs": {"ports": 0}}))),
        probe("GET", format!("/api/v1/assets/software?project={p}"), format!("/api/v1/assets/software?project={n}"), None),
        probe("GET", format!("/api/v1/inventory/changes?project={p}"), format!("/api/v1/inventory/changes?project={n}"), None),
        probe("GET", format!("/api/v1/servers/{s}/vulnerabilities"), format!("/api/v1/servers/{n}/vulnerabilities"), None),
        probe("GET", format!("/api/v1/servers/{s}/vulnerabilities?format=csv"), format!("/api/v1/servers/{n}/vulnerabilities?format=csv"), None),
        probe("GET", format!("/api/v1/servers/{s}/weak-passwords"), format!("/api/v1/servers/{n}/weak-passwords"), None),
        probe("GET", format!("/api/v1/servers/{s}/password-policy"), format!("/api/v1/servers/{n}/password-policy"), None),
        probe("GET", format!("/api/v1/servers/{s}/risk"), format!("/api/v1/servers/{n}/risk"), None),
        probe("GET", format!("/api/v1/vulnerabilities/findings/{}", a.finding), format!("/api/v1/vulnerabilities/findings/{n}"), None),
        probe("DELETE", format!("/api/v1/vulnerability-rules/{}", a.rule), format!("/api/v1/vulnerability-rules/{n}"), None),
        probe("GET", format!("/api/v1/projects/{p}/risk-policy"), format!("/api/v1/projects/{n}/risk-policy"), None),
        probe("PUT", format!("/api/v1/projects/{p}/risk-policy"), format!("/api/v1/projects/{n}/risk-policy"), Some(json!({"allow_fix": true}))),
        probe("GET", format!("/api/v1/vulnerabilities?project={p}"), format!("/api/v1/vulnerabilities?project={n}"), None),
        probe("GET", format!("/api/v1/vulnerabilities/findings?project={p}"), format!("/api/v1/vulnerabilities/findings?project={n}"), None),
        probe("GET", format!("/api/v1/weak-passwords?project={p}"), format!("/api/v1/weak-passwords?project={n}"), None),
        probe("GET", format!("/api/v1/password-policy?project={p}"), format!("/api/v1/password-policy?project={n}"), None),
        probe("GET", format!("/api/v1/scans?project={p}"), format!("/api/v1/scans?project={n}"), None),
        probe("GET", format!("/api/v1/vulnerability-rules?project={p}"), format!("/api/v1/vulnerability-rules?project={n}"), None),
        probe("GET", format!("/api/v1/alarms/{}", a.alarm), format!("/api/v1/alarms/{n}"), None),
        probe("GET", format!("/api/v1/alarms?project={p}"), format!("/api/v1/alarms?project={n}"), None),
        probe("GET", format!("/api/v1/alarms?server={s}"), format!("/api/v1/alarms?server={n}"), None),
        probe("GET", format!("/api/v1/alarm-whitelist?project={p}"), format!("/api/v1/alarm-whitelist?project={n}"), None),
        probe("GET", format!("/api/v1/blocked-ips?project={p}"), format!("/api/v1/blocked-ips?project={n}"), None),
        probe("GET", format!("/api/v1/servers/{s}/blocked-ips"), format!("/api/v1/servers/{n}/blocked-ips"), None),
        probe("POST", format!("/api/v1/servers/{s}/blocked-ips"), format!("/api/v1/servers/{n}/blocked-ips"), Some(json!({"addr": "192.0.2.66", "minutes": 5}))),
        probe("DELETE", format!("/api/v1/servers/{s}/blocked-ips/192.0.2.77"), format!("/api/v1/servers/{n}/blocked-ips/192.0.2.77"), None),
        probe("GET", format!("/api/v1/servers/{s}/login-ips"), format!("/api/v1/servers/{n}/login-ips"), None),
        probe("PUT", format!("/api/v1/servers/{s}/login-ips"), format!("/api/v1/servers/{n}/login-ips"), Some(json!({"ips": ["192.0.2.66"], "learning": true}))),
        probe("GET", format!("/api/v1/servers/{s}/ssh-whitelist"), format!("/api/v1/servers/{n}/ssh-whitelist"), None),
        probe("PUT", format!("/api/v1/servers/{s}/ssh-whitelist"), format!("/api/v1/servers/{n}/ssh-whitelist"), Some(json!({"enabled": true, "addrs": ["127.0.0.1", "192.0.2.66"]}))),
    ]
    .into_iter()
    .chain([
        // Bodies that name A's objects or project.
        Probe {
            method: "POST",
            path: "/api/v1/tasks".into(),
            control: "/api/v1/tasks".into(),
            body: Some(json!({"server_ids": [s], "kind": "ping"})),
        },
        Probe {
            method: "POST",
            path: "/api/v1/tasks".into(),
            control: "/api/v1/tasks".into(),
            body: Some(json!({"all": true, "project_id": p, "kind": "ping"})),
        },
        Probe {
            method: "POST",
            path: "/api/v1/servers".into(),
            control: "/api/v1/servers".into(),
            body: Some(json!({"project_id": p, "name": "planted"})),
        },
        Probe {
            method: "POST",
            path: "/api/v1/enrollment-tokens".into(),
            control: "/api/v1/enrollment-tokens".into(),
            body: Some(json!({"project_id": p, "name": "planted"})),
        },
        Probe {
            method: "POST",
            path: "/api/v1/users".into(),
            control: "/api/v1/users".into(),
            body: Some(json!({"username": "planted", "password": "planted-password-123", "project_id": p, "role": "admin"})),
        },
        // Handling A's finding, a rule in A, a scan of A's server.
        Probe {
            method: "POST",
            path: "/api/v1/vulnerabilities/actions".into(),
            control: "/api/v1/vulnerabilities/actions".into(),
            body: Some(json!({"action": "ignore", "finding_ids": [a.finding]})),
        },
        Probe {
            method: "POST",
            path: "/api/v1/vulnerability-rules".into(),
            control: "/api/v1/vulnerability-rules".into(),
            body: Some(json!({"project_id": p, "cve": "CVE-2099-0001", "reason": "planted"})),
        },
        Probe {
            method: "POST",
            path: "/api/v1/tasks".into(),
            control: "/api/v1/tasks".into(),
            body: Some(json!({"server_ids": [s], "kind": "risk_scan"})),
        },
        Probe {
            method: "POST",
            path: "/api/v1/alarms/actions".into(),
            control: "/api/v1/alarms/actions".into(),
            body: Some(json!({"action": "handle", "alarm_ids": [a.alarm]})),
        },
        Probe {
            method: "POST",
            path: "/api/v1/alarms/actions".into(),
            control: "/api/v1/alarms/actions".into(),
            body: Some(json!({"action": "login_whitelist", "alarm_ids": [a.alarm]})),
        },
        Probe {
            method: "POST",
            path: "/api/v1/alarm-whitelist".into(),
            control: "/api/v1/alarm-whitelist".into(),
            body: Some(json!({"project_id": p, "source_ip": "192.0.2.66", "reason": "planted"})),
        },
        // Promoting oneself into A.
        Probe {
            method: "PUT",
            path: format!("/api/v1/users/{bob_id}/roles"),
            control: format!("/api/v1/users/{bob_id}/roles"),
            body: Some(json!({"project_id": p, "role": "admin"})),
        },
    ])
    .collect()
}

/// Replaces A's project id in a control body by a nonexistent one, and A's server id too.
fn control_body(body: &Option<Value>, a: &A) -> Option<Value> {
    body.as_ref().map(|b| {
        let text = b
            .to_string()
            .replace(&a.project, NOWHERE)
            .replace(&a.server, NOWHERE)
            .replace(&a.finding, NOWHERE)
            .replace(&a.alarm, NOWHERE);
        serde_json::from_str(&text).unwrap()
    })
}

async fn check_api(who: &str, api: &Api, a: &A, bob_id: &str) -> Result<()> {
    let mut failures = Vec::new();
    for pr in probes(a, bob_id) {
        let r = api.send(pr.method, &pr.path, pr.body.clone()).await?;
        if r.status == 404 {
            continue;
        }
        if r.status == 403 {
            // Refused by role before the object was looked at: fine if nothing tells A's object
            // apart from a missing one.
            let c = api
                .send(pr.method, &pr.control, control_body(&pr.body, a))
                .await?;
            if c.status == 403 && c.error_code() == r.error_code() {
                continue;
            }
            failures.push(format!(
                "{who}: {} {} answered 403 {} but the same request on nothing answered {} {}: the difference leaks A's object",
                pr.method,
                pr.path,
                r.error_code(),
                c.status,
                c.error_code()
            ));
            continue;
        }
        failures.push(format!(
            "{who}: {} {} body {:?} answered {} (want 404): {}",
            pr.method,
            pr.path,
            pr.body,
            r.status,
            truncate(&r.text, 300)
        ));
    }

    // Lists show nothing of A.
    for path in [
        format!("/api/v1/servers?project={}", a.project),
        "/api/v1/servers?per_page=500".to_string(),
    ] {
        let r = api.get(&path).await?;
        if r.status == 200 {
            if ids(&r.json).contains(&a.server) {
                failures.push(format!("{who}: GET {path} lists A's server"));
            }
        } else if r.status != 404 && r.status != 403 {
            failures.push(format!("{who}: GET {path} answered {}", r.status));
        }
    }
    let r = api.get("/api/v1/enrollment-tokens").await?;
    if r.status == 200 && ids(&r.json).contains(&a.token) {
        failures.push(format!(
            "{who}: GET /api/v1/enrollment-tokens lists A's token"
        ));
    }
    let r = api.get("/api/v1/users").await?;
    if r.status == 200 && (ids(&r.json).contains(&a.alice) || r.text.contains(&a.project)) {
        failures.push(format!(
            "{who}: GET /api/v1/users shows A's user or project: {}",
            truncate(&r.text, 500)
        ));
    }
    let r = api.get("/api/v1/projects").await?;
    if r.text.contains(&a.project) {
        failures.push(format!(
            "{who}: GET /api/v1/projects shows project A: {}",
            truncate(&r.text, 300)
        ));
    }
    // Fleet-wide inventory views: B has no inventory, so anything listed is A's.
    for path in [
        "/api/v1/assets/software".to_string(),
        "/api/v1/assets/accounts?q=root".to_string(),
        "/api/v1/assets/software?format=csv".to_string(),
        format!("/api/v1/assets/software/servers?name={}", a.package),
        "/api/v1/inventory/changes".to_string(),
    ] {
        let r = api.get(&path).await?;
        let leaked = if path.contains("format=csv") {
            r.text.lines().count() > 1
        } else {
            r.json["total"] != 0 || r.text.contains(&a.server)
        };
        if r.status != 200 || leaked {
            failures.push(format!(
                "{who}: GET {path} answered {} and shows A's inventory: {}",
                r.status,
                truncate(&r.text, 300)
            ));
        }
    }
    // Fleet-wide risk views: B has no findings, weak passwords, policy results, scans or rules.
    for path in [
        "/api/v1/vulnerabilities",
        "/api/v1/vulnerabilities/findings",
        "/api/v1/vulnerabilities/findings?format=csv",
        "/api/v1/weak-passwords",
        "/api/v1/password-policy",
        "/api/v1/scans",
        "/api/v1/vulnerability-rules",
        "/api/v1/alarms",
        "/api/v1/alarm-whitelist",
        "/api/v1/blocked-ips?active=false",
    ] {
        let r = api.get(path).await?;
        let leaked = if path.contains("format=csv") {
            r.text.lines().count() > 1
        } else {
            r.text.contains(&a.server)
                || r.text.contains(&a.alarm)
                || r.text.contains("192.0.2.77")
                || r.text.contains(&a.finding)
                || r.text.contains(&a.rule)
                || r.text.contains("CVE-2099-0000")
        };
        if r.status != 200 || leaked {
            failures.push(format!(
                "{who}: GET {path} answered {} and shows A's risks: {}",
                r.status,
                truncate(&r.text, 300)
            ));
        }
    }
    let r = api.get(&format!("/api/v1/tasks/{}", a.task)).await?;
    if r.text.contains(&a.server) {
        failures.push(format!("{who}: task detail leaks A's server id"));
    }
    ensure!(
        failures.is_empty(),
        "authorization leaks:\n{}",
        failures.join("\n")
    );
    Ok(())
}

async fn check_console(who: &str, console: &Console, a: &A, own_server: &str) -> Result<()> {
    let page = console.get(&format!("/servers/{}", a.server)).await?;
    ensure!(
        page.status == 404,
        "{who}: console GET /servers/{{A's id}} answered {} (want 404)",
        page.status
    );
    let list = console.get("/servers").await?;
    ensure!(
        list.status == 200,
        "{who}: console /servers answered {}",
        list.status
    );
    let rows: Vec<String> = server_rows(&list.body)
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    ensure!(
        !rows.contains(&a.server) && !list.body.contains(&a.server),
        "{who}: console /servers shows A's server"
    );
    ensure!(
        rows.contains(&own_server.to_string()),
        "{who}: console /servers should list B's own server; rows {rows:?}"
    );
    let tokens = console.get("/tokens").await?;
    ensure!(
        !tokens.body.contains(&a.token),
        "{who}: console /tokens shows A's token"
    );

    /// Inventory kinds, as the console's tab URLs name them.
    const INVENTORY_KINDS: [&str; 7] = [
        "accounts",
        "ports",
        "processes",
        "software",
        "autostart",
        "kernel_modules",
        "middleware",
    ];

    /// Percent-encoding for a query value.
    fn urlencode(s: &str) -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    }

    // Every inventory tab of A's server, its searches and pages, and the CSV downloads its
    // pages link to (the REST API, with this console session's cookie).
    let s = &a.server;
    let pkg = urlencode(&a.package);
    let mut pages = vec![
        format!("/servers/{s}/changes"),
        format!("/servers/{s}/changes?kind=software&change=added&q={pkg}&page=2"),
        format!("/servers/{s}/inventory/no-such-kind"),
        format!("/api/v1/servers/{s}/inventory"),
        format!("/api/v1/servers/{s}/inventory/changes?format=csv"),
    ];
    for kind in INVENTORY_KINDS {
        pages.push(format!("/servers/{s}/inventory/{kind}"));
        pages.push(format!("/servers/{s}/inventory/{kind}?q={pkg}&page=2"));
        pages.push(format!("/api/v1/servers/{s}/inventory/{kind}?format=csv"));
        pages.push(format!(
            "/api/v1/servers/{s}/inventory/{kind}?format=csv&q={pkg}"
        ));
    }
    // Fleet pages narrowed to A's project.
    let p = &a.project;
    pages.push(format!("/assets?project={p}"));
    pages.push(format!("/assets/changes?project={p}"));
    pages.push(format!("/assets/software/servers?name={pkg}&project={p}"));
    pages.push(format!("/servers/{s}/risks"));
    pages.push(format!("/servers/{s}/login-ips"));
    pages.push(format!("/servers/{s}/ssh-whitelist"));
    pages.push(format!("/alarms/{}", a.alarm));
    pages.push(format!("/alarms?project={p}"));
    pages.push(format!("/vulnerabilities/findings/{}", a.finding));
    pages.push(format!("/vulnerabilities?project={p}"));
    for path in &pages {
        let r = console.get(path).await?;
        ensure!(
            r.status == 404 || r.status == 403,
            "{who}: console GET {path} answered {} (want 404): {}",
            r.status,
            truncate(&r.body, 300)
        );
    }

    // The same pages of B's own server answer: the 404s above came from authorization.
    for path in [
        format!("/servers/{own_server}/changes"),
        format!("/servers/{own_server}/inventory/software?q={pkg}"),
        format!("/api/v1/servers/{own_server}/inventory/accounts?format=csv"),
    ] {
        let r = console.get(&path).await?;
        ensure!(
            r.status == 200,
            "{who}: control console GET {path} answered {}",
            r.status
        );
    }

    // Fleet-wide pages: B has no inventory, so every list is empty and names nothing of A.
    let mut fleet = vec![
        ("/assets".to_string(), "id=\"assets-empty\""),
        (
            format!("/assets?kind=software&q={pkg}"),
            "id=\"assets-empty\"",
        ),
        (
            format!("/assets/software/servers?name={pkg}"),
            "id=\"asset-servers-empty\"",
        ),
        ("/assets/changes".to_string(), "id=\"changes-empty\""),
        (
            format!("/assets/changes?kind=software&q={pkg}"),
            "id=\"changes-empty\"",
        ),
    ];
    for kind in INVENTORY_KINDS {
        fleet.push((format!("/assets?kind={kind}"), "id=\"assets-empty\""));
    }
    for (path, empty) in &fleet {
        let r = console.get(path).await?;
        ensure!(
            r.status == 200,
            "{who}: console GET {path} answered {}",
            r.status
        );
        ensure!(
            r.body.contains(empty) && !r.body.contains(&a.server) && !r.body.contains(p.as_str()),
            "{who}: console GET {path} shows A's inventory: {}",
            truncate(&strip_tags(&r.body), 500)
        );
    }
    // And the CSV downloads of the fleet pages hold a header line only.
    for path in [
        format!("/api/v1/assets/software?format=csv&q={pkg}"),
        format!("/api/v1/assets/software/servers?name={pkg}&format=csv"),
        "/api/v1/inventory/changes?format=csv".to_string(),
    ] {
        let r = console.get(&path).await?;
        ensure!(
            r.status == 200 && r.body.lines().count() == 1,
            "{who}: console session GET {path} answered {} with A's inventory: {}",
            r.status,
            truncate(&r.body, 300)
        );
    }

    // Console writes on A's objects, with a valid CSRF token of this session.
    let csrf = hidden_inputs(&list.body)
        .into_iter()
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v)
        .ok_or_else(|| anyhow!("{who}: no csrf field on /servers"))?;
    for (path, extra) in [
        (
            format!("/servers/{}/protection", a.server),
            vec![("enabled".to_string(), "false".to_string())],
        ),
        (
            format!("/servers/{}/revoke", a.server),
            vec![("confirm".to_string(), "yes".to_string())],
        ),
        (format!("/tokens/{}/revoke", a.token), vec![]),
        (
            format!("/servers/{}/inventory/software/collect", a.server),
            vec![],
        ),
        (
            format!("/servers/{}/inventory/ports/collect", a.server),
            vec![],
        ),
        (format!("/servers/{}/risks/scan", a.server), vec![]),
        (
            format!("/servers/{}/login-ips", a.server),
            vec![
                ("ips".to_string(), "192.0.2.66".to_string()),
                ("learning".to_string(), "1".to_string()),
            ],
        ),
        (
            format!("/servers/{}/ssh-whitelist", a.server),
            vec![
                ("addrs".to_string(), "127.0.0.1\n192.0.2.66".to_string()),
                ("enabled".to_string(), "1".to_string()),
            ],
        ),
        (
            "/vulnerabilities/actions".to_string(),
            vec![
                ("action".to_string(), "ignore".to_string()),
                (format!("finding_{}", a.finding), "on".to_string()),
            ],
        ),
        (format!("/risk/rules/{}/delete", a.rule), vec![]),
        (
            "/alarms/actions".to_string(),
            vec![
                ("action".to_string(), "handle".to_string()),
                (format!("alarm_{}", a.alarm), "on".to_string()),
            ],
        ),
    ] {
        let mut fields = vec![("csrf".to_string(), csrf.clone())];
        fields.extend(extra);
        let r = console.post_form(&path, &fields).await?;
        ensure!(
            r.status == 404 || r.status == 403,
            "{who}: console POST {path} answered {} (want 404)",
            r.status
        );
        if r.status == 403 {
            eprintln!("note: {who}: console POST {path} answered 403");
        }
    }
    Ok(())
}

/// A's server has 192.0.2.77 blocked, in the center's list and in its firewall.
async fn a_blocks(root: &Api, lab: &hostward_e2e::lab::Netns, server: &str) -> Result<()> {
    let r = root
        .get(&format!("/api/v1/servers/{server}/blocked-ips"))
        .await?
        .expect(200)?;
    let active = r.json["items"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|b| b["addr"] == "192.0.2.77" && b["active"] == true);
    ensure!(
        active,
        "192.0.2.77 is not blocked on A's server: {}",
        r.text
    );
    ensure!(
        lab.nft_set("blocked4").await?.contains("192.0.2.77"),
        "192.0.2.77 is not in A's firewall"
    );
    Ok(())
}

#[tokio::test]
async fn project_b_cannot_touch_project_a() -> Result<()> {
    let env = TestEnv::new("authorization");
    env.run(async {
        let center = Center::start(&env, Backend::Sqlite, CenterOpts::default()).await?;
        let root = center.api();
        let project_a = center.add_project("alpha").await?;
        let project_b = center.add_project("beta").await?;

        // Project A: an enrolled agent's server, a task on it, a token, a member with an API token.
        let tok_a = center
            .create_token(&["--project", "alpha", "--name", "alpha-token"])
            .await?;
        let mut agent_a = Agent::new(&env, "alpha");
        agent_a.enroll(&env, &center, &tok_a.secret).await?;
        // A's agent follows a log file of this test and blocks in a network namespace of its
        // own, so A has a real alarm and a real blocked address while the host's firewall
        // stays untouched.
        let lab = hostward_e2e::lab::Netns::new().await?;
        let auth_log = env.root().join("alpha-auth.log");
        std::fs::write(&auth_log, "")?;
        let config = agent_a.dir.join("agent.toml");
        std::fs::write(
            &config,
            format!(
                "state_dir = {:?}\n[authlog]\nsource = \"files\"\n[authlog.ssh]\npath = {:?}\n[authlog.ftp]\nenabled = false\n[authlog.mysql]\nenabled = false\n{}",
                agent_a.state_dir.display().to_string(),
                auth_log.display().to_string(),
                lab.firewall_toml(&[22])
            ),
        )?;
        agent_a.run_with(&env, &["--config", &config.display().to_string()])?;
        root.wait_status(&agent_a.server_id, "online", None, secs(30))
            .await?;
        // A's inventory is in, so a leak of it would show.
        let software = format!("/api/v1/servers/{}/inventory/software", agent_a.server_id);
        let inv = wait_until("A's software inventory", secs(60), millis(300), || async {
            let r = root.get(&software).await?.expect(200)?;
            ensure!(r.json["total"].as_i64().unwrap_or(0) > 0, "no software yet");
            Ok(r.json)
        })
        .await?;
        let package = inv["items"][0]["name"]
            .as_str()
            .ok_or_else(|| anyhow!("no package name in {inv}"))?
            .to_string();
        // A vulnerability of that package on A's server, and a whitelist rule in A.
        let item = &inv["items"][0]["data"];
        let source = item["source"].as_str().unwrap_or(&package).to_string();
        let version = item["source_version"].as_str().or(item["version"].as_str()).unwrap_or("0").to_string();
        let feed = env.root().join("authz-feed.json");
        std::fs::write(
            &feed,
            json!({
                "id": "HW-AUTHZ-1", "aliases": ["CVE-2099-0000"], "summary": "authz fixture",
                "affected": [{"package": {"ecosystem": "Debian:12", "name": source},
                    "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": format!("{version}+hw1")}]}]}],
            })
            .to_string(),
        )?;
        center.cli(&["vulndb", "import", &feed.display().to_string()], None).await?.ok()?;
        let findings = format!("/api/v1/servers/{}/vulnerabilities", agent_a.server_id);
        let finding = wait_until("A's vulnerability finding", secs(60), millis(300), || async {
            let r = root.get(&findings).await?.expect(200)?;
            r.json["items"][0]["id"].as_str().map(str::to_string).ok_or_else(|| anyhow!("no finding yet: {}", r.text))
        })
        .await?;
        let rule = root
            .post("/api/v1/vulnerability-rules", json!({"project_id": project_a, "package": "hw-authz-none", "reason": "fixture"}))
            .await?
            .expect(201)?;
        let rule = rule.json["rule"]["id"].as_str().unwrap_or_default().to_string();
        // A brute-force alarm on A's server, from five failures in its log.
        let mut lines = String::new();
        for port in 40000..40005 {
            lines.push_str(&format!(
                "Dec  1 12:00:00 alpha sshd[77]: Failed password for root from 192.0.2.77 port {port} ssh2\n"
            ));
        }
        std::fs::OpenOptions::new().append(true).open(&auth_log).and_then(|mut f| {
            use std::io::Write as _;
            f.write_all(lines.as_bytes())
        })?;
        let alarm = wait_until("A's brute-force alarm", secs(30), millis(200), || async {
            let r = root.get(&format!("/api/v1/alarms?server={}", agent_a.server_id)).await?.expect(200)?;
            r.json["items"][0]["id"].as_str().map(str::to_string).ok_or_else(|| anyhow!("no alarm yet: {}", r.text))
        })
        .await?;
        wait_until("A's blocked address", secs(30), millis(200), || a_blocks(&root, &lab, &agent_a.server_id)).await?;
        let task = root
            .post(
                &format!("/api/v1/servers/{}/tasks", agent_a.server_id),
                json!({"kind": "ping"}),
            )
            .await?
            .expect(201)?;
        let task_id = task.json["items"][0]["id"]
            .as_str()
            .ok_or_else(|| anyhow!("task create answered {}", task.text))?
            .to_string();
        center
            .add_user(
                "alice",
                PASSWORD,
                &["--project", "alpha", "--role", "viewer"],
            )
            .await?;
        let alice_token = center.api_token("alice").await?;
        let alice = center.api_as(&alice_token);
        let mine = alice.get("/api/v1/api-tokens").await?.expect(200)?;
        let alice_api_token_id = ids(&mine.json)
            .first()
            .cloned()
            .ok_or_else(|| anyhow!("alice has no API tokens: {}", mine.text))?;
        let alice_id = root.user_id("alice").await?;
        let a = A {
            project: project_a.clone(),
            server: agent_a.server_id.clone(),
            task: task_id,
            token: tok_a.id.clone(),
            alice: alice_id,
            alice_token,
            alice_api_token_id,
            package,
            finding,
            rule,
            alarm,
        };

        // Project B: a server, a viewer and an admin.
        let out = center
            .cli(
                &[
                    "server",
                    "add",
                    "beta-web",
                    "--project",
                    "beta",
                    "--ip",
                    "192.0.2.20",
                ],
                None,
            )
            .await?
            .ok()?;
        let server_b = out
            .stdout
            .trim()
            .lines()
            .last()
            .unwrap_or_default()
            .to_string();
        center
            .add_user("bob", PASSWORD, &["--project", "beta", "--role", "viewer"])
            .await?;
        center
            .add_user("carol", PASSWORD, &["--project", "beta", "--role", "admin"])
            .await?;
        let bob_id = root.user_id("bob").await?;
        let carol_id = root.user_id("carol").await?;
        let bob = center.api_as(&center.api_token("bob").await?);
        let carol = center.api_as(&center.api_token("carol").await?);

        // Positive controls: B's members do see B.
        let r = bob.get(&format!("/api/v1/servers/{server_b}")).await?;
        ensure!(
            r.status == 200,
            "bob should see B's server: {} {}",
            r.status,
            r.text
        );
        ensure!(
            carol
                .get("/api/v1/projects")
                .await?
                .text
                .contains(&project_b),
            "carol should see project B"
        );

        // A's server has its own usual login addresses; B must neither see nor change them.
        let login_ips_a = format!("/api/v1/servers/{}/login-ips", a.server);
        let before = root
            .put(&login_ips_a, json!({"ips": ["192.0.2.50", "2001:db8::/32"], "learning": false}))
            .await?
            .expect(200)?
            .json;

        check_api("viewer of B", &bob, &a, &bob_id).await?;
        check_api("admin of B", &carol, &a, &carol_id).await?;

        let console = center.console_login("bob", PASSWORD).await?;
        check_console("viewer of B", &console, &a, &server_b).await?;
        let console = center.console_login("carol", PASSWORD).await?;
        check_console("admin of B", &console, &a, &server_b).await?;

        // A is untouched.
        let after = root.get(&login_ips_a).await?.expect(200)?.json;
        ensure!(after == before, "A's usual login addresses changed: {before} -> {after}");
        let s = root.server(&a.server).await?;
        ensure!(
            s["agent_id"] == agent_a.agent_id.as_str(),
            "A's server lost its agent: {s}"
        );
        ensure!(s["revoked_at"].is_null(), "A's agent was revoked: {s}");
        ensure!(
            s["protection_wanted"] == true,
            "A's protection was switched: {s}"
        );
        let policy = root
            .get(&format!("/api/v1/projects/{}/inventory-policy", a.project))
            .await?
            .expect(200)?;
        ensure!(
            policy.json["version"] == 0,
            "A's inventory policy was changed: {}",
            policy.text
        );
        ensure!(
            s["agent_status"] == "online",
            "A's agent went {}",
            status_line(&s)
        );
        let risk_policy = root.get(&format!("/api/v1/projects/{}/risk-policy", a.project)).await?.expect(200)?;
        ensure!(
            risk_policy.json["version"] == 0 && risk_policy.json["policy"]["allow_fix"] == false,
            "A's risk policy was changed: {}",
            risk_policy.text
        );
        let f = root.get(&format!("/api/v1/vulnerabilities/findings/{}", a.finding)).await?.expect(200)?;
        ensure!(f.json["finding"]["state"] == "unhandled", "A's finding was handled: {}", f.text);
        let alarm = root.get(&format!("/api/v1/alarms/{}", a.alarm)).await?.expect(200)?;
        ensure!(alarm.json["alarm"]["state"] == "unhandled", "A's alarm was handled: {}", alarm.text);
        a_blocks(&root, &lab, &a.server).await.context("A's blocked address was lifted")?;
        let rules = root.get(&format!("/api/v1/vulnerability-rules?project={}", a.project)).await?.expect(200)?;
        ensure!(rules.json["items"].as_array().map(|v| v.len()) == Some(1), "A's rules changed: {}", rules.text);
        let tasks = root
            .get(&format!("/api/v1/servers/{}/tasks", a.server))
            .await?
            .expect(200)?;
        ensure!(
            ids(&tasks.json) == vec![a.task.clone()],
            "A's tasks changed: {}",
            tasks.text
        );
        let toks = root.get("/api/v1/enrollment-tokens").await?.expect(200)?;
        let t = toks.json["items"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| t["id"] == a.token.as_str())
            .cloned();
        ensure!(
            t.as_ref().is_some_and(|t| t["revoked_at"].is_null()),
            "A's token was revoked or removed: {t:?}"
        );
        ensure!(
            !toks.text.contains("planted"),
            "a token was planted in A: {}",
            toks.text
        );
        let servers = root.servers().await?;
        ensure!(
            !servers.iter().any(|s| s["name"] == "planted"),
            "a server was planted"
        );
        let users = root.get("/api/v1/users").await?.expect(200)?;
        ensure!(!users.text.contains("planted"), "a user was planted");
        let alice_now = users.json["items"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|u| u["id"] == a.alice.as_str())
            .cloned();
        let roles = alice_now
            .as_ref()
            .map(|u| u["roles"].clone())
            .unwrap_or_default();
        ensure!(
            roles.as_array().is_some_and(|r| r.len() == 1
                && r[0]["project_id"] == a.project.as_str()
                && r[0]["role"] == "viewer"),
            "alice's roles changed: {roles}"
        );
        for (name, id) in [("bob", &bob_id), ("carol", &carol_id)] {
            let u = users.json["items"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|u| u["id"] == id.as_str())
                .cloned()
                .unwrap_or_default();
            ensure!(
                !u["roles"].to_string().contains(&a.project),
                "{name} got a role in A: {u}"
            );
        }
        center
            .api_as(&a.alice_token)
            .get("/api/v1/projects")
            .await?
            .expect(200)?;
        let again = center.console_login("alice", PASSWORD).await;
        ensure!(
            again.is_ok(),
            "alice's password was changed: {:?}",
            again.err()
        );

        // Alice, A's viewer, reads A's objects by the very ids used above: they were right.
        alice
            .get(&format!("/api/v1/servers/{}", a.server))
            .await?
            .expect(200)?;
        alice
            .get(&format!("/api/v1/tasks/{}", a.task))
            .await?
            .expect(200)?;

        route_controls(&root, &carol, &server_b, &bob_id).await
    })
    .await
}

/// The same routes and bodies, aimed by B's admin at B's own objects (and by the superadmin for
/// the superadmin-only ones), do work: so every 404 above came from authorization, not from a
/// mistyped route or body.
async fn route_controls(root: &Api, carol: &Api, server_b: &str, bob_id: &str) -> Result<()> {
    let ok = |r: Resp| -> Result<Resp> {
        ensure!(
            (200..300).contains(&r.status),
            "control {} answered {}: {}",
            r.what,
            r.status,
            truncate(&r.text, 300)
        );
        Ok(r)
    };
    ok(carol.get(&format!("/api/v1/servers/{server_b}")).await?)?;
    ok(carol
        .put(
            &format!("/api/v1/servers/{server_b}/protection"),
            json!({"enabled": false}),
        )
        .await?)?;
    ok(carol
        .get(&format!("/api/v1/servers/{server_b}/tasks"))
        .await?)?;
    let t = ok(carol
        .post(
            &format!("/api/v1/servers/{server_b}/tasks"),
            json!({"kind": "ping"}),
        )
        .await?)?;
    let task_b = t.json["items"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    ok(carol.get(&format!("/api/v1/tasks/{task_b}")).await?)?;
    ok(carol
        .post(
            "/api/v1/tasks",
            json!({"server_ids": [server_b], "kind": "ping"}),
        )
        .await?)?;
    // B's server has no agent: the route exists and says so.
    let r = carol
        .send("POST", &format!("/api/v1/servers/{server_b}/revoke"), None)
        .await?;
    ensure!(
        r.status == 409,
        "control revoke on an agentless server answered {}: {}",
        r.status,
        r.text
    );
    let tok = ok(carol
        .post("/api/v1/enrollment-tokens", json!({"name": "b-token"}))
        .await?)?;
    let tok_b = tok.json["id"].as_str().unwrap_or_default().to_string();
    ok(carol
        .delete(&format!("/api/v1/enrollment-tokens/{tok_b}"))
        .await?)?;
    ok(carol
        .put(
            &format!("/api/v1/users/{bob_id}/roles"),
            json!({"project_id": project_of(carol).await?, "role": "viewer"}),
        )
        .await?)?;
    ok(carol
        .put(
            &format!("/api/v1/users/{bob_id}/password"),
            json!({"password": PASSWORD}),
        )
        .await?)?;
    let own = ok(carol
        .post("/api/v1/api-tokens", json!({"name": "spare"}))
        .await?)?;
    let own_id = own.json["id"].as_str().unwrap_or_default().to_string();
    ok(carol
        .delete(&format!("/api/v1/api-tokens/{own_id}"))
        .await?)?;
    let temp = ok(root
        .post(
            "/api/v1/users",
            json!({"username": "temp", "password": "temporary-password-1"}),
        )
        .await?)?;
    let temp_id = temp.json["id"].as_str().unwrap_or_default().to_string();
    ok(root.delete(&format!("/api/v1/users/{temp_id}")).await?)?;
    ok(carol.delete(&format!("/api/v1/servers/{server_b}")).await?)?;
    Ok(())
}

/// The only project the caller belongs to.
async fn project_of(api: &Api) -> Result<String> {
    let r = api.get("/api/v1/projects").await?.expect(200)?;
    let list = r.json["items"]
        .as_array()
        .or(r.json.as_array())
        .cloned()
        .unwrap_or_default();
    ensure!(list.len() == 1, "want one project: {}", r.text);
    Ok(list[0]["id"].as_str().unwrap_or_default().to_string())
}
