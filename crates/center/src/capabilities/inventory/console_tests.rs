//! The inventory pages' pure pieces (charts, cells, diffs, change views), tested on fixtures.

use super::*;
use serde_json::json;

#[test]
fn bars_scale_to_the_largest_and_never_vanish() {
    assert_eq!(scale(10, 10, 340), 340);
    assert_eq!(scale(5, 10, 340), 170);
    assert_eq!(
        scale(1, 100_000, 340),
        1,
        "a present group keeps a visible bar"
    );
    assert_eq!(scale(0, 10, 340), 0);
    assert_eq!(scale(-3, 10, 340), 0);
    assert_eq!(scale(3, 0, 340), 0);
    assert_eq!(scale(20, 10, 340), 340, "never wider than the chart");
    assert_eq!(scale(1, 3, 80), 27);
}

#[test]
fn chart_lays_out_rows_and_caps_the_bar_count() {
    let data: Vec<(String, String, i64, String)> = (0..20)
        .map(|i| (format!("v{i}"), String::new(), 20 - i, format!("/x?{i}")))
        .collect();
    let c = bar_chart("t", &data).unwrap();
    assert_eq!(c.bars.len(), CHART_BARS);
    assert_eq!(c.bars[0].w, CHART_BAR_W);
    assert_eq!(c.bars[1].w, scale(19, 20, CHART_BAR_W));
    assert_eq!(c.bars[1].y - c.bars[0].y, CHART_ROW_H);
    assert_eq!(c.height, CHART_BARS as u32 * CHART_ROW_H + 8);
    assert_eq!(c.width, CHART_LABEL_W + CHART_BAR_W + CHART_NUM_W);
    assert_eq!(c.bars[0].n_x, CHART_LABEL_W + CHART_BAR_W + 6);
    assert!(c.bars.iter().all(|b| b.n_x + 30 <= c.width));
    assert!(bar_chart("t", &[]).is_none());
    let long = "x".repeat(100);
    let c = bar_chart("t", &[(long.clone(), String::new(), 1, String::new())]).unwrap();
    assert_eq!(c.bars[0].label.chars().count(), CHART_LABEL_CHARS + 1);
    assert_eq!(c.bars[0].title, long, "the full label is the tooltip");
}

#[test]
fn chart_of_one_package_shows_servers_per_version() {
    let g = |name: &str, value: &str, servers| AssetGroup {
        name: name.into(),
        value: value.into(),
        servers,
    };
    let c = chart_for(
        InventoryKind::Software,
        &[g("openssl", "3.0.11", 7), g("openssl", "3.0.9", 2)],
        "",
    )
    .unwrap();
    assert_eq!(c.title, "Servers per version of openssl");
    assert_eq!(c.bars[0].label, "3.0.11");
    assert_eq!(
        c.bars[1].href,
        "/assets/software/servers?name=openssl&value=3.0.9"
    );
    let c = chart_for(
        InventoryKind::Software,
        &[g("openssl", "3.0.11", 7), g("libc6", "2.36", 7)],
        "p1",
    )
    .unwrap();
    assert_eq!(c.bars[1].label, "libc6 2.36");
    assert!(c.bars[1].href.ends_with("&project=p1"));
}

#[test]
fn clip_cuts_on_characters_and_keeps_the_whole_as_title() {
    assert_eq!(clip("abc", 3), ("abc".into(), String::new()));
    assert_eq!(clip("abcd", 3), ("abc…".into(), "abcd".into()));
    assert_eq!(clip("äöüß", 2), ("äö…".into(), "äöüß".into()));
    assert_eq!(short_hash("0123456789abcdef"), "0123456789ab");
}

#[test]
fn urls_leave_out_empty_values_and_encode_the_rest() {
    assert_eq!(url("/assets", &[("q", ""), ("page", "")]), "/assets");
    assert_eq!(
        url("/assets", &[("kind", "software"), ("q", "a&b c")]),
        "/assets?kind=software&q=a%26b+c"
    );
}

#[test]
fn pager_links_only_where_there_is_more() {
    let p = Pager::new(1, 100, 100, 250, |n| format!("/p{n}"));
    assert_eq!((p.first, p.last), (1, 100));
    assert_eq!(p.prev_url, None);
    assert_eq!(p.next_url.as_deref(), Some("/p2"));
    let p = Pager::new(3, 100, 50, 250, |n| format!("/p{n}"));
    assert_eq!((p.first, p.last), (201, 250));
    assert_eq!(p.prev_url.as_deref(), Some("/p2"));
    assert_eq!(p.next_url, None);
    let p = Pager::new(1, 100, 0, 0, |n| format!("/p{n}"));
    assert_eq!((p.first, p.last, p.total), (0, 0, 0));
}

#[test]
fn every_kind_fills_every_column() {
    let samples = [
        (
            InventoryKind::Accounts,
            json!({"name":"root","uid":0,"gid":0,"groups":["root"],"home":"/root","shell":"/bin/bash",
                   "login_allowed":true,"root_equivalent":true,"root_reasons":["uid0"],"password":"set",
                   "password_changed":1700000000,"password_expires":null}),
        ),
        (
            InventoryKind::Ports,
            json!({"protocol":"tcp","family":"v4","address":"0.0.0.0","port":6379,"state":"listen",
                   "pid":12,"program":"/usr/bin/redis-server","risk":"dangerous","risk_reason":"Redis"}),
        ),
        (
            InventoryKind::Processes,
            json!({"pid":1,"ppid":0,"exe":"/sbin/init","cmdline":"init","user":"root","uid":0,
                   "start_time":1700000000,"sha256":"ab".repeat(32),"exe_mode":"0755","exe_owner":0}),
        ),
        (
            InventoryKind::Software,
            json!({"manager":"dpkg","name":"openssl","version":"3.0.11","arch":"amd64"}),
        ),
        (
            InventoryKind::Autostart,
            json!({"category":"cron","path":"/etc/crontab","user":"root","entry":"* * * * * x","sha256":"cd".repeat(32)}),
        ),
        (
            InventoryKind::KernelModules,
            json!({"name":"ext4","size":1048576,"used_by":["jbd2"],"state":"Live","path":"/lib/modules/x/ext4.ko"}),
        ),
        (
            InventoryKind::Middleware,
            json!({"name":"nginx","version":"1.22","running":true,"pids":[10,11],"listening_ports":[80,443],
                   "config_path":"/etc/nginx/nginx.conf",
                   "sites":[{"server_names":["example.com"],"root":"/var/www","ports":[80],"config_file":"/etc/nginx/sites-enabled/x"}]}),
        ),
    ];
    for (k, data) in samples {
        let cells = item_cells(k, "n", &data);
        assert_eq!(cells.len(), columns(k).len(), "{k}");
        assert!(
            cells.iter().all(|c| !c.col.is_empty() && c.col != "raw"),
            "{k}: {cells:?}"
        );
    }
    let port = item_cells(
        InventoryKind::Ports,
        "tcp/6379",
        &json!({"protocol":"tcp","family":"v4","address":"0.0.0.0","port":6379,"state":"listen",
                "risk":"dangerous","risk_reason":"Redis without auth"}),
    );
    let risk = port.iter().find(|c| c.col == "risk").unwrap();
    assert_eq!(
        (risk.text.as_str(), risk.badge, risk.note.as_str()),
        ("dangerous", "b-bad", "Redis without auth")
    );
    let mw = item_cells(InventoryKind::Middleware, "nginx", &samples_site());
    let sites = mw.iter().find(|c| c.col == "sites").unwrap();
    assert_eq!(
        sites.list,
        [
            "example.com www.example.com · root /var/www · ports 80, 443 · /etc/nginx/sites-enabled/x"
        ]
    );
}

fn samples_site() -> Value {
    json!({"name":"nginx","running":false,"sites":[{"server_names":["example.com","www.example.com"],
           "root":"/var/www","ports":[80,443],"config_file":"/etc/nginx/sites-enabled/x"}]})
}

#[test]
fn an_unreadable_item_still_shows_its_name() {
    let cells = item_cells(InventoryKind::Software, "weird", &json!({"name": 5}));
    assert_eq!(cells.len(), columns(InventoryKind::Software).len());
    assert_eq!(cells[0].text, "weird");
    assert_eq!(cells[1].col, "raw");
}

#[test]
fn changed_fields_show_old_and_new_values() {
    let old = json!({"version":"1.0","install_time":0,"groups":["a","b"],"x":{"y":1}});
    let new = json!({"version":"1.1","install_time":1700000000,"groups":[],"x":null});
    let d = diffs(
        &[
            "version".into(),
            "install_time".into(),
            "groups".into(),
            "x".into(),
            "gone".into(),
        ],
        Some(&old),
        Some(&new),
    );
    let pairs: Vec<(&str, &str, &str)> = d
        .iter()
        .map(|d| (d.field.as_str(), d.old.as_str(), d.new.as_str()))
        .collect();
    assert_eq!(
        pairs,
        [
            ("version", "1.0", "1.1"),
            ("install_time", "1970-01-01 00:00:00", "2023-11-14 22:13:20"),
            ("groups", "a, b", "(none)"),
            ("x", "{\"y\":1}", "–"),
            ("gone", "–", "–"),
        ]
    );
    assert_eq!(
        item_summary(
            InventoryKind::Software,
            Some(&json!({"manager":"dpkg","name":"openssl","version":"3.0.11","arch":"amd64"}))
        ),
        "version 3.0.11"
    );
}

fn nav() -> Nav {
    Nav {
        username: "u".into(),
        is_superadmin: false,
        must_change_password: false,
        csrf: "tok".into(),
        active: "servers",
        v: "v",
    }
}

const EVIL: &str = "<script>alert(1)</script>\"'";

fn assert_escaped(html: &str) {
    assert!(!html.contains("<script>alert"), "unescaped agent text");
    assert!(
        html.contains("&#60;script&#62;alert(1)") || html.contains("&lt;script&gt;alert(1)"),
        "agent text missing: {html}"
    );
    assert!(!html.contains("style="), "inline style breaks the CSP");
    assert!(!html.contains("<script>"), "inline script breaks the CSP");
}

#[test]
fn pages_escape_agent_strings_and_use_no_inline_style() {
    let data = json!({"manager":"dpkg","name":EVIL,"version":EVIL,"arch":"amd64","vendor":EVIL});
    let item = InventoryItem {
        key: EVIL.into(),
        name: EVIL.into(),
        value: EVIL.into(),
        first_seen: 1,
        updated_at: 1,
        data: data.clone(),
    };
    let page = InventoryPage {
        nav: nav(),
        sid: "s1".into(),
        sname: EVIL.into(),
        tabs: tabs("s1", &[], "software"),
        kind: "software",
        kind_label: "Software",
        flash: None,
        q: EVIL.into(),
        columns: columns(InventoryKind::Software),
        rows: vec![item_row(InventoryKind::Software, &item)],
        pager: Pager::new(1, 100, 1, 1, |_| String::new()),
        csv_url: url("/api/v1/servers/s1/inventory/software", &[("q", EVIL)]),
        reported: true,
        items: 1,
        collected: Some(Ts::at(1)),
        updated: Some(Ts::at(1)),
        in_sync: true,
        issues: vec![IssueView {
            file: EVIL.into(),
            line: Some(3),
            message: EVIL.into(),
        }],
        can_collect: true,
    };
    let h = page.render().unwrap();
    assert_escaped(&h);
    assert!(h.contains("id=\"inventory-issues\""));
    assert!(h.contains("action=\"/servers/s1/inventory/software/collect\""));
    assert!(h.contains("name=\"csrf\" value=\"tok\""));

    let change = InventoryChange {
        id: 1,
        server_id: "s1".into(),
        server_name: EVIL.into(),
        kind: "software".into(),
        key: EVIL.into(),
        name: EVIL.into(),
        change: "changed".into(),
        fields: vec!["version".into()],
        old: Some(data.clone()),
        new: Some(json!({"version": "2"})),
        ts: 1,
    };
    let page = ChangesPage {
        nav: nav(),
        server: None,
        tabs: vec![],
        action: "/assets/changes".into(),
        q: EVIL.into(),
        kind_opts: kind_opts("", true),
        change_opts: change_opts("changed"),
        project_opts: vec![],
        rows: vec![change_view(&change)],
        pager: Pager::new(1, 100, 1, 1, |_| String::new()),
        csv_url: "/api/v1/inventory/changes?format=csv".into(),
    };
    let h = page.render().unwrap();
    assert_escaped(&h);
    assert!(h.contains("b-changed"));

    let groups = vec![AssetGroup {
        name: EVIL.into(),
        value: EVIL.into(),
        servers: 2,
    }];
    let page = AssetsPage {
        nav: nav(),
        kind: "software",
        kind_label: "Software",
        name_label: "package",
        value_label: "version",
        example: "openssl",
        kinds: vec![],
        q: EVIL.into(),
        project_opts: vec![],
        project: String::new(),
        groups: groups
            .iter()
            .map(|g| GroupView {
                name: g.name.clone(),
                name_title: String::new(),
                value: g.value.clone(),
                value_title: String::new(),
                servers: 2,
                href: group_href(InventoryKind::Software, g, ""),
                share_w: 80,
            })
            .collect(),
        pager: Pager::new(1, 100, 1, 1, |_| String::new()),
        servers_in_view: 2,
        top: 2,
        chart: chart_for(InventoryKind::Software, &groups, ""),
        csv_url: String::new(),
    };
    let h = page.render().unwrap();
    assert_escaped(&h);
    assert!(h.contains("<svg") && h.contains("<rect"), "{h}");

    let page = AssetServersPage {
        nav: nav(),
        kind: "software",
        kind_label: "Software",
        name_label: "package",
        value_label: "version",
        name: EVIL.into(),
        value: Some(EVIL.into()),
        back_url: "/assets".into(),
        columns: columns(InventoryKind::Software),
        rows: vec![asset_server_view(
            InventoryKind::Software,
            &AssetServer {
                server_id: "s1".into(),
                server_name: EVIL.into(),
                hostname: EVIL.into(),
                project_id: "p".into(),
                name: EVIL.into(),
                value: EVIL.into(),
                data,
            },
        )],
        pager: Pager::new(1, 100, 1, 1, |_| String::new()),
        csv_url: String::new(),
    };
    let h = page.render().unwrap();
    assert_escaped(&h);
    assert!(h.contains("href=\"/servers/s1\""));
}
