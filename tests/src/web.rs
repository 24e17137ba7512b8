//! A real nginx serving a directory on loopback, for the tests that protect or scan a web root
//! (tamper protection, real-time malware scanning) or that need an HTTPS server (the center's
//! feed fetch): its own config, pid and temp files in the test's directory, running as root so
//! it reads whatever the test puts there.

use std::path::{Path, PathBuf};

use crate::*;

/// Starts nginx serving `www` on a free loopback port and waits until `probe` (a path under
/// `www`) is served. Returns the process (stopped when dropped) and the port.
pub async fn nginx(env: &TestEnv, www: &Path, probe: &str) -> Result<(Proc, u16)> {
    serve(env, www, probe, None).await
}

/// nginx serving `www` over HTTPS on loopback, with a certificate for 127.0.0.1 from a CA made
/// for the test; returns the process, the port and the CA's certificate file (what a client
/// trusts), as a feed or download server looks to Hostward.
pub async fn nginx_https(env: &TestEnv, www: &Path, probe: &str) -> Result<(Proc, u16, PathBuf)> {
    let dir = env.subdir("nginx-tls");
    let sh = format!(
        "set -e; cd {d}; \
         openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=hostward-test-ca -keyout ca.key -out ca.crt 2>/dev/null; \
         openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout srv.key -out srv.csr 2>/dev/null; \
         printf 'subjectAltName=IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\nextendedKeyUsage=serverAuth\\n' > ext.cnf; \
         openssl x509 -req -in srv.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile ext.cnf -out srv.crt 2>/dev/null",
        d = dir.display()
    );
    run_cmd(Path::new("/bin/sh"), &["-c".into(), sh], None)
        .await?
        .ok()?;
    let (p, port) = serve(env, www, probe, Some(&dir)).await?;
    Ok((p, port, dir.join("ca.crt")))
}

/// `tls`: a directory with srv.crt, srv.key and ca.crt.
async fn serve(env: &TestEnv, www: &Path, probe: &str, tls: Option<&Path>) -> Result<(Proc, u16)> {
    let dir = env.subdir("nginx");
    let port = free_port();
    let conf = dir.join("nginx.conf");
    let (listen, scheme) = match tls {
        Some(t) => (
            format!(
                "127.0.0.1:{port} ssl; ssl_protocols TLSv1.2 TLSv1.3; ssl_certificate {c}; ssl_certificate_key {k}",
                c = t.join("srv.crt").display(),
                k = t.join("srv.key").display()
            ),
            "https",
        ),
        None => (format!("127.0.0.1:{port}"), "http"),
    };
    std::fs::write(
        &conf,
        format!(
            "user root;\nworker_processes 1;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
             events {{ worker_connections 64; }}\n\
             http {{ access_log off; client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp; fastcgi_temp_path {d}/tmp; uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;\n\
             server {{ listen {listen}; root {w}; location / {{ }} }} }}\n",
            d = dir.display(),
            w = www.display()
        ),
    )?;
    std::fs::create_dir_all(dir.join("tmp"))?;
    let mut c = command("/usr/sbin/nginx");
    c.arg("-c").arg(&conf).arg("-e").arg(dir.join("error.log"));
    let nginx = Proc::spawn(env, "nginx", c, &dir, "nginx")?;
    let url = format!(
        "{scheme}://127.0.0.1:{port}/{}",
        probe.trim_start_matches('/')
    );
    let mut args = vec!["-sf".to_string(), url];
    if let Some(t) = tls {
        args.extend(["--cacert".into(), t.join("ca.crt").display().to_string()]);
    }
    wait_until("nginx serving", secs(20), millis(100), || async {
        run_cmd(Path::new("/usr/bin/curl"), &args, None)
            .await?
            .ok()?;
        Ok(())
    })
    .await?;
    Ok((nginx, port))
}
