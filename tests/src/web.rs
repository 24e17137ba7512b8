//! A real nginx serving a directory on loopback, for the tests that protect or scan a web root
//! (tamper protection, real-time malware scanning): its own config, pid and temp files in
//! the test's directory, running as root so it reads whatever the test puts there.

use std::path::Path;

use crate::*;

/// Starts nginx serving `www` on a free loopback port and waits until `probe` (a path under
/// `www`) is served. Returns the process (stopped when dropped) and the port.
pub async fn nginx(env: &TestEnv, www: &Path, probe: &str) -> Result<(Proc, u16)> {
    let dir = env.subdir("nginx");
    let port = free_port();
    let conf = dir.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "user root;\nworker_processes 1;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
             events {{ worker_connections 64; }}\n\
             http {{ access_log off; client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp; fastcgi_temp_path {d}/tmp; uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;\n\
             server {{ listen 127.0.0.1:{port}; root {w}; location / {{ }} }} }}\n",
            d = dir.display(),
            w = www.display()
        ),
    )?;
    std::fs::create_dir_all(dir.join("tmp"))?;
    let mut c = command("/usr/sbin/nginx");
    c.arg("-c").arg(&conf).arg("-e").arg(dir.join("error.log"));
    let nginx = Proc::spawn(env, "nginx", c, &dir, "nginx")?;
    let url = format!("http://127.0.0.1:{port}/{}", probe.trim_start_matches('/'));
    wait_until("nginx serving", secs(20), millis(100), || async {
        run_cmd(
            Path::new("/usr/bin/curl"),
            &["-sf".into(), url.clone()],
            None,
        )
        .await?
        .ok()?;
        Ok(())
    })
    .await?;
    Ok((nginx, port))
}
