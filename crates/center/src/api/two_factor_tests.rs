//! Two-factor sign-in through the API on both backends: set-up and confirmation, a sign-in
//! without the code or with a wrong or replayed one refused, a recovery code good once, a
//! project's rule enforced on members without a second factor and guarded against locking its
//! admin out.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::api::testutil::{PASSWORD, apps};
use crate::auth::{Role, totp};
use hostward_store::now;

fn key_of(setup: &Value) -> Vec<u8> {
    data_encoding::BASE32_NOPAD
        .decode(setup["secret"].as_str().unwrap().as_bytes())
        .unwrap()
}

#[tokio::test]
async fn a_second_factor_is_set_up_asked_at_sign_in_and_required_by_a_project() {
    for (b, t) in apps().await {
        let s = &t.state.store;
        let a = s.ensure_project("a").await.unwrap();
        let ada = t.user("ada", &[(&a.id, Role::Admin)]).await;
        let admin = t.token(&ada).await;
        let op = t
            .token(&t.user("otto", &[(&a.id, Role::Operator)]).await)
            .await;
        let rule = format!("/api/v1/projects/{}/two-factor", a.id);
        let login = async |code: Option<&str>| {
            let mut body = json!({"username": "ada", "password": PASSWORD});
            if let Some(c) = code {
                body["code"] = json!(c);
            }
            let (st, body, _) = t
                .call(
                    Method::POST,
                    "/api/v1/session",
                    &[],
                    Some(&body.to_string()),
                )
                .await;
            (st, body)
        };

        let (st, body) = t.get("/api/v1/account/two-factor", &admin).await;
        assert_eq!(
            (st, body["enabled"].as_bool()),
            (StatusCode::OK, Some(false)),
            "[{b}]"
        );
        let (st, body) = t
            .send(Method::PUT, &rule, &admin, r#"{"required": true}"#)
            .await;
        assert_eq!(
            st,
            StatusCode::CONFLICT,
            "[{b}] an admin without it cannot require it: {body}"
        );

        let (st, setup) = t
            .send(Method::POST, "/api/v1/account/two-factor", &admin, "")
            .await;
        assert_eq!(st, StatusCode::OK, "[{b}] {setup}");
        assert!(
            setup["otpauth_uri"]
                .as_str()
                .unwrap()
                .starts_with("otpauth://totp/Hostward:ada?"),
            "[{b}]"
        );
        let key = key_of(&setup);
        let (st, _) = t
            .send(
                Method::POST,
                "/api/v1/account/two-factor/confirm",
                &admin,
                r#"{"code": "12345"}"#,
            )
            .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "[{b}]");
        let first = totp::code_at(&key, now());
        let (st, codes) = t
            .send(
                Method::POST,
                "/api/v1/account/two-factor/confirm",
                &admin,
                &json!({"code": first}).to_string(),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "[{b}] {codes}");
        let recovery: Vec<String> = codes["recovery_codes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_string())
            .collect();
        assert_eq!(recovery.len(), totp::RECOVERY_CODES, "[{b}]");
        let (st, _) = t
            .send(Method::POST, "/api/v1/account/two-factor", &admin, "")
            .await;
        assert_eq!(st, StatusCode::CONFLICT, "[{b}] on already");
        // The seed is sealed in the database, never in the clear.
        let sealed = s.two_factor(&ada.id).await.unwrap().sealed.unwrap();
        assert!(!sealed.contains(setup["secret"].as_str().unwrap()), "[{b}]");

        // Sign-in: the password alone, a wrong code and the confirming code (used) fail.
        assert_eq!(login(None).await.0, StatusCode::UNAUTHORIZED, "[{b}]");
        let wrong = format!("{:06}", (first.parse::<u32>().unwrap() + 1) % 1_000_000);
        assert_eq!(
            login(Some(&wrong)).await.0,
            StatusCode::UNAUTHORIZED,
            "[{b}]"
        );
        assert_eq!(
            login(Some(&first)).await.0,
            StatusCode::UNAUTHORIZED,
            "[{b}] replayed"
        );
        let next = totp::code_at(&key, now() + totp::STEP_SECS);
        let (st, body) = login(Some(&next)).await;
        assert_eq!(st, StatusCode::OK, "[{b}] {body}");
        assert_eq!(
            login(Some(&next)).await.0,
            StatusCode::UNAUTHORIZED,
            "[{b}] once"
        );
        // A recovery code works once, typed in any case, with or without its dash.
        let typed = recovery[0].to_uppercase().replace('-', " ");
        assert_eq!(login(Some(&typed)).await.0, StatusCode::OK, "[{b}]");
        assert_eq!(
            login(Some(&recovery[0])).await.0,
            StatusCode::UNAUTHORIZED,
            "[{b}] used"
        );
        let (_, body) = t.get("/api/v1/account/two-factor", &admin).await;
        assert_eq!(body["recovery_codes_left"], 9, "[{b}]");
        let audit = s.list_audit(None, 100).await.unwrap();
        let said = |action: &str, detail: &str| {
            audit
                .iter()
                .any(|e| e.action == action && e.username == "ada" && e.detail == detail)
        };
        assert!(
            said("auth.login_failed", "second factor missing"),
            "[{b}] {audit:?}"
        );
        assert!(
            said("auth.login_failed", "wrong second factor code"),
            "[{b}] a wrong or replayed code"
        );
        assert!(said("auth.recovery_code_used", ""), "[{b}]");

        // The project's rule: otto may only set it up until he has.
        let (st, _) = t
            .send(Method::PUT, &rule, &op, r#"{"required": true}"#)
            .await;
        assert_eq!(st, StatusCode::FORBIDDEN, "[{b}] admins only");
        let (st, body) = t
            .send(Method::PUT, &rule, &admin, r#"{"required": true}"#)
            .await;
        assert_eq!(
            (st, body["required"].as_bool()),
            (StatusCode::OK, Some(true)),
            "[{b}]"
        );
        let (st, body) = t.get("/api/v1/servers", &op).await;
        assert_eq!(
            (st, body["error"]["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("two_factor_required")),
            "[{b}] {body}"
        );
        assert_eq!(t.get("/api/v1/me", &op).await.0, StatusCode::OK, "[{b}]");
        let (st, body) = t.get("/api/v1/account/two-factor", &op).await;
        assert_eq!(
            (st, body["required_by"][0]["name"].as_str()),
            (StatusCode::OK, Some("a")),
            "[{b}]"
        );
        assert_eq!(
            t.get("/api/v1/servers", &admin).await.0,
            StatusCode::OK,
            "[{b}] ada has hers"
        );

        // Turning it off: refused while the project requires it, then with a code.
        let off = json!({"code": recovery[1]}).to_string();
        assert_eq!(
            t.send(Method::DELETE, "/api/v1/account/two-factor", &admin, &off)
                .await
                .0,
            StatusCode::CONFLICT,
            "[{b}]"
        );
        t.send(Method::PUT, &rule, &admin, r#"{"required": false}"#)
            .await;
        let (st, body) = t
            .send(
                Method::DELETE,
                "/api/v1/account/two-factor",
                &admin,
                r#"{"code": "nope-nope"}"#,
            )
            .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "[{b}] {body}");
        assert_eq!(
            t.send(Method::DELETE, "/api/v1/account/two-factor", &admin, &off)
                .await
                .0,
            StatusCode::NO_CONTENT,
            "[{b}]"
        );
        assert_eq!(
            login(None).await.0,
            StatusCode::OK,
            "[{b}] the password alone again"
        );
        assert_eq!(
            t.get("/api/v1/servers", &op).await.0,
            StatusCode::OK,
            "[{b}] no rule any more"
        );
    }
}
