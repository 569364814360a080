use super::*;

fn cleaned(path: &str) -> Option<Vec<String>> {
    clean_segments(path).map(|s| s.into_iter().map(|s| String::from_utf8(s).unwrap()).collect())
}

#[test]
fn cleaning_never_climbs_above_the_root() {
    assert_eq!(cleaned("/a/b/../c").unwrap(), ["a", "c"]);
    assert_eq!(cleaned("/../../etc/passwd").unwrap(), ["etc", "passwd"]);
    assert_eq!(cleaned("/%2e%2e/%2E%2E/etc/passwd").unwrap(), ["etc", "passwd"]);
    assert_eq!(cleaned("/./a//b/.").unwrap(), ["a", "b"]);
    assert_eq!(cleaned("/a%20b").unwrap(), ["a b"]);
    assert!(cleaned("/").unwrap().is_empty());
}

#[test]
fn encoded_slashes_and_nul_are_refused() {
    assert_eq!(cleaned("/..%2f..%2fetc/passwd"), None);
    assert_eq!(cleaned("/a%00.html"), None);
}

/// root/ (served): index.html, sub/index.html, sub/page.txt, emptydir/,
/// link-out -> ../secret.txt, dirlink-out -> .. ; outside: secret.txt.
fn tree() -> (tempfile::TempDir, PathBuf) {
    let top = tempfile::tempdir().unwrap();
    let root = top.path().join("root");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::create_dir_all(root.join("emptydir")).unwrap();
    std::fs::write(root.join("index.html"), "home").unwrap();
    std::fs::write(root.join("sub/index.html"), "sub home").unwrap();
    std::fs::write(root.join("sub/page.txt"), "page").unwrap();
    std::fs::write(top.path().join("secret.txt"), "secret").unwrap();
    std::os::unix::fs::symlink("../secret.txt", root.join("link-out")).unwrap();
    std::os::unix::fs::symlink("..", root.join("dirlink-out")).unwrap();
    std::os::unix::fs::symlink("sub/page.txt", root.join("link-in")).unwrap();
    let root = root.canonicalize().unwrap();
    (top, root)
}

async fn served(root: &Path, url: &str) -> Option<String> {
    let file = resolve(root, url, "index.html").await?;
    Some(std::fs::read_to_string(file).unwrap())
}

#[tokio::test]
async fn files_and_default_files_resolve() {
    let (_top, root) = tree();
    assert_eq!(served(&root, "/").await.as_deref(), Some("home"));
    assert_eq!(served(&root, "/sub/").await.as_deref(), Some("sub home"));
    assert_eq!(served(&root, "/sub").await.as_deref(), Some("sub home"));
    assert_eq!(served(&root, "/sub/page.txt").await.as_deref(), Some("page"));
    assert_eq!(served(&root, "/sub/../sub/page.txt").await.as_deref(), Some("page"));
    assert_eq!(served(&root, "/link-in").await.as_deref(), Some("page"));
}

#[tokio::test]
async fn nothing_outside_the_root_is_ever_resolved() {
    let (_top, root) = tree();
    for url in [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/..%2fsecret.txt",
        "/link-out",
        "/dirlink-out/secret.txt",
        "/emptydir/",
        "/missing",
    ] {
        assert_eq!(served(&root, url).await, None, "{url}");
    }
    let absolute = format!("/{}", root.parent().unwrap().join("secret.txt").display());
    assert_eq!(served(&root, &absolute).await, None);
}

#[tokio::test]
async fn folders_without_a_default_file_are_not_listed() {
    let (_top, root) = tree();
    assert_eq!(resolve(&root, "/sub/", "").await, None);
    assert_eq!(resolve(&root, "/sub/", "missing.html").await, None);
}
