//! Reports on both backends: a range's facts count what happened in it and nothing else; a
//! schedule's run stores one report and moves on once, however many replicas try; a delivery
//! is claimed by one sender until its claim runs out.

use super::*;
use crate::dashboard::tests::alarm;
use crate::status::{self, StopHint};
use crate::{NewServer, testdb};

#[tokio::test]
async fn range_facts_count_what_happened_in_the_range() {
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
        let _db = mk(&p.id, "db").await;
        let far = mk(&other.id, "far").await;
        let t = now();
        s.store_records(
            &web.id,
            &[
                (1, alarm("brute_force", "a", t - 100)),
                (2, alarm("reverse_shell", "b", t - 50)),
                // Long before the range: not counted.
                (3, alarm("root_login", "c", t - 10 * 86_400)),
            ],
        )
        .await
        .unwrap();
        s.store_records(&far.id, &[(1, alarm("reverse_shell", "d", t))])
            .await
            .unwrap();
        s.set_agent_status(&web.id, status::ONLINE, "", StopHint::None)
            .await
            .unwrap();
        s.set_agent_status(
            &web.id,
            status::OFFLINE,
            "heartbeat_timeout",
            StopHint::None,
        )
        .await
        .unwrap();

        let f = s
            .range_facts(&p.id, t - 86_400, now() + 3600)
            .await
            .unwrap();
        let kinds: Vec<(&str, &str, i64)> = f
            .alarms
            .iter()
            .map(|a| (a.alarm_type.as_str(), a.severity.as_str(), a.alarms))
            .collect();
        assert_eq!(
            kinds,
            [("brute_force", "high", 1), ("reverse_shell", "critical", 1)],
            "[{b}]"
        );
        let names: Vec<&str> = f.servers.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["db", "web"], "[{b}] its own servers, by name");
        assert_eq!(f.servers[1].alarms, 2, "[{b}]");
        assert_eq!(f.added.len(), 2, "[{b}] both registered in the range");
        assert_eq!(f.lost_protection.len(), 1, "[{b}]");
        assert_eq!(f.lost_protection[0].server_name, "web", "[{b}]");
        assert_eq!(f.lost_protection[0].reason, "agent_offline", "[{b}]");
        assert_eq!(f.regained_protection.len(), 1, "[{b}]");

        // A range before everything: nothing happened then.
        let f = s
            .range_facts(&p.id, t - 30 * 86_400, t - 20 * 86_400)
            .await
            .unwrap();
        assert!(
            f.alarms.is_empty() && f.added.is_empty() && f.lost_protection.is_empty(),
            "[{b}]"
        );
        assert_eq!(
            f.servers.len(),
            2,
            "[{b}] the servers are listed all the same"
        );
    }
}

fn new_report(project: &str, schedule: Option<&str>, from: i64) -> NewReport {
    NewReport {
        project_id: project.into(),
        schedule_id: schedule.map(str::to_string),
        range_kind: "daily".into(),
        range_from: from,
        range_to: from + 86_400,
        formats: "pdf".into(),
        content: "{}".into(),
        created_by: "system".into(),
    }
}

#[tokio::test]
async fn a_schedule_runs_once_per_due_time_and_a_delivery_is_claimed_once() {
    for (b, db) in testdb::all().await {
        let s = &db.store;
        let p = s.ensure_project("default").await.unwrap();
        let t = now();
        let sched = s
            .create_schedule(&NewSchedule {
                project_id: p.id.clone(),
                name: "nightly".into(),
                cron: "5 0 * * *".into(),
                range_kind: "daily".into(),
                formats: "html,pdf".into(),
                enabled: true,
                next_run: t - 60,
                created_by: "alice".into(),
            })
            .await
            .unwrap();
        assert_eq!(
            s.schedules(std::slice::from_ref(&p.id))
                .await
                .unwrap()
                .len(),
            1,
            "[{b}]"
        );
        let due = s.due_schedules(t).await.unwrap();
        assert_eq!(due.len(), 1, "[{b}]");
        assert!(s.due_schedules(t - 120).await.unwrap().is_empty(), "[{b}]");

        // Two replicas finish the same due run: one report, the schedule moved once.
        let r = new_report(&p.id, Some(&sched.id), t - 86_400);
        let first = s.finish_schedule_run(&due[0], t + 3600, &r).await.unwrap();
        let second = s.finish_schedule_run(&due[0], t + 7200, &r).await.unwrap();
        assert!(first.is_some() && second.is_none(), "[{b}]");
        let after = s.schedule(&sched.id).await.unwrap();
        assert_eq!(after.next_run, t + 3600, "[{b}]");
        assert!(after.last_run.is_some(), "[{b}]");
        assert!(s.due_schedules(t).await.unwrap().is_empty(), "[{b}]");
        let reports = s.reports(std::slice::from_ref(&p.id), 100).await.unwrap();
        assert_eq!(reports.len(), 1, "[{b}]");
        assert_eq!(reports[0].delivery, "pending", "[{b}]");

        // The same period again (a schedule running twice a day over daily ranges): the run
        // moves on, no second report.
        let again = s.schedule(&sched.id).await.unwrap();
        assert!(
            s.finish_schedule_run(&again, t + 7200, &r)
                .await
                .unwrap()
                .is_none(),
            "[{b}]"
        );
        assert_eq!(
            s.schedule(&sched.id).await.unwrap().next_run,
            t + 7200,
            "[{b}]"
        );

        // A report by hand is not emailed.
        let manual = s
            .create_report(&new_report(&p.id, None, t - 86_400))
            .await
            .unwrap();
        assert_eq!(manual.delivery, "none", "[{b}]");
        assert_eq!(s.report_content(&manual.id).await.unwrap(), "{}", "[{b}]");

        // Delivery: claimed by one, free again only once the claim ran out.
        let got = s.claim_delivery(t, t + 300).await.unwrap().unwrap();
        assert_eq!(Some(got.id.clone()), first, "[{b}]");
        assert!(
            s.claim_delivery(t + 10, t + 310).await.unwrap().is_none(),
            "[{b}]"
        );
        let again = s.claim_delivery(t + 301, t + 601).await.unwrap();
        assert_eq!(
            again.map(|r| r.id),
            first.clone(),
            "[{b}] a dead sender's claim runs out"
        );
        s.finish_delivery(&got.id, "sent", "2 recipients")
            .await
            .unwrap();
        assert!(
            s.claim_delivery(t + 1000, t + 1300)
                .await
                .unwrap()
                .is_none(),
            "[{b}]"
        );
        assert_eq!(
            s.report(&got.id).await.unwrap().delivery_note,
            "2 recipients",
            "[{b}]"
        );

        s.delete_schedule(&sched.id).await.unwrap();
        assert!(
            matches!(
                s.delete_schedule(&sched.id).await,
                Err(StoreError::NotFound(_))
            ),
            "[{b}]"
        );
        assert_eq!(
            s.reports(std::slice::from_ref(&p.id), 100)
                .await
                .unwrap()
                .len(),
            2,
            "[{b}] reports stay"
        );
    }
}
