//! A real browser for the console tests: chromedriver with one headless Chromium session on a
//! free port, and the few page helpers the tests share.

use crate::*;

pub fn chromium_path() -> PathBuf {
    std::env::var_os("HOSTWARD_E2E_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/usr/bin/chromium".into())
}

pub fn chromedriver_path() -> PathBuf {
    std::env::var_os("HOSTWARD_E2E_CHROMEDRIVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/usr/bin/chromedriver".into())
}

/// Whether the browser tests can run: true when both binaries exist; outside CI a missing
/// browser skips the test with a message, in CI it is an error.
pub fn browser_available() -> Result<bool> {
    let (c, d) = (chromium_path(), chromedriver_path());
    if c.exists() && d.exists() {
        return Ok(true);
    }
    if is_ci() {
        bail!(
            "CI=true but {} or {} is missing (apt-get install chromium chromium-driver)",
            c.display(),
            d.display()
        );
    }
    eprintln!(
        "SKIPPED: {} or {} is missing (apt-get install chromium chromium-driver)",
        c.display(),
        d.display()
    );
    Ok(false)
}

/// chromedriver on a free port with one headless Chromium session.
pub struct Browser {
    pub client: fantoccini::Client,
    _driver: Proc,
}

/// A CSS string literal for an attribute selector.
pub fn css(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

impl Browser {
    /// The first element `selector` matches, waiting up to 15 s for one.
    pub async fn find(&self, selector: &str) -> Result<fantoccini::elements::Element> {
        self.client
            .wait()
            .at_most(secs(15))
            .for_element(fantoccini::Locator::Css(selector))
            .await
            .with_context(|| format!("waiting for {selector}"))
    }

    /// The text of the first element `selector` matches now.
    pub async fn text(&self, selector: &str) -> Result<String> {
        Ok(self
            .client
            .find(fantoccini::Locator::Css(selector))
            .await
            .with_context(|| format!("finding {selector}"))?
            .text()
            .await?)
    }

    /// How many elements `selector` matches now.
    pub async fn count(&self, selector: &str) -> Result<usize> {
        Ok(self
            .client
            .find_all(fantoccini::Locator::Css(selector))
            .await?
            .len())
    }

    /// Waits until the browser is at `path` (and, when given, a query containing `query_part`).
    pub async fn wait_path(&self, path: &str, query_part: Option<&str>) -> Result<()> {
        wait_until(
            &format!("the browser at {path}"),
            secs(15),
            millis(100),
            || async {
                let u = self.client.current_url().await?;
                ensure!(u.path() == path, "at {u}");
                if let Some(q) = query_part {
                    ensure!(u.query().unwrap_or("").contains(q), "at {u}");
                }
                Ok(())
            },
        )
        .await
    }

    /// Starts a browser that trusts `center`'s certificate, runs `drive` in it, keeps a
    /// screenshot of the page when `drive` fails, and closes the browser; `drive`'s result.
    pub async fn drive_center(
        env: &TestEnv,
        center: &Center,
        drive: impl AsyncFnOnce(&Browser) -> Result<()>,
    ) -> Result<()> {
        let spki = hostward_pki::spki_sha256_base64(&center.server_cert_pem().await?)?;
        let browser = Browser::start(env, &spki).await?;
        let result = drive(&browser).await;
        if result.is_err()
            && let Some(p) = browser.screenshot(env, "failure").await
        {
            eprintln!("screenshot of the failing page: {}", p.display());
        }
        browser.close().await?;
        result
    }

    /// Opens `/login` at `url`, fills in the form and submits it; the caller checks the outcome.
    pub async fn fill_login(&self, url: &str, user: &str, password: &str) -> Result<()> {
        use fantoccini::Locator;
        self.client.goto(&format!("{url}/login")).await?;
        let form = self
            .client
            .wait()
            .at_most(secs(15))
            .for_element(Locator::Css("form#login-form"))
            .await?;
        form.find(Locator::Css("input[name=username]"))
            .await?
            .send_keys(user)
            .await?;
        form.find(Locator::Css("input[name=password]"))
            .await?
            .send_keys(password)
            .await?;
        form.find(Locator::Css("button[type=submit]"))
            .await?
            .click()
            .await?;
        Ok(())
    }

    /// Starts chromedriver and a session whose Chromium trusts the key with SPKI hash
    /// `spki_b64` (base64 SHA-256, as `hostward_pki::spki_sha256_base64` gives it).
    pub async fn start(env: &TestEnv, spki_b64: &str) -> Result<Browser> {
        let dir = env.subdir("browser");
        let port = free_port();
        let mut cmd = command(chromedriver_path());
        cmd.arg(format!("--port={port}")).arg(format!(
            "--log-path={}",
            dir.join("chromedriver.log").display()
        ));
        env.add_log("chromedriver", &dir.join("chromedriver.log"));
        let driver = Proc::spawn(env, "chromedriver", cmd, &dir, "chromedriver")?;
        let status_url = format!("http://127.0.0.1:{port}/status");
        let plain = reqwest::Client::builder().timeout(secs(5)).build()?;
        wait_until("chromedriver /status", secs(30), millis(100), || async {
            let r = plain.get(&status_url).send().await?;
            ensure!(r.status().is_success(), "status {}", r.status());
            Ok(())
        })
        .await?;
        let profile = dir.join("profile");
        std::fs::create_dir_all(&profile)?;
        let args = vec![
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--window-size=1280,900".into(),
            format!("--user-data-dir={}", profile.display()),
            format!("--ignore-certificate-errors-spki-list={spki_b64}"),
        ];
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({ "binary": chromium_path(), "args": args }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = tokio::time::timeout(
            secs(60),
            fantoccini::ClientBuilder::new(connector)
                .capabilities(caps)
                .connect(&format!("http://127.0.0.1:{port}")),
        )
        .await
        .map_err(|_| anyhow!("starting a Chromium session timed out"))?
        .context("starting a Chromium session through chromedriver")?;
        Ok(Browser {
            client,
            _driver: driver,
        })
    }

    /// Ends the session (closes Chromium); chromedriver stops on drop.
    pub async fn close(self) -> Result<()> {
        let _ = tokio::time::timeout(secs(15), self.client.close()).await;
        Ok(())
    }

    /// Saves a screenshot into the test dir (for debugging failures).
    pub async fn screenshot(&self, env: &TestEnv, name: &str) -> Option<PathBuf> {
        let png = self.client.screenshot().await.ok()?;
        let p = env.root().join(format!("{name}.png"));
        std::fs::write(&p, png).ok()?;
        Some(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_prometheus_samples() {
        let text = "# TYPE x counter\nhostward_gateway_frames_rejected_total{reason=\"malformed\"} 2\n\
                    hostward_gateway_frames_rejected_total{reason=\"oversized\"} 1\nhostward_agents_online 3\n";
        assert_eq!(
            metric(
                text,
                "hostward_gateway_frames_rejected_total",
                &[("reason", "malformed")]
            ),
            Some(2.0)
        );
        assert_eq!(
            metric(text, "hostward_gateway_frames_rejected_total", &[]),
            Some(3.0)
        );
        assert_eq!(metric(text, "hostward_agents_online", &[]), Some(3.0));
        assert_eq!(metric(text, "hostward_agents", &[]), None);
    }
}
