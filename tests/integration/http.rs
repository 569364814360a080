//! `http`: files served, nothing outside `path` ever returned.

use crate::support::*;

/// top/www (served) with index.html, docs/a.txt, a symlink leading out and
/// one leading in; top/secret.txt outside.
fn site() -> (tempfile::TempDir, std::path::PathBuf) {
    let top = tempfile::tempdir().unwrap();
    let www = top.path().join("www");
    std::fs::create_dir_all(www.join("docs")).unwrap();
    std::fs::write(www.join("index.html"), "home page").unwrap();
    std::fs::write(www.join("docs/a.txt"), "doc a").unwrap();
    std::fs::write(www.join("404.html"), "custom not found").unwrap();
    std::fs::write(top.path().join("secret.txt"), "TOP SECRET").unwrap();
    std::os::unix::fs::symlink(top.path().join("secret.txt"), www.join("escape")).unwrap();
    std::os::unix::fs::symlink(top.path(), www.join("up")).unwrap();
    std::os::unix::fs::symlink("docs/a.txt", www.join("inside")).unwrap();
    (top, www)
}

async fn request(daemon: &Daemon, raw: &str) -> String {
    let mut client = daemon.connect().await;
    send(&mut client, raw.as_bytes()).await;
    let response = read_to_end(&mut client).await.unwrap_or_default();
    String::from_utf8_lossy(&response).into_owned()
}

async fn get(daemon: &Daemon, target: &str) -> String {
    request(daemon, &format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")).await
}

fn config(www: &std::path::Path, not_found: &str) -> String {
    format!(
        r#"{{"address": ":0", "protocols": [{{"kind": "http", "conf": {{"path": {}{not_found}}}}}]}}"#,
        json(www.to_string_lossy())
    )
}

#[test]
fn files_folders_and_symlinks_inside_are_served() {
    in_netns(|| async {
        let (_top, www) = site();
        let daemon = Daemon::start(&config(&www, "")).await;
        for (target, body) in
            [("/", "home page"), ("/docs/a.txt", "doc a"), ("/inside", "doc a"), ("/docs/../index.html", "home page")]
        {
            let response = get(&daemon, target).await;
            assert!(response.starts_with("HTTP/1.1 200 OK"), "{target}: {response}");
            assert!(response.ends_with(body), "{target}: {response}");
        }
        let head = request(&daemon, "HEAD /docs/a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
        assert!(
            head.starts_with("HTTP/1.1 200 OK") && head.contains("content-length: 5") && !head.contains("doc a"),
            "{head}"
        );
        let post =
            request(&daemon, "POST /docs/a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                .await;
        assert!(post.starts_with("HTTP/1.1 405"), "{post}");
        daemon.stop().await;
    });
}

#[test]
fn traversal_attempts_never_return_a_file_outside_path() {
    in_netns(|| async {
        let (top, www) = site();
        let daemon = Daemon::start(&config(&www, r#", "notFoundMsg": "nope""#)).await;
        let absolute = top.path().join("secret.txt");
        let attempts = [
            "/../secret.txt".to_owned(),
            "/../../../../../../etc/passwd".to_owned(),
            "/%2e%2e/secret.txt".to_owned(),
            "/%2E%2E/%2e%2e/etc/passwd".to_owned(),
            "/..%2fsecret.txt".to_owned(),
            "/docs/..%2f..%2fsecret.txt".to_owned(),
            "/.%2e/secret.txt".to_owned(),
            "/escape".to_owned(),
            "/up/secret.txt".to_owned(),
            format!("/{}", absolute.display()),
            format!("{}", absolute.display()),
            "/%00/secret.txt".to_owned(),
            "http://x/../secret.txt".to_owned(),
            "/docs/".to_owned() + &"../".repeat(20) + "secret.txt",
        ];
        for target in &attempts {
            let response = get(&daemon, target).await;
            assert!(!response.contains("TOP SECRET"), "{target} leaked: {response}");
            assert!(!response.contains("root:x:0:0"), "{target} leaked /etc/passwd: {response}");
            assert!(
                response.starts_with("HTTP/1.1 404") || response.starts_with("HTTP/1.1 400"),
                "{target}: {response}"
            );
        }
        assert!(get(&daemon, "/missing").await.ends_with("nope"));
        daemon.stop().await;
    });
}

#[test]
fn not_found_file_is_served_with_404() {
    in_netns(|| async {
        let (_top, www) = site();
        let not_found = format!(r#", "notFoundFile": {}"#, json(www.join("404.html").to_string_lossy()));
        let daemon = Daemon::start(&config(&www, &not_found)).await;
        let response = get(&daemon, "/nothing/here").await;
        assert!(response.starts_with("HTTP/1.1 404") && response.ends_with("custom not found"), "{response}");
        assert!(response.contains("content-type: text/html"), "{response}");
        daemon.stop().await;
    });
}
