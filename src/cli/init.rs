//! `gazette init [DIR]`: a starter publication a newcomer can send from at once: the
//! commented `config.toml`, the default templates and the sample folder source, exactly
//! as this repository ships them (embedded in the binary, so `cargo install` is enough).

use std::path::Path;

use super::{EXIT_ERROR, EXIT_OK};

/// Every file `init` writes, by path relative to the new folder.
const STARTER: &[(&str, &str)] = &[
    ("config.toml", include_str!("../../config.toml")),
    (
        "templates/default/base.html",
        include_str!("../../templates/default/base.html"),
    ),
    (
        "templates/default/base.txt",
        include_str!("../../templates/default/base.txt"),
    ),
    (
        "templates/default/digest.html",
        include_str!("../../templates/default/digest.html"),
    ),
    (
        "templates/default/digest.txt",
        include_str!("../../templates/default/digest.txt"),
    ),
    (
        "templates/default/style.css",
        include_str!("../../templates/default/style.css"),
    ),
    (
        "templates/web/archive.html",
        include_str!("../../templates/web/archive.html"),
    ),
    (
        "templates/web/confirm.html",
        include_str!("../../templates/web/confirm.html"),
    ),
    (
        "templates/web/confirm_email.html",
        include_str!("../../templates/web/confirm_email.html"),
    ),
    (
        "templates/web/confirm_email.txt",
        include_str!("../../templates/web/confirm_email.txt"),
    ),
    (
        "templates/web/follow.html",
        include_str!("../../templates/web/follow.html"),
    ),
    (
        "templates/web/layout.html",
        include_str!("../../templates/web/layout.html"),
    ),
    (
        "templates/web/notice.html",
        include_str!("../../templates/web/notice.html"),
    ),
    (
        "templates/web/preferences.html",
        include_str!("../../templates/web/preferences.html"),
    ),
    (
        "templates/web/subscribe.html",
        include_str!("../../templates/web/subscribe.html"),
    ),
    (
        "templates/web/unsubscribe.html",
        include_str!("../../templates/web/unsubscribe.html"),
    ),
    (
        "examples/site/essays/against-the-tidy-garden.md",
        include_str!("../../examples/site/essays/against-the-tidy-garden.md"),
    ),
    (
        "examples/site/essays/against-the-tidy-garden.replies.toml",
        include_str!("../../examples/site/essays/against-the-tidy-garden.replies.toml"),
    ),
    (
        "examples/site/essays/notes-on-slowness.md",
        include_str!("../../examples/site/essays/notes-on-slowness.md"),
    ),
    (
        "examples/site/essays/the-ferry-timetable.md",
        include_str!("../../examples/site/essays/the-ferry-timetable.md"),
    ),
    (
        "examples/site/essays/the-ferry-timetable.replies.toml",
        include_str!("../../examples/site/essays/the-ferry-timetable.replies.toml"),
    ),
    (
        "examples/site/essays/what-the-archive-forgets.md",
        include_str!("../../examples/site/essays/what-the-archive-forgets.md"),
    ),
    (
        "examples/site/essays/what-the-archive-forgets.replies.toml",
        include_str!("../../examples/site/essays/what-the-archive-forgets.replies.toml"),
    ),
];

/// Writes the starter files into `dir` (created if missing). Refuses, writing nothing,
/// when any of them already exists there.
pub(super) fn init(dir: &Path, say: impl Fn(String)) -> anyhow::Result<u8> {
    let existing: Vec<String> = STARTER
        .iter()
        .map(|(rel, _)| dir.join(rel))
        .filter(|p| p.exists())
        .map(|p| p.display().to_string())
        .collect();
    if !existing.is_empty() {
        eprintln!(
            "error: {} already holds {}; nothing was written. Choose a new or empty folder: `gazette init NEW-FOLDER`.",
            dir.display(),
            existing.join(", ")
        );
        return Ok(EXIT_ERROR);
    }
    for (rel, text) in STARTER {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", parent.display()))?;
        }
        std::fs::write(&path, text)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    }
    let cd = if dir == Path::new(".") {
        String::new()
    } else {
        format!("cd {} && ", dir.display())
    };
    say(format!(
        "Wrote a starter publication into {}: config.toml (commented), templates/ and a sample folder source in examples/site/essays.",
        dir.display()
    ));
    say(format!(
        "Try it: `{cd}gazette send` writes one .eml per subscriber into outbox/. Then edit config.toml: [site], your [[source]], [[subscriber]] (or `gazette subscribers import`) and [delivery] for SMTP; `gazette check` says what is missing."
    ));
    Ok(EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_starter_holds_every_shipped_template_and_sample_file() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut on_disk = Vec::new();
        for top in ["templates", "examples"] {
            let mut stack = vec![root.join(top)];
            while let Some(d) = stack.pop() {
                for e in std::fs::read_dir(&d).unwrap() {
                    let p = e.unwrap().path();
                    if p.is_dir() {
                        stack.push(p);
                    } else {
                        on_disk.push(p.strip_prefix(root).unwrap().display().to_string());
                    }
                }
            }
        }
        on_disk.push("config.toml".into());
        on_disk.sort();
        let mut listed: Vec<String> = STARTER.iter().map(|(p, _)| (*p).to_owned()).collect();
        listed.sort();
        assert_eq!(
            listed, on_disk,
            "a shipped file is missing from `gazette init`"
        );
    }
}
