//! Must hold #6: the console in headless Chromium (Debian's chromium + chromedriver, driven by
//! fantoccini): log in and land on the dashboard (`/` shows it too), see both servers with their statuses, open a server's page, create an
//! enrollment token and see its install command; a wrong password shows `#login-error`; and a
//! POST without the CSRF token is refused (reqwest with a real session cookie).

use fantoccini::Locator;
use hostward_e2e::*;

/// Rows of `#servers` as (server id, agent status, protection status, risk status) texts.
async fn rows(b: &Browser) -> Result<Vec<(String, String, String, String)>> {
    let mut out = Vec::new();
    for row in b
        .client
        .find_all(Locator::Css("#servers tr[data-server-id]"))
        .await?
    {
        let id = row.attr("data-server-id").await?.unwrap_or_default();
        let cell = |c: &'static str| {
            let row = row.clone();
            async move { Ok::<_, anyhow::Error>(row.find(Locator::Css(c)).await?.text().await?) }
        };
        out.push((
            id,
            cell(".agent-status").await?,
            cell(".protection-status").await?,
            cell(".risk-status").await?,
        ));
    }
    Ok(out)
}

#[tokio::test]
async fn console_in_headless_chromium() -> Result<()> {
    if !browser_available()? {
        return Ok(());
    }
    let env = TestEnv::new("console-browser");
    env.run(async {
        let center = Center::start(&env, Backend::Sqlite, CenterOpts::default()).await?;
        let api = center.api();
        let one = Agent::start(&env, &center, "one").await?;
        let two = Agent::start(&env, &center, "two").await?;
        for a in [&one, &two] {
            api.wait_status(&a.server_id, "online", None, secs(30))
                .await?;
        }
        let spki = hostward_pki::spki_sha256_base64(&center.server_cert_pem().await?)?;
        let browser = Browser::start(&env, &spki).await?;
        let result = drive(&env, &center, &browser, &one, &two).await;
        if result.is_err()
            && let Some(p) = browser.screenshot(&env, "failure").await
        {
            eprintln!("screenshot of the failing page: {}", p.display());
        }
        browser.close().await?;
        result?;

        // CSRF: a real session (logged in through the form), a POST without the csrf field.
        let console = center.console_login(ADMIN_USER, ADMIN_PASSWORD).await?;
        let r = console
            .post_form("/tokens", &[("name".into(), "no-csrf".into())])
            .await?;
        ensure!(
            r.status == 403,
            "POST /tokens without csrf answered {} (want 403)",
            r.status
        );
        let r = console
            .post_form(
                "/tokens",
                &[
                    ("name".into(), "bad-csrf".into()),
                    ("csrf".into(), "forged".into()),
                ],
            )
            .await?;
        ensure!(
            r.status == 403,
            "POST /tokens with a wrong csrf answered {} (want 403)",
            r.status
        );
        // The same form with the page's csrf field works, so the 403 was about the token.
        let page = console.get("/tokens").await?;
        let form = form_html(&page.body, "action=\"/tokens\"")
            .ok_or_else(|| anyhow!("no create form on /tokens"))?;
        let mut fields = hidden_inputs(form);
        ensure!(
            fields.iter().any(|(k, _)| k == "csrf"),
            "the create form has no csrf field"
        );
        fields.push(("name".into(), "with-csrf".into()));
        let r = console.post_form("/tokens", &fields).await?;
        ensure!(
            r.status == 200 && r.body.contains("id=\"install-command\""),
            "POST /tokens with csrf answered {}: {}",
            r.status,
            tail(&r.body, 10)
        );
        let names: Vec<String> = api
            .get("/api/v1/enrollment-tokens")
            .await?
            .expect(200)?
            .json["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["name"].as_str().map(str::to_string))
            .collect();
        ensure!(
            !names.iter().any(|n| n == "no-csrf" || n == "bad-csrf"),
            "a token was created without a valid csrf: {names:?}"
        );
        ensure!(
            names.iter().any(|n| n == "with-csrf"),
            "the valid form did not create its token: {names:?}"
        );
        Ok(())
    })
    .await
}

async fn drive(
    env: &TestEnv,
    center: &Center,
    b: &Browser,
    one: &Agent,
    two: &Agent,
) -> Result<()> {
    let url = center.url();
    let fp = center.ca_fingerprint()?;

    // Log in: the console lands on the dashboard, whose protection overview counts both
    // servers once they are online; then the server list shows them online and protected.
    b.fill_login(&url, ADMIN_USER, ADMIN_PASSWORD).await?;
    b.client
        .wait()
        .at_most(secs(15))
        .for_element(Locator::Css("#score-panel"))
        .await?;
    let u = b.client.current_url().await?;
    ensure!(
        u.path() == "/dashboard",
        "signed in at {u}, not the dashboard"
    );
    b.find("#score[data-score]").await?;
    wait_until(
        "the dashboard counting both servers online",
        secs(20),
        millis(500),
        || async {
            b.client.goto(&format!("{url}/")).await?;
            let online = b
                .find("#by-agent a[data-status=online] .n")
                .await?
                .text()
                .await?;
            ensure!(online.trim() == "2", "{online} online");
            Ok(())
        },
    )
    .await?;
    wait_until(
        "both servers online in the console",
        secs(20),
        millis(500),
        || async {
            b.client.goto(&format!("{url}/servers")).await?;
            let rows = rows(b).await?;
            ensure!(rows.len() == 2, "{} rows: {rows:?}", rows.len());
            for a in [one, two] {
                let r = rows
                    .iter()
                    .find(|r| r.0 == a.server_id)
                    .ok_or_else(|| anyhow!("no row for {}: {rows:?}", a.server_id))?;
                ensure!(r.1.contains("online"), "agent status {:?}", r.1);
                ensure!(r.2.contains("enabled"), "protection status {:?}", r.2);
                ensure!(!r.3.trim().is_empty(), "empty risk status");
            }
            Ok(())
        },
    )
    .await?;

    // Open a server's page from its row.
    let link = b
        .client
        .find(Locator::Css(&format!(
            "#servers tr[data-server-id=\"{}\"] a",
            one.server_id
        )))
        .await?;
    link.click().await?;
    wait_until("the server page", secs(15), millis(200), || async {
        let u = b.client.current_url().await?;
        ensure!(u.path() == format!("/servers/{}", one.server_id), "at {u}");
        Ok(())
    })
    .await?;
    let body = b.client.find(Locator::Css("body")).await?.text().await?;
    let host = hostname();
    ensure!(
        body.contains(&host),
        "the server page does not show the host name {host:?}"
    );
    let server = center.api().server(&one.server_id).await?;
    let kernel = server["facts"]["kernel"].as_str().unwrap_or_default();
    ensure!(
        body.contains(kernel),
        "the server page does not show the kernel {kernel:?}"
    );

    // Create an enrollment token; the install command is shown.
    b.client.goto(&format!("{url}/tokens")).await?;
    let form = b
        .client
        .wait()
        .at_most(secs(15))
        .for_element(Locator::Css("#create-token-form"))
        .await?;
    form.find(Locator::Css("input[name=name]"))
        .await?
        .send_keys("from-the-browser")
        .await?;
    form.find(Locator::Css("button[type=submit]"))
        .await?
        .click()
        .await?;
    let cmd = b
        .client
        .wait()
        .at_most(secs(15))
        .for_element(Locator::Css("#install-command"))
        .await?
        .text()
        .await?;
    ensure!(
        cmd.contains("--token") && cmd.contains(&fp) && cmd.contains(&url),
        "install command {cmd:?} lacks the token, fingerprint {fp} or URL {url}"
    );
    if let Some(p) = b.screenshot(env, "token-created").await {
        eprintln!("screenshot: {}", p.display());
    }

    // A wrong password: #login-error, no session.
    b.client.delete_all_cookies().await?;
    b.fill_login(&url, ADMIN_USER, "not-the-password-at-all")
        .await?;
    let err = b
        .client
        .wait()
        .at_most(secs(15))
        .for_element(Locator::Css("#login-error"))
        .await?
        .text()
        .await?;
    ensure!(!err.trim().is_empty(), "#login-error is empty");
    b.client.goto(&format!("{url}/servers")).await?;
    let u = b.client.current_url().await?;
    ensure!(
        u.path() == "/login",
        "without a session /servers should lead to /login, got {u}"
    );
    Ok(())
}
