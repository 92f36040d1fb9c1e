//! A real WordPress for the tests: Debian's `wordpress` package (6.1) with MariaDB on a
//! Unix socket and Apache (mod_php, Debian's default modules, so mod_deflate is on) on a
//! loopback port, one site per test in a scratch folder. Content is driven through PHP
//! that loads `wp-load.php`, as WP-CLI would. `scripts/test` installs the packages.
//!
//! Used by tests/integration/wordpress_live.rs and by benches/wordpress.rs.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The Debian packages this harness runs; `scripts/test` installs them when missing.
const NEEDED: &[&str] = &[
    "/usr/sbin/mariadbd",
    "/usr/bin/mariadb-install-db",
    "/usr/sbin/apache2",
    "/usr/lib/apache2/modules/libphp8.2.so",
    "/usr/share/wordpress/wp-load.php",
    "/usr/bin/php",
];

/// Permalink settings a site can run with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permalinks {
    /// `/%year%/%monthnum%/%postname%/`: `/wp-json/` and `/feed/` exist.
    Pretty,
    /// `/?p=123`: only `/?rest_route=/` and `/?feed=rss2` exist.
    Plain,
}

/// One running WordPress site; everything stops when it is dropped.
pub struct WordPress {
    dir: tempfile::TempDir,
    mariadb: Child,
    apache: Option<Child>,
    /// The site's address, `http://127.0.0.1:PORT`.
    pub url: String,
    port: u16,
}

fn harness_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/wordpress")
        .join(name)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn wait_for(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(
            start.elapsed() < limit,
            "{what} did not start within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl WordPress {
    /// Starts MariaDB and Apache, installs WordPress with the test theme and switches,
    /// in the site time zone `Europe/Berlin` (so zone-less dates would be off by 1–2 h).
    pub fn start(permalinks: Permalinks) -> WordPress {
        for path in NEEDED {
            assert!(
                Path::new(path).exists(),
                "{path} is missing: run ./scripts/test, which installs WordPress, Apache and MariaDB from Debian's packages"
            );
        }
        // Debian's wp-config.php picks /etc/wordpress/config-$WORDPRESS_CONFIG.php.
        let config = Path::new("/etc/wordpress/config-gazettetest.php");
        let ours = fs::read(harness_file("config-gazettetest.php")).unwrap();
        if fs::read(config).ok().as_deref() != Some(&ours[..]) {
            fs::write(config, &ours)
                .expect("write /etc/wordpress/config-gazettetest.php (as root)");
        }
        let dir = tempfile::Builder::new()
            .prefix("gazette-wp-")
            .tempdir()
            .unwrap();
        let root = dir.path();
        // Apache's children run as www-data: they must reach the socket and the content.
        set_mode(root, 0o755);
        let content = root.join("wp-content");
        for sub in ["themes/gazette", "mu-plugins", "plugins", "uploads"] {
            fs::create_dir_all(content.join(sub)).unwrap();
        }
        for f in ["style.css", "index.php", "functions.php"] {
            fs::copy(
                harness_file(&format!("theme/{f}")),
                content.join("themes/gazette").join(f),
            )
            .unwrap();
        }
        fs::copy(
            harness_file("mu-plugin.php"),
            content.join("mu-plugins/gazette.php"),
        )
        .unwrap();
        chown_www_data(&content);

        let data = root.join("db");
        let tmp = root.join("tmp");
        fs::create_dir_all(&tmp).unwrap();
        // Bootstraps running at once collided on temporary tables in the shared /tmp:
        // each site has its own tmpdir, and one bootstrap runs at a time.
        static BOOTSTRAP: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let guard = BOOTSTRAP.lock().unwrap_or_else(|p| p.into_inner());
        let out = Command::new("mariadb-install-db")
            .args([
                "--no-defaults",
                "--user=root",
                "--auth-root-authentication-method=normal",
            ])
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--tmpdir={}", tmp.display()))
            .output()
            .unwrap();
        drop(guard);
        assert!(
            out.status.success(),
            "mariadb-install-db: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let socket = root.join("mysql.sock");
        let mariadb = Command::new("mariadbd")
            .process_group(0)
            .args([
                "--no-defaults",
                "--user=root",
                "--skip-networking",
                "--innodb-buffer-pool-size=32M",
                "--innodb-log-file-size=8M",
            ])
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--tmpdir={}", tmp.display()))
            .arg(format!(
                "--log-error={}",
                root.join("mariadb.log").display()
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for("MariaDB", Duration::from_secs(30), || socket.exists());
        let sql = "CREATE DATABASE wordpress; CREATE USER 'wp'@'localhost' IDENTIFIED BY 'wp'; GRANT ALL ON wordpress.* TO 'wp'@'localhost';";
        let out = Command::new("mariadb")
            .args(["--no-defaults", "-uroot"])
            .arg(format!("--socket={}", socket.display()))
            .args(["-e", sql])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mariadb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        set_mode(&socket, 0o777);

        let port = free_port();
        let url = format!("http://127.0.0.1:{port}");
        let mut wp = WordPress {
            dir,
            mariadb,
            apache: None,
            url,
            port,
        };
        let installed = wp.php_env(
            &format!(
                r#"require_once ABSPATH . 'wp-admin/includes/upgrade.php';
                wp_install('Gazette Test Site', 'admin', 'admin@example.org', true, '', 'not-a-secret');
                update_option('timezone_string', 'Europe/Berlin');
                switch_theme('gazette');
                update_option('permalink_structure', '{}');
                // Old test posts, so the site is not empty: "Hello world!" and its comment.
                return get_option('siteurl');"#,
                match permalinks {
                    Permalinks::Pretty => "/%year%/%monthnum%/%postname%/",
                    Permalinks::Plain => "",
                }
            ),
            &[("GAZETTE_WP_INSTALLING", "1")],
        );
        assert_eq!(installed.as_str(), Some(wp.url.as_str()), "wp_install");
        wp.php("flush_rewrite_rules(); return true;");
        wp.start_apache();
        wp
    }

    fn env(&self) -> Vec<(String, String)> {
        let root = self.dir.path();
        vec![
            ("WORDPRESS_CONFIG".into(), "gazettetest".into()),
            (
                "GAZETTE_WP_SOCKET".into(),
                root.join("mysql.sock").display().to_string(),
            ),
            (
                "GAZETTE_WP_CONTENT".into(),
                root.join("wp-content").display().to_string(),
            ),
            ("GAZETTE_WP_URL".into(), self.url.clone()),
        ]
    }

    fn start_apache(&mut self) {
        let root = self.dir.path();
        let mut conf = format!(
            r#"ServerRoot /etc/apache2
PidFile {root}/apache.pid
Mutex file:{root}
DefaultRuntimeDir {root}
Listen 127.0.0.1:{port}
ServerName 127.0.0.1
User www-data
Group www-data
ErrorLog {root}/apache-error.log
LogLevel warn
StartServers 2
MinSpareServers 2
MaxSpareServers 4
IncludeOptional mods-enabled/*.load
IncludeOptional mods-enabled/*.conf
LoadModule rewrite_module /usr/lib/apache2/modules/mod_rewrite.so
TypesConfig /etc/mime.types
LogFormat "%r\t%>s\t%B\t%{{If-None-Match}}i\t%{{If-Modified-Since}}i\t%{{ETag}}o\t%{{Content-Encoding}}o" gazette
CustomLog {root}/access.log gazette
DocumentRoot /usr/share/wordpress
DirectoryIndex index.php
<Directory /usr/share/wordpress>
    Options FollowSymLinks
    AllowOverride None
    Require all granted
    RewriteEngine On
    RewriteBase /
    RewriteRule ^index\.php$ - [L]
    RewriteCond %{{REQUEST_FILENAME}} !-f
    RewriteCond %{{REQUEST_FILENAME}} !-d
    RewriteRule . /index.php [L]
</Directory>
"#,
            root = root.display(),
            port = self.port
        );
        for (k, v) in self.env() {
            conf.push_str(&format!("SetEnv {k} {v}\n"));
        }
        let conf_path = root.join("apache.conf");
        fs::write(&conf_path, conf).unwrap();
        // prefork's parent stops its children with killpg(getpgrp()): in a group of its
        // own, or it would stop the test run too.
        let child = Command::new("/usr/sbin/apache2")
            .process_group(0)
            .arg("-f")
            .arg(&conf_path)
            .arg("-DFOREGROUND")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        self.apache = Some(child);
        let addr = format!("127.0.0.1:{}", self.port);
        wait_for("Apache", Duration::from_secs(30), || {
            std::net::TcpStream::connect(&addr).is_ok()
        });
    }

    /// Runs PHP inside WordPress and returns what the code `return`s, decoded from JSON.
    pub fn php(&self, code: &str) -> serde_json::Value {
        self.php_env(code, &[])
    }

    fn php_env(&self, code: &str, extra: &[(&str, &str)]) -> serde_json::Value {
        let script = self
            .dir
            .path()
            .join(format!("run-{}.php", fastrand::u64(..)));
        fs::write(&script, format!("<?php\n{code}\n")).unwrap();
        let out = Command::new("php")
            .arg(harness_file("cli.php"))
            .arg(&script)
            .envs(self.env())
            .envs(extra.iter().copied())
            .output()
            .unwrap();
        let _ = fs::remove_file(&script);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "PHP failed: {}\n{stdout}\n{code}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Notices printed before the JSON are WordPress's; the result is the last line.
        let last = stdout.trim().rsplit('\n').next().unwrap_or_default();
        serde_json::from_str(last).unwrap_or_else(|e| panic!("PHP printed {stdout:?}: {e}"))
    }

    /// Publishes a post now (or at `date_gmt`, "Y-m-d H:i:s"); returns its id.
    pub fn post(&self, title: &str, body: &str) -> u64 {
        self.php(&format!(
            "return wp_insert_post(array('post_title' => {t}, 'post_content' => {b}, 'post_status' => 'publish', 'post_author' => 1), true);",
            t = php_str(title),
            b = php_str(body)
        ))
        .as_u64()
        .expect("a post id")
    }

    /// Adds an approved comment to a post, as a reader named `author` ("" for none).
    pub fn comment(&self, post: u64, parent: u64, author: &str, text: &str) -> u64 {
        self.php(&format!(
            "return wp_insert_comment(array('comment_post_ID' => {post}, 'comment_parent' => {parent}, 'comment_author' => {a}, 'comment_author_email' => 'reader@example.org', 'comment_content' => {t}, 'comment_approved' => 1));",
            a = php_str(author),
            t = php_str(text)
        ))
        .as_u64()
        .expect("a comment id")
    }

    /// Sets one of the mu-plugin's switches (`gazette_rest`, `gazette_no_users`).
    pub fn option(&self, name: &str, value: &str) {
        self.php(&format!(
            "update_option({}, {}); return true;",
            php_str(name),
            php_str(value)
        ));
    }

    /// Apache's access log so far: request line, status, bytes, If-None-Match,
    /// If-Modified-Since, ETag and Content-Encoding, tab-separated.
    pub fn access_log(&self) -> Vec<Vec<String>> {
        fs::read_to_string(self.dir.path().join("access.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| l.split('\t').map(str::to_owned).collect())
            .collect()
    }

    /// Forgets the access log so far.
    pub fn clear_access_log(&self) {
        // Apache appends; truncating in place keeps its descriptor valid.
        let _ = fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(self.dir.path().join("access.log"));
    }
}

impl Drop for WordPress {
    fn drop(&mut self) {
        if let Some(mut a) = self.apache.take() {
            // SIGTERM lets the parent stop its children too.
            let _ = Command::new("kill").arg(a.id().to_string()).status();
            let _ = a.wait();
        }
        let _ = self.mariadb.kill();
        let _ = self.mariadb.wait();
    }
}

/// A PHP single-quoted string literal.
pub fn php_str(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn chown_www_data(path: &Path) {
    // Only root can; as another user Apache runs as that user and needs nothing.
    let _ = Command::new("chown")
        .args(["-R", "www-data:www-data"])
        .arg(path)
        .status();
}
