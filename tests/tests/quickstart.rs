//! Must hold #7: `hostward up` on a fresh temp dir brings up a working console with the local
//! host online: parse the printed URL, user and one-time password, log in, see one server online.

use hostward_e2e::*;
use serde_json::Value;

/// The value after `label` on the line that has it, e.g. `  User:       admin`.
fn field(stdout: &str, label: &str) -> Option<String> {
    stdout.lines().find_map(|l| {
        l.trim()
            .strip_prefix(label)
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_string)
    })
}

#[tokio::test]
async fn up_brings_a_console_with_the_local_host_online() -> Result<()> {
    let env = TestEnv::new("quickstart");
    env.run(async {
        let dir = env.subdir("up");
        let data = dir.join("hostward-data");
        let (port, gw) = (free_port(), free_port());
        let mut cmd = command(bin("hostward")?);
        cmd.current_dir(&dir)
            .arg("up")
            .arg("--data-dir")
            .arg(&data)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--gateway-listen")
            .arg(format!("127.0.0.1:{gw}"))
            .arg("--heartbeat-secs")
            .arg("1")
            .arg("--log")
            .arg("info")
            // The product fetches the public vulnerability feeds; the test stays on loopback.
            .env("HOSTWARD_VULNDB_FETCH", "off");
        env.add_log("local agent (up)", &data.join("agent").join("agent.log"));
        let mut up = Proc::spawn(&env, "hostward up", cmd, &dir, "up")?;

        let stdout = wait_until(
            "`hostward up` to print the console URL, user and password",
            secs(120),
            millis(200),
            || {
                let out = up.stdout();
                let exited = up.exited();
                async move {
                    if let Some(status) = exited {
                        bail!("`hostward up` exited early ({status}); stdout:\n{out}");
                    }
                    ensure!(
                        out.contains("Password:") && out.contains("Console:"),
                        "stdout so far:\n{out}"
                    );
                    Ok(out)
                }
            },
        )
        .await?;
        let url =
            field(&stdout, "Console:").ok_or_else(|| anyhow!("no console URL in:\n{stdout}"))?;
        let user = field(&stdout, "User:").ok_or_else(|| anyhow!("no user in:\n{stdout}"))?;
        let password =
            field(&stdout, "Password:").ok_or_else(|| anyhow!("no password in:\n{stdout}"))?;
        ensure!(
            url == format!("https://127.0.0.1:{port}"),
            "console URL {url:?}, want https://127.0.0.1:{port}"
        );
        ensure!(
            password.len() >= 12,
            "one-time password {password:?} is shorter than 12 characters"
        );

        // Log in through the console form with what was printed.
        let ca_pem = std::fs::read_to_string(data.join("ca.crt"))?;
        let console = Console {
            base: url.clone(),
            client: https_client(&ca_pem, true)?,
        };
        let login = console.get("/login").await?;
        ensure!(login.status == 200, "GET /login answered {}", login.status);
        let mut fields = hidden_inputs(&login.body);
        fields.push(("username".into(), user.clone()));
        fields.push(("password".into(), password.clone()));
        let r = console.post_form("/login", &fields).await?;
        ensure!(
            r.status == 200 && !r.body.contains("id=\"login-error\""),
            "login with the printed credentials failed: {} {}",
            r.status,
            tail(&r.body, 10)
        );

        // One server: this host, online, in the API (session cookie) and on the console page.
        let host = hostname();
        let server: Value = wait_until("the local host online", secs(60), millis(500), || async {
            let r = console
                .client
                .get(format!("{url}/api/v1/servers"))
                .send()
                .await?;
            ensure!(
                r.status().as_u16() == 200,
                "GET /api/v1/servers answered {}",
                r.status()
            );
            let v: Value = r.json().await?;
            let items = v["items"].as_array().cloned().unwrap_or_default();
            ensure!(
                items.len() == 1,
                "want one server, got {}: {items:?}",
                items.len()
            );
            let s = items[0].clone();
            ensure!(s["agent_status"] == "online", "{}", status_line(&s));
            Ok(s)
        })
        .await?;
        ensure!(
            server["facts"]["hostname"] == host.as_str(),
            "the server is not this host: {server}"
        );
        let page = console.get("/servers").await?;
        let rows = server_rows(&page.body);
        ensure!(rows.len() == 1, "console lists {} servers", rows.len());
        ensure!(
            class_text(&rows[0].1, "agent-status").is_some_and(|t| t.contains("online")),
            "console row: {}",
            rows[0].1
        );

        // Ctrl-C equivalent: stops cleanly, taking the agent with it.
        let status = up.term(secs(30)).await?;
        ensure!(
            status.success(),
            "`hostward up` exited with {status} on SIGTERM"
        );
        Ok(())
    })
    .await
}
