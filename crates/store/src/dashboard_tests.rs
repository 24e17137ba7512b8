//! The dashboard's reads on both backends: snapshots are upserted per day, the overview counts
//! servers by each status and names the unprotected ones, urgent alarms are unhandled critical
//! and high ones newest first, top vulnerabilities group findings by CVE.

use super::*;
use crate::now;
use crate::status::StopHint;
use crate::{MatchedVuln, NewServer, testdb};
use hostward_proto::alarm::{Alarm, Evidence};
use hostward_proto::{Message, Severity};

pub(crate) fn alarm(ty: &str, key: &str, ts: i64) -> Message {
    Message::Alarm(Alarm {
        ts,
        alarm_type: ty.into(),
        key: key.into(),
        count: 1,
        evidence: Evidence {
            source_ip: Some("192.0.2.9".into()),
            ..Default::default()
        },
    })
}

fn vuln(cve: &str, sev: Severity, cvss: Option<f64>) -> MatchedVuln {
    MatchedVuln {
        advisory_id: format!("DSA-{cve}"),
        cve: cve.into(),
        package: format!("pkg-{cve}"),
        source_package: None,
        manager: "dpkg".into(),
        installed_version: "1".into(),
        fixed_version: Some("2".into()),
        cvss,
        severity: sev,
        summary: format!("summary of {cve}"),
        fix_command: None,
        restart: "none".into(),
    }
}

#[tokio::test]
async fn snapshots_overview_urgent_alarms_and_top_vulns() {
    for (b, db) in testdb::all().await {
        let s = &db.store;
        let p = s.ensure_project("default").await.unwrap();
        let other = s.ensure_project("other").await.unwrap();
        let mk = async |project: &str, name: &str| {
            s.create_server(&NewServer {
                project_id: project.into(),
                name: name.into(),
                ..Default::default()
            })
            .await
            .unwrap()
        };
        let web = mk(&p.id, "web").await;
        let db1 = mk(&p.id, "db").await;
        let far = mk(&other.id, "far").await;
        // Snapshots: one per day, the later write of a day wins.
        let snap = |day, score| Snapshot {
            day,
            score,
            servers: 2,
            taken_at: day * 86_400 + 10,
            ..Default::default()
        };
        s.put_snapshot(&p.id, &snap(100, 70)).await.unwrap();
        s.put_snapshot(&p.id, &snap(100, 80)).await.unwrap();
        s.put_snapshot(&p.id, &snap(102, 90)).await.unwrap();
        s.put_snapshot(&other.id, &snap(101, 10)).await.unwrap();
        let got = s.snapshots(&p.id, 99, 102).await.unwrap();
        assert_eq!(
            got.iter().map(|x| (x.day, x.score)).collect::<Vec<_>>(),
            [(100, 80), (102, 90)],
            "[{b}]"
        );
        assert_eq!(day_of(86_400 * 3 + 5), 3);

        // Overview: web online and protected, db never installed.
        s.set_agent_status(&web.id, status::ONLINE, "", StopHint::None)
            .await
            .unwrap();
        let o = s.protection_overview(&p.id).await.unwrap();
        assert_eq!(o.servers, 2, "[{b}]");
        let n = |v: &[StatusCount], st: &str| v.iter().find(|c| c.status == st).unwrap().count;
        assert_eq!(n(&o.by_agent, status::ONLINE), 1, "[{b}]");
        assert_eq!(n(&o.by_agent, status::NOT_INSTALLED), 1, "[{b}]");
        assert_eq!(n(&o.by_agent, status::OFFLINE), 0, "[{b}] listed with zero");
        assert_eq!(n(&o.by_protection, status::PROTECTION_ENABLED), 1, "[{b}]");
        assert_eq!(n(&o.by_risk, status::RISK_PENDING), 2, "[{b}]");
        assert_eq!(o.unprotected.len(), 1, "[{b}]");
        assert_eq!(o.unprotected[0].name, "db", "[{b}]");
        assert_eq!(
            o.unprotected[0].protection_reason, "agent_not_installed",
            "[{b}]"
        );

        // Urgent alarms: critical and high unhandled only, newest first, own project only.
        let t = now();
        s.store_records(
            &web.id,
            &[
                (1, alarm("brute_force", "192.0.2.1", t - 100)),
                (2, alarm("reverse_shell", "1", t - 50)),
                (3, alarm("unusual_login_time", "x", t - 10)),
            ],
        )
        .await
        .unwrap();
        s.store_records(&far.id, &[(1, alarm("reverse_shell", "9", t))])
            .await
            .unwrap();
        let urgent = s.urgent_alarms(&p.id, 10).await.unwrap();
        assert_eq!(
            urgent
                .iter()
                .map(|a| a.alarm_type.as_str())
                .collect::<Vec<_>>(),
            ["reverse_shell", "brute_force"],
            "[{b}]"
        );
        assert_eq!(urgent[0].server_name, "web", "[{b}]");

        // Top vulnerabilities: by severity, then CVSS, then servers.
        s.apply_vuln_matches(
            &web.id,
            1,
            &[
                vuln("CVE-L", Severity::Low, None),
                vuln("CVE-H1", Severity::High, Some(7.5)),
                vuln("CVE-H2", Severity::High, Some(8.8)),
            ],
        )
        .await
        .unwrap();
        s.apply_vuln_matches(&db1.id, 1, &[vuln("CVE-H1", Severity::High, Some(7.5))])
            .await
            .unwrap();
        let top = s.top_vulns(&p.id, 10).await.unwrap();
        let rows: Vec<(&str, &str, i64)> = top
            .iter()
            .map(|v| (v.cve.as_str(), v.severity.as_str(), v.servers))
            .collect();
        assert_eq!(
            rows,
            [
                ("CVE-H2", "high", 1),
                ("CVE-H1", "high", 2),
                ("CVE-L", "low", 1)
            ],
            "[{b}]"
        );
        assert_eq!(top[0].cvss, Some(8.8), "[{b}]");
        assert!(s.top_vulns(&p.id, 1).await.unwrap().len() == 1, "[{b}]");

        // Per-server counts are that server's only.
        let c = s.server_score_counts(&web.id).await.unwrap();
        assert_eq!((c.servers, c.unprotected), (1, 0), "[{b}]");
        assert_eq!(c.vulns.get("high"), Some(&2), "[{b}]");
        assert_eq!(c.alarms.get("critical"), Some(&1), "[{b}]");
        let c = s.server_score_counts(&db1.id).await.unwrap();
        assert_eq!((c.servers, c.unprotected), (1, 1), "[{b}]");
        assert_eq!(c.vulns.get("high"), Some(&1), "[{b}]");
        assert!(c.alarms.is_empty(), "[{b}]");
    }
}
