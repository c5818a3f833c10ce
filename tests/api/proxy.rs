//! Through a real nginx (Debian's package, started here on a free loopback
//! port with a generated configuration): a download cut mid-stream on the
//! service side reaches nginx's client as an error, never as a complete
//! file — with the settings docs/operations.md recommends, buffered or not.
//! With nginx's default HTTP/1.0 to upstreams, downloads are refused (505)
//! rather than cut silently.

use crate::helpers::*;
use crate::streaming::{faulty_app, many_events, Fault};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const NGINX: &str = "/usr/sbin/nginx";

/// A running nginx, stopped when dropped.
struct Nginx {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts nginx in front of `upstream` with `location` directives added.
fn nginx(upstream: std::net::SocketAddr, directives: &str) -> Nginx {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().display();
    let port = free_port();
    let conf = format!(
        "daemon off;
master_process off;
worker_processes 1;
pid {p}/nginx.pid;
error_log {p}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {p}/body;
    proxy_temp_path {p}/proxy;
    fastcgi_temp_path {p}/fastcgi;
    uwsgi_temp_path {p}/uwsgi;
    scgi_temp_path {p}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://{upstream};
            {directives}
        }}
    }}
}}
"
    );
    let conf_path: PathBuf = dir.path().join("nginx.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let mut child = Command::new(NGINX)
        .arg("-p")
        .arg(dir.path())
        .arg("-e")
        .arg(dir.path().join("error.log"))
        .arg("-c")
        .arg(&conf_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Nginx {
                child,
                port,
                _dir: dir,
            };
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("nginx did not start on port {port}");
}

/// What curl made of a download: its exit code, the status, the file.
struct Curl {
    exit: i32,
    status: String,
    body: Vec<u8>,
}

fn curl(url: &str, bearer: &str, out: &Path) -> Curl {
    let output = Command::new("curl")
        .args(["-sS", "-o"])
        .arg(out)
        .args(["-w", "%{http_code}", "-H"])
        .arg(format!("Authorization: {bearer}"))
        .arg(url)
        .output()
        .unwrap();
    Curl {
        exit: output.status.code().unwrap_or(-1),
        status: String::from_utf8_lossy(&output.stdout).into_owned(),
        body: std::fs::read(out).unwrap_or_default(),
    }
}

fn have_nginx() -> bool {
    if Path::new(NGINX).exists() {
        return true;
    }
    crate::common::skip_loudly(&format!(
        "nginx is not installed ({NGINX}); the reverse-proxy test did not run (.ci/run installs it)"
    ));
    false
}

async fn a_download_cut_behind_nginx_is_an_error_never_a_complete_file() {
    if !have_nginx() {
        return;
    }
    let app = faulty_app(Fault::Fail, 2).await;
    let bearer = app.admin_bearer("org-a").await;
    many_events(&app, 5000).await;
    let files = tempfile::tempdir().unwrap();
    let out = files.path().join("download.csv");
    for (name, directives) in [
        (
            "buffered",
            "proxy_http_version 1.1; proxy_set_header Connection \"\";",
        ),
        (
            "unbuffered",
            "proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_buffering off;",
        ),
    ] {
        let proxy = nginx(app.addr, directives);
        let url = format!("http://127.0.0.1:{}{DOWNLOAD}?{}", proxy.port, wide());
        let got = tokio::task::spawn_blocking({
            let (bearer, out) = (bearer.clone(), out.clone());
            move || curl(&url, &bearer, &out)
        })
        .await
        .unwrap();
        assert_eq!(got.status, "200", "{name}: the cut comes after the headers");
        assert_ne!(
            got.exit,
            0,
            "{name}: curl must fail on a cut download, got {} bytes",
            got.body.len()
        );
        assert!(got.body.starts_with(b"Timestamp,Event,"), "{name}");
    }
    // nginx's default (HTTP/1.0 to the upstream): refused, not cut silently.
    let proxy = nginx(app.addr, "");
    let url = format!("http://127.0.0.1:{}{DOWNLOAD}?{}", proxy.port, wide());
    let got = tokio::task::spawn_blocking(move || curl(&url, &bearer, &out))
        .await
        .unwrap();
    assert_eq!(got.status, "505");
    let body: serde_json::Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(body["error"]["code"], "HttpVersionNotSupported");
}

crate::both_backends!(a_download_cut_behind_nginx_is_an_error_never_a_complete_file);
