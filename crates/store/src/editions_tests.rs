//! Editions, quotas, metering and policy groups in the store, on both backends.

use hostward_proto::{Edition, RiskPolicy};

use super::*;
use crate::{NewServer, StoreError, status, testdb};

async fn server(s: &Store, project: &str, name: &str) -> Server {
    s.create_server(&NewServer {
        project_id: project.into(),
        name: name.into(),
        ..Default::default()
    })
    .await
    .unwrap()
}

async fn online(s: &Store, id: &str) {
    s.set_agent_status(id, status::ONLINE, "", StopHint::None)
        .await
        .unwrap();
}

#[test]
fn utc_days() {
    assert_eq!(utc_day(0), "1970-01-01");
    assert_eq!(utc_day(951_782_400), "2000-02-29");
    assert_eq!(utc_day(1_796_601_599), "2026-12-06");
    assert_eq!(utc_day(1_796_601_600), "2026-12-07");
}

#[tokio::test]
async fn new_servers_get_the_default_edition_until_its_quota_is_used_up() {
    for (backend, db) in testdb::all().await {
        let s = &db.store;
        let p = s.ensure_project("default").await.unwrap();
        let a = server(s, &p.id, "a").await;
        assert_eq!(
            a.edition, "wtp",
            "{backend}: the default default is everything"
        );
        s.set_default_edition(&p.id, Edition::Premium)
            .await
            .unwrap();
        s.set_quota(&p.id, Edition::Premium, Some(1)).await.unwrap();
        let b = server(s, &p.id, "b").await;
        assert_eq!(b.edition, "premium", "{backend}");
        assert!(b.protection_wanted, "{backend}");
        // The quota is full: the next one is left unprotected, and says why.
        let c = server(s, &p.id, "c").await;
        assert_eq!(c.edition, "", "{backend}");
        assert!(!c.protection_wanted, "{backend}");
        assert_eq!(
            c.protection_status,
            status::PROTECTION_DISABLED,
            "{backend}"
        );
        assert_eq!(c.protection_reason, status::NO_EDITION, "{backend}");
        // Nor can it switch protection on, or be bound to the full edition.
        let err = s.set_protection_wanted(&c.id, true).await.unwrap_err();
        assert!(
            matches!(&err, StoreError::Conflict(m) if m.contains("premium quota is used up: 1 of 1")),
            "{backend}: {err}"
        );
        let err = s
            .bind_edition(&c.id, Some(Edition::Premium))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{backend}");
        // A cap below the use is refused; switching b to basic frees premium for c.
        let err = s.set_quota(&p.id, Edition::Wtp, Some(0)).await.unwrap_err();
        assert!(
            matches!(&err, StoreError::Conflict(m) if m.contains("1 servers have the wtp edition")),
            "{backend}: {err}"
        );
        let b = s.bind_edition(&b.id, Some(Edition::Basic)).await.unwrap();
        assert_eq!(b.edition, "basic", "{backend}");
        let c = s.bind_edition(&c.id, Some(Edition::Premium)).await.unwrap();
        assert_eq!(
            (c.edition.as_str(), c.protection_wanted),
            ("premium", true),
            "{backend}"
        );
        assert!(c.config_version > 0, "{backend}: the agent gets the change");
        let e = s.project_editions(&p.id).await.unwrap();
        assert_eq!(e.default_edition, Edition::Premium, "{backend}");
        let used: Vec<_> = e
            .quotas
            .iter()
            .map(|q| (q.edition, q.total, q.used))
            .collect();
        assert!(
            used.contains(&(Edition::Premium, Some(1), 1)),
            "{backend}: {used:?}"
        );
        assert!(
            used.contains(&(Edition::Basic, None, 1)),
            "{backend}: {used:?}"
        );
        assert!(
            used.contains(&(Edition::Wtp, None, 1)),
            "{backend}: {used:?}"
        );
        // Unbinding frees the quota and turns protection off.
        let c = s.bind_edition(&c.id, None).await.unwrap();
        assert_eq!(
            (c.edition.as_str(), c.protection_wanted),
            ("", false),
            "{backend}"
        );
        assert_eq!(c.protection_reason, status::NO_EDITION, "{backend}");
        // The switch keeps the edition: off frees the quota, on takes it back.
        let b = s.set_protection_wanted(&b.id, false).await.unwrap();
        assert_eq!(
            (b.edition.as_str(), b.protection_reason.as_str()),
            ("basic", ""),
            "{backend}"
        );
        let b = s.set_protection_wanted(&b.id, true).await.unwrap();
        assert_eq!(
            (b.edition.as_str(), b.protection_wanted),
            ("basic", true),
            "{backend}"
        );
    }
}

#[tokio::test]
async fn protected_time_counts_only_while_protected_and_online() {
    for (backend, db) in testdb::all().await {
        let s = &db.store;
        let p = s.ensure_project("default").await.unwrap();
        let a = server(s, &p.id, "a").await;
        let b = server(s, &p.id, "b").await;
        online(s, &a.id).await;
        online(s, &b.id).await;
        let t0 = 1_796_601_500; // 100 s before a UTC midnight
        assert_eq!(
            s.meter_usage(t0).await.unwrap(),
            0,
            "{backend}: stretches start"
        );
        assert_eq!(
            s.meter_usage(t0 + 60).await.unwrap(),
            120,
            "{backend}: 60 s each"
        );
        // A second replica ticking at the same moment counts nothing again.
        assert_eq!(s.meter_usage(t0 + 60).await.unwrap(), 0, "{backend}");
        // b stops (agent offline) and a loses protection: neither counts on.
        s.set_agent_status(
            &b.id,
            status::OFFLINE,
            status::offline::AGENT_STOPPED,
            StopHint::SystemShutdown,
        )
        .await
        .unwrap();
        assert_eq!(
            s.meter_usage(t0 + 120).await.unwrap(),
            60,
            "{backend}: only a"
        );
        s.set_protection_wanted(&a.id, false).await.unwrap();
        assert_eq!(s.meter_usage(t0 + 180).await.unwrap(), 0, "{backend}");
        // Back on: a new stretch, and a long pause counts at most MAX_METER_GAP_SECS.
        s.set_protection_wanted(&a.id, true).await.unwrap();
        assert_eq!(s.meter_usage(t0 + 240).await.unwrap(), 0, "{backend}");
        assert_eq!(
            s.meter_usage(t0 + 240 + 3_600).await.unwrap(),
            MAX_METER_GAP_SECS,
            "{backend}"
        );
        let rows = s
            .usage(std::slice::from_ref(&p.id), "2026-12-06", "2026-12-07")
            .await
            .unwrap();
        let got: Vec<_> = rows
            .iter()
            .map(|r| (r.day.as_str(), r.server_name.as_str(), r.seconds))
            .collect();
        // a: 60 + 40 s before midnight, 20 + the capped gap after; b: 60 s before midnight.
        assert_eq!(
            got,
            vec![
                ("2026-12-06", "a", 100),
                ("2026-12-06", "b", 60),
                ("2026-12-07", "a", 20 + MAX_METER_GAP_SECS),
            ],
            "{backend}"
        );
        assert!(
            s.usage(&[], "2026-12-06", "2026-12-07")
                .await
                .unwrap()
                .is_empty()
        );
    }
}

#[tokio::test]
async fn groups_copy_policies_and_servers_get_their_group_s() {
    for (backend, db) in testdb::all().await {
        let s = &db.store;
        let p = s.ensure_project("default").await.unwrap();
        let risk = RiskPolicy {
            allow_fix: true,
            ..Default::default()
        };
        s.set_policy(&p.id, &risk).await.unwrap();
        let g = s
            .create_policy_group(&p.id, "web servers", "", None)
            .await
            .unwrap();
        assert_eq!(g.servers, 0, "{backend}");
        let err = s
            .create_policy_group(&p.id, "web servers", "", None)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{backend}: {err}");
        // The copy holds the default's policy; editing it leaves the default alone.
        let (body, v0) = s.group_policy_body(&g.id, "risk").await.unwrap();
        assert_eq!(body.unwrap()["allow_fix"], true, "{backend}");
        let mut changed = risk.clone();
        changed.allow_fix = false;
        let v1 = s
            .set_group_policy_body(&g.id, "risk", &serde_json::to_value(&changed).unwrap())
            .await
            .unwrap();
        assert!(v1 > v0, "{backend}: agents' config versions move");
        assert!(
            s.policy::<RiskPolicy>(&p.id).await.unwrap().0.allow_fix,
            "{backend}"
        );
        let copy = s
            .create_policy_group(&p.id, "copy", "", Some(&g.id))
            .await
            .unwrap();
        let (body, _) = s.group_policy_body(&copy.id, "risk").await.unwrap();
        assert_eq!(body.unwrap()["allow_fix"], false, "{backend}");

        let a = server(s, &p.id, "a").await;
        let a = s.assign_policy_group(&a.id, Some(&g.id)).await.unwrap();
        assert_eq!(
            a.policy_group_id.as_deref(),
            Some(g.id.as_str()),
            "{backend}"
        );
        s.policy_version(&p.id).await.unwrap();
        let for_a: RiskPolicy = s.policy_for_config(&p.id, Some(&g.id)).await.unwrap();
        assert!(!for_a.allow_fix, "{backend}: the group's");
        let for_default: RiskPolicy = s.policy_for_config(&p.id, None).await.unwrap();
        assert!(for_default.allow_fix, "{backend}: the project's");

        // Another project's group is not found; a group in use cannot be deleted.
        let other = s.ensure_project("other").await.unwrap();
        let b = server(s, &other.id, "b").await;
        let err = s.assign_policy_group(&b.id, Some(&g.id)).await.unwrap_err();
        assert!(matches!(err, StoreError::NotFound(_)), "{backend}");
        let err = s.delete_policy_group(&g.id).await.unwrap_err();
        assert!(
            matches!(&err, StoreError::Conflict(m) if m.contains("1 servers use")),
            "{backend}: {err}"
        );
        // Switching to an edition without custom groups moves the server back to the default.
        let a = s
            .bind_edition(&a.id, Some(Edition::Enterprise))
            .await
            .unwrap();
        assert_eq!(a.policy_group_id, None, "{backend}");
        s.delete_policy_group(&g.id).await.unwrap();
        assert!(s.policy_group(&g.id).await.unwrap().is_none(), "{backend}");
        assert_eq!(s.policy_groups(&p.id).await.unwrap().len(), 1, "{backend}");
    }
}
