//! Issue 18, part 6 (two-factor console sign-in), end to end against a real `hostward serve`
//! (on SQLite, and on PostgreSQL when `HOSTWARD_TEST_POSTGRES_URL` is set)
//! over HTTPS: a user sets up TOTP through the API; the test computes the codes itself
//! (RFC 6238: HMAC-SHA1, 30-second steps, six digits) from the seed the center showed once.
//! Then a sign-in without the code fails, with a wrong code fails, with the right code works,
//! the same code a second time fails; a recovery code works once; the console's sign-in form
//! takes the code too; and a project requiring two-factor sign-in refuses an API call by a
//! member without it (403 `two_factor_required`) until that member sets it up.

use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use hostward_e2e::*;
use serde_json::{Value, json};

const PASSWORD: &str = "two-factor-e2e-password-42";

/// The RFC 6238 code of `key` for time step `step`.
fn totp(key: &[u8], step: u64) -> String {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(key).expect("any key length");
    mac.update(&step.to_be_bytes());
    let h = mac.finalize().into_bytes();
    let off = usize::from(h[19] & 0x0f);
    let bin = u32::from_be_bytes([h[off] & 0x7f, h[off + 1], h[off + 2], h[off + 3]]);
    format!("{:06}", bin % 1_000_000)
}

fn now_step() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 30
}

/// A client with its own cookie jar, speaking the session API.
struct Session {
    http: reqwest::Client,
    base: String,
}

impl Session {
    fn new(center: &Center) -> Result<Session> {
        Ok(Session {
            http: https_client(&center.ca_pem, true)?,
            base: center.url(),
        })
    }

    /// `POST /api/v1/session` with `code` when given: status and body.
    async fn sign_in(&self, user: &str, code: Option<&str>) -> Result<(u16, Value)> {
        let mut body = json!({"username": user, "password": PASSWORD});
        if let Some(c) = code {
            body["code"] = json!(c);
        }
        let r = self
            .http
            .post(format!("{}/api/v1/session", self.base))
            .json(&body)
            .send()
            .await?;
        let status = r.status().as_u16();
        Ok((status, r.json().await.unwrap_or(Value::Null)))
    }

    /// `method path` with the session cookie and its CSRF token.
    async fn call(
        &self,
        method: &str,
        path: &str,
        csrf: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value)> {
        let m = reqwest::Method::from_bytes(method.as_bytes())?;
        let mut req = self
            .http
            .request(m, format!("{}{path}", self.base))
            .header("x-csrf-token", csrf);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await?;
        let status = r.status().as_u16();
        Ok((status, r.json().await.unwrap_or(Value::Null)))
    }
}

/// Signs `user` in (no second factor yet) and sets up TOTP: the seed and the recovery codes.
async fn set_up(center: &Center, user: &str) -> Result<(Vec<u8>, Vec<String>, Session, String)> {
    let s = Session::new(center)?;
    let (st, body) = s.sign_in(user, None).await?;
    ensure!(
        st == 200,
        "{user} signs in with the password alone first: {st} {body}"
    );
    let csrf = body["csrf_token"].as_str().unwrap_or_default().to_string();
    let (st, setup) = s
        .call("POST", "/api/v1/account/two-factor", &csrf, None)
        .await?;
    ensure!(st == 200, "set-up: {st} {setup}");
    let secret = setup["secret"].as_str().unwrap_or_default();
    let key = data_encoding::BASE32_NOPAD
        .decode(secret.as_bytes())
        .with_context(|| format!("the seed {secret:?} is base32"))?;
    ensure!(
        setup["otpauth_uri"]
            .as_str()
            .is_some_and(|u| u.contains(&format!("secret={secret}")) && u.contains("period=30")),
        "{setup}"
    );
    // A wrong first code does not turn it on.
    let wrong = if totp(&key, now_step()) == "000000" {
        "111111"
    } else {
        "000000"
    };
    let (st, body) = s
        .call(
            "POST",
            "/api/v1/account/two-factor/confirm",
            &csrf,
            Some(json!({"code": wrong})),
        )
        .await?;
    ensure!(st == 400, "a wrong confirmation code: {st} {body}");
    let (st, body) = s
        .call(
            "POST",
            "/api/v1/account/two-factor/confirm",
            &csrf,
            Some(json!({"code": totp(&key, now_step())})),
        )
        .await?;
    ensure!(st == 200, "confirm: {st} {body}");
    let codes: Vec<String> = body["recovery_codes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c.as_str().map(str::to_string))
        .collect();
    ensure!(codes.len() == 10, "ten recovery codes: {body}");
    Ok((key, codes, s, csrf))
}

#[tokio::test]
async fn a_second_factor_is_asked_at_sign_in_and_each_code_works_once() -> Result<()> {
    let env = TestEnv::new("two_factor");
    env.run(second_factor(&env, Backend::Sqlite)).await
}

#[tokio::test]
async fn a_second_factor_is_asked_at_sign_in_on_postgresql() -> Result<()> {
    if pg_admin_url()?.is_none() {
        return Ok(());
    }
    let env = TestEnv::new("two_factor_pg");
    env.run(second_factor(&env, Backend::Postgres)).await
}

async fn second_factor(env: &TestEnv, backend: Backend) -> Result<()> {
    let center = Center::start(env, backend, CenterOpts::default()).await?;
    let project = center.add_project("alpha").await?;
    center
        .add_user("tess", PASSWORD, &["--project", "alpha", "--role", "admin"])
        .await?;
    let (key, recovery, owner, csrf) = set_up(&center, "tess").await?;
    let (st, status) = owner
        .call("GET", "/api/v1/account/two-factor", &csrf, None)
        .await?;
    ensure!(st == 200 && status["enabled"] == true, "{st} {status}");
    ensure!(status["recovery_codes_left"] == 10, "{status}");

    let s = Session::new(&center)?;
    // The code confirming the set-up used the current step: the next one is the app's
    // next code, which the center accepts one step early.
    let next = totp(&key, now_step() + 1);
    let wrong = if next == "123456" { "654321" } else { "123456" };
    for (code, what) in [(None, "without a code"), (Some(wrong), "with a wrong code")] {
        let (st, body) = s.sign_in("tess", code).await?;
        ensure!(st == 401, "a sign-in {what} fails: {st} {body}");
        ensure!(body["error"]["code"] == "bad_credentials", "{what}: {body}");
        let (st, _) = s.call("GET", "/api/v1/me", "", None).await?;
        ensure!(st == 401, "no session after a sign-in {what}: {st}");
    }
    let (st, body) = s.sign_in("tess", Some(&next)).await?;
    ensure!(st == 200, "the right code signs in: {st} {body}");
    let (st, me) = s.call("GET", "/api/v1/me", "", None).await?;
    ensure!(st == 200, "the session works: {st} {me}");
    let (st, body) = Session::new(&center)?.sign_in("tess", Some(&next)).await?;
    ensure!(st == 401, "the same code a second time fails: {st} {body}");

    // A recovery code, typed as people do (spaces around it), works once.
    let code = format!(" {} ", recovery[3]);
    let (st, body) = Session::new(&center)?.sign_in("tess", Some(&code)).await?;
    ensure!(st == 200, "a recovery code signs in: {st} {body}");
    let (st, body) = Session::new(&center)?
        .sign_in("tess", Some(&recovery[3]))
        .await?;
    ensure!(
        st == 401,
        "the same recovery code a second time fails: {st} {body}"
    );
    let (_, status) = owner
        .call("GET", "/api/v1/account/two-factor", &csrf, None)
        .await?;
    ensure!(
        status["recovery_codes_left"] == 9,
        "one code spent: {status}"
    );
    let used = center
        .query_i64(
            "SELECT COUNT(*) AS n FROM audit_log WHERE action = 'auth.login_failed' AND username = $1",
            &["tess"],
        )
        .await?;
    ensure!(used == 4, "each failed sign-in audited: {used}");

    // The console's sign-in form: its code field, wrong then right (a recovery code: the
    // app's codes up to the next step are spent).
    let console = Console {
        base: center.url(),
        client: https_client(&center.ca_pem, true)?,
    };
    let form = |code: &str, page: &str| {
        let mut fields = hidden_inputs(page);
        fields.retain(|(k, _)| k != "username" && k != "password" && k != "code");
        fields.push(("username".into(), "tess".into()));
        fields.push(("password".into(), PASSWORD.into()));
        fields.push(("code".into(), code.into()));
        fields
    };
    let page = console.get("/login").await?;
    ensure!(
        page.body.contains(r#"name="code""#),
        "the sign-in form has a code field"
    );
    let r = console.post_form("/login", &form("", &page.body)).await?;
    ensure!(
        r.body.contains(r#"id="login-error""#),
        "no code: refused: {}",
        tail(&r.body, 10)
    );
    let page = console.get("/login").await?;
    let r = console
        .post_form("/login", &form(&recovery[5], &page.body))
        .await?;
    ensure!(
        r.status == 200 && !r.body.contains(r#"id="login-error""#) && !r.url.ends_with("/login"),
        "the recovery code in the form signs in: {} {} {}",
        r.status,
        r.url,
        tail(&r.body, 10)
    );
    let servers = console.get("/servers").await?;
    ensure!(
        servers.status == 200 && !servers.url.ends_with("/login"),
        "{}",
        servers.url
    );

    // The project requires it: a member without it is refused API calls until set up.
    let (st, body) = owner
        .call(
            "PUT",
            &format!("/api/v1/projects/{project}/two-factor"),
            &csrf,
            Some(json!({"required": true})),
        )
        .await?;
    ensure!(st == 200, "requiring it: {st} {body}");
    center
        .add_user(
            "nina",
            PASSWORD,
            &["--project", "alpha", "--role", "viewer"],
        )
        .await?;
    let token = center.api_token("nina").await?;
    let r = center.api_as(&token).get("/api/v1/servers").await?;
    ensure!(
        r.status == 403 && r.error_code() == "two_factor_required",
        "a member without two-factor is refused: {} {}",
        r.status,
        r.text
    );
    ensure!(
        r.error_message().contains("alpha"),
        "names the project: {}",
        r.text
    );
    let (key, _, _, _) = set_up(&center, "nina").await?;
    ensure!(!key.is_empty());
    center
        .api_as(&token)
        .get("/api/v1/servers")
        .await?
        .expect(200)?;
    Ok(())
}
