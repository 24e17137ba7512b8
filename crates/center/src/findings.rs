//! The findings component: what every capability's findings share on the console (alarms and
//! vulnerabilities today; baseline failures, malware and tamper events next). A capability
//! describes its bulk actions once in an [`ActionBar`]; the buttons (`templates/findings/
//! actions.html`), the form reader, the answer to an unknown action and the redirect back with
//! the outcome all follow from it. The handling history of one finding renders through
//! [`history`] and `templates/findings/history.html`. Paging and CSV come from `web`, and the
//! history rows themselves from the store's one handling history.
//!
//! The component only reads forms and shapes rows; every change still goes through the
//! capability's API operation, which checks the caller.

use std::collections::HashMap;
use std::future::Future;

use axum::http::StatusCode;

use serde::de::DeserializeOwned;

use crate::auth::{Principal, Role};
use crate::console::forms::{checked_ids, safe_back, seg, with_done};
use crate::console::{ConsoleError, Fields, PageResult, Ts, see_other};
use crate::web::ApiError;
use hostward_store::HandlingEntry;

/// One button of a bulk-action bar.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ActionButton {
    /// The action's name in the API (`AlarmAction`, `Action`, … deserialise from it).
    pub value: &'static str,
    pub label: &'static str,
    /// CSS classes: `act-<value>` (tests and scripts find buttons by it), plus `primary` or
    /// `danger`.
    pub class: &'static str,
    /// A longer explanation shown on hover; empty for none.
    pub title: &'static str,
    /// Shown only where the page says the action applies (e.g. unblock needs a source address).
    pub conditional: bool,
}

/// The bulk actions of one kind of finding.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ActionBar {
    /// Checkboxes are named `<prefix><id>` (the form reader keeps one value per name).
    pub checkbox_prefix: &'static str,
    /// Extra CSS class of the bar.
    pub class: &'static str,
    pub buttons: &'static [ActionButton],
    /// Pages a form may return to (path prefixes); anything else returns to `home`.
    pub back: &'static [&'static str],
    pub home: &'static str,
}

/// The bar as one page shows it.
pub(crate) struct ActionsView {
    pub class: &'static str,
    pub buttons: Vec<ActionButton>,
    pub back: String,
    pub csrf: String,
}

impl ActionBar {
    /// The bar for a page returning to `back`; conditional buttons only when `conditional_ok`.
    pub(crate) fn view(&self, p: &Principal, back: &str, conditional_ok: bool) -> ActionsView {
        ActionsView {
            class: self.class,
            buttons: self
                .buttons
                .iter()
                .filter(|b| conditional_ok || !b.conditional)
                .copied()
                .collect(),
            back: back.to_string(),
            csrf: p.csrf.clone().unwrap_or_default(),
        }
    }

    /// `Field action must be a, b or c.`
    fn unknown_action(&self) -> ConsoleError {
        let names: Vec<&str> = self.buttons.iter().map(|b| b.value).collect();
        let list = match names.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
            _ => names.join(""),
        };
        ConsoleError::bad_request(format!("Field action must be {list}."))
    }

    /// Reads a bulk-action form (`action`, checked `<prefix><id>` boxes, `note`, `back`), runs
    /// `run(action, ids, note)` (the capability's API operation, answering how many findings
    /// changed) and returns to the page the form was on with `done=<action>&n=<changed>`.
    /// Nothing checked returns with `done=none` without calling anything.
    pub(crate) async fn submit<A, F, Fut>(&self, f: &Fields, run: F) -> PageResult
    where
        A: DeserializeOwned,
        F: FnOnce(A, Vec<String>, Option<String>) -> Fut,
        Fut: Future<Output = Result<usize, ApiError>>,
    {
        let name = f.get("action");
        let action: A = self
            .buttons
            .iter()
            .find(|b| b.value == name)
            .and_then(|b| serde_json::from_value(serde_json::Value::from(b.value)).ok())
            .ok_or_else(|| self.unknown_action())?;
        let back = safe_back(f.get("back"), self.back).unwrap_or(self.home);
        let ids = checked_ids(f, self.checkbox_prefix);
        if ids.is_empty() {
            return Ok(see_other(&with_done(back, "none", 0)));
        }
        let changed = run(action, ids, f.opt("note")).await?;
        Ok(see_other(&with_done(back, name, changed)))
    }
}

/// One entry of a finding's handling history, as the history table shows it.
pub(crate) struct HistoryRow {
    pub at: Ts,
    pub actor: String,
    pub action: String,
    pub from_state: String,
    pub to_state: String,
    pub to_class: &'static str,
    pub note: String,
}

/// The history table of one finding: `id` is the table's element id, `state_class` the badge
/// class of each state of this kind of finding.
pub(crate) struct HistoryView {
    pub id: &'static str,
    pub rows: Vec<HistoryRow>,
}

pub(crate) fn history(
    id: &'static str,
    entries: &[HandlingEntry],
    state_class: fn(&str) -> &'static str,
) -> HistoryView {
    HistoryView {
        id,
        rows: entries
            .iter()
            .map(|h| HistoryRow {
                at: Ts::at(h.ts),
                actor: h.actor.clone(),
                action: h.action.replace('_', " "),
                from_state: h.from_state.replace('_', " "),
                to_state: h.to_state.replace('_', " "),
                to_class: state_class(&h.to_state),
                note: h.note.clone(),
            })
            .collect(),
    }
}

/// What every whitelist rule shows beside what it matches: its project, why, who made it and
/// when, and the delete button for those who may (operators of its project).
pub(crate) struct RuleMeta {
    pub id: String,
    pub project: String,
    pub reason: String,
    pub created_by: String,
    pub created: Ts,
    pub can_delete: bool,
    /// Where the delete button posts.
    pub delete_url: String,
}

/// The stored facts of a rule, as every kind of whitelist rule has them.
pub(crate) struct RuleFacts<'a> {
    pub id: String,
    pub project_id: &'a str,
    pub reason: String,
    pub created_by: String,
    pub created_at: i64,
}

impl RuleMeta {
    /// `rules_path` is the page of these rules (`/alarms/whitelist`); deleting posts to
    /// `<rules_path>/<id>/delete`.
    pub(crate) fn new(
        p: &Principal,
        project_names: &HashMap<String, String>,
        rules_path: &str,
        r: RuleFacts<'_>,
    ) -> RuleMeta {
        RuleMeta {
            project: project_names.get(r.project_id).cloned().unwrap_or_default(),
            can_delete: p.require(r.project_id, Role::Operator).is_ok(),
            delete_url: format!("{rules_path}/{}/delete", seg(&r.id)),
            id: r.id,
            reason: r.reason,
            created_by: r.created_by,
            created: Ts::at(r.created_at),
        }
    }
}

/// Creates a whitelist rule from a form through the capability's API operation: on success
/// back to the rules page with the outcome (`done(result)`); on a refusal the person can fix
/// (`fixable`: the API's message names the field) the page again with what was typed and the
/// message beside the form; anything else is an error page.
pub(crate) async fn create_rule<T, R, RFut>(
    created: Result<T, ApiError>,
    fixable: &[StatusCode],
    done: impl FnOnce(T) -> String,
    rerender: R,
) -> PageResult
where
    R: FnOnce(StatusCode, String) -> RFut,
    RFut: Future<Output = PageResult>,
{
    match created {
        Ok(r) => Ok(see_other(&done(r))),
        Err(e) if fixable.contains(&e.status) => rerender(e.status, e.message).await,
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Act {
        Close,
        Reopen,
    }

    const BAR: ActionBar = ActionBar {
        checkbox_prefix: "thing_",
        class: "",
        buttons: &[
            ActionButton {
                value: "close",
                label: "Close",
                class: "primary act-close",
                title: "",
                conditional: false,
            },
            ActionButton {
                value: "reopen",
                label: "Reopen",
                class: "act-reopen",
                title: "",
                conditional: true,
            },
        ],
        back: &["/things"],
        home: "/things",
    };

    fn location(r: PageResult) -> String {
        let r = r.unwrap_or_else(|e| panic!("{e:?}"));
        r.headers()["location"].to_str().unwrap().to_string()
    }

    #[tokio::test]
    async fn runs_the_action_on_the_checked_ids_and_returns_with_the_outcome() {
        let f = Fields::of(&[
            ("action", "reopen"),
            ("thing_b", "1"),
            ("thing_a", "on"),
            ("other_c", "1"),
            ("note", " why "),
            ("back", "/things?page=2&done=close&n=9"),
        ]);
        let r = BAR
            .submit(&f, |a: Act, ids, note| async move {
                assert_eq!(a, Act::Reopen);
                assert_eq!(ids, ["a", "b"]);
                assert_eq!(note.as_deref(), Some("why"));
                Ok(2)
            })
            .await;
        assert_eq!(location(r), "/things?page=2&done=reopen&n=2");
    }

    #[tokio::test]
    async fn nothing_checked_calls_nothing_and_a_foreign_back_goes_home() {
        let f = Fields::of(&[("action", "close"), ("back", "https://evil.example/")]);
        let r = BAR
            .submit(&f, |_: Act, _, _| async { panic!("must not run") })
            .await;
        assert_eq!(location(r), "/things?done=none&n=0");
    }

    #[tokio::test]
    async fn an_unknown_action_is_a_400_naming_the_choices() {
        let f = Fields::of(&[("action", "delete"), ("thing_a", "1")]);
        let r = BAR
            .submit(&f, |_: Act, _, _| async { panic!("must not run") })
            .await;
        match r {
            Err(ConsoleError::Page(s, m)) => {
                assert_eq!(s.as_u16(), 400);
                assert_eq!(m, "Field action must be close or reopen.");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn conditional_buttons_show_only_where_they_apply() {
        let values = |v: ActionsView| v.buttons.iter().map(|b| b.value).collect::<Vec<_>>();
        let p = Principal::system();
        assert_eq!(values(BAR.view(&p, "/things", false)), ["close"]);
        assert_eq!(values(BAR.view(&p, "/things", true)), ["close", "reopen"]);
    }
}
