//! `gazette check` on one fixture per failure mode. Each fixture marks the lines that are
//! wrong with `# expect: <message>`; the test asserts that every marked problem is
//! reported with `config.toml:<line>:` and its message, and that nothing else is.

use std::fs;
use std::path::Path;

use crate::common::Site;

fn check_fixture(name: &str) {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/invalid")
        .join(name);
    let text = fs::read_to_string(&fixture).unwrap();
    let expected: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .filter_map(|(i, l)| l.split_once("# expect: ").map(|(_, m)| (i + 1, m.trim())))
        .collect();
    assert!(!expected.is_empty(), "{name} marks no expected problem");

    let site = Site::new();
    site.write("config.toml", &text);
    let run = site.gazette(&["check"]);
    assert_eq!(run.code, 1, "{name}: exit code; stderr:\n{}", run.stderr);
    assert!(
        run.stdout.is_empty(),
        "{name}: nothing on stdout, got {}",
        run.stdout
    );
    let problems: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.trim_start().contains("config.toml:"))
        .filter(|l| !l.starts_with("error:"))
        .collect();
    for (line, message) in &expected {
        let at = format!("config.toml:{line}:");
        assert!(
            problems
                .iter()
                .any(|p| p.contains(&at) && p.contains(message)),
            "{name}: expected {at} … {message}\ngot:\n{}",
            run.stderr
        );
    }
    assert_eq!(
        problems.len(),
        expected.len(),
        "{name}: reported problems\n{}",
        run.stderr
    );
}

#[test]
fn errors_when_a_wordpress_source_option_is_bad_or_misplaced() {
    check_fixture("bad_wordpress_source.toml");
}

#[test]
fn errors_when_a_key_is_misspelt() {
    check_fixture("unknown_key.toml");
}

#[test]
fn errors_when_an_address_is_invalid() {
    check_fixture("bad_address.toml");
}

#[test]
fn errors_when_a_cron_expression_is_invalid() {
    check_fixture("bad_cron.toml");
}

#[test]
fn errors_when_a_time_zone_is_unknown() {
    check_fixture("unknown_timezone.toml");
}

#[test]
fn errors_when_a_digest_names_an_unknown_source() {
    check_fixture("unknown_source.toml");
}

#[test]
fn errors_when_a_subscriber_names_an_unknown_digest() {
    check_fixture("unknown_digest.toml");
}

#[test]
fn errors_when_digest_names_repeat_ignoring_case() {
    check_fixture("duplicate_names.toml");
}

#[test]
fn errors_when_addresses_repeat_ignoring_case() {
    check_fixture("duplicate_addresses.toml");
}

#[test]
fn errors_when_a_template_set_is_missing() {
    check_fixture("missing_template.toml");
}

#[test]
fn errors_when_a_required_key_is_missing() {
    check_fixture("missing_required.toml");
}

#[test]
fn reports_three_different_mistakes_at_once() {
    check_fixture("three_mistakes.toml");
}

#[test]
fn errors_when_the_file_is_not_toml() {
    check_fixture("invalid_toml.toml");
}

#[test]
fn the_shipped_config_is_valid() {
    let site = Site::new();
    let run = site.gazette(&["check"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout
            .contains("config.toml is valid: 1 source, 2 digests, 3 subscribers"),
        "{}",
        run.stdout
    );
    assert!(
        !site.path("gazette.db").exists(),
        "check creates no database"
    );
}

#[test]
fn names_the_file_when_it_cannot_be_read() {
    let site = Site::new();
    let run = site.gazette(&["--config", "nope.toml", "check"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("cannot read config file nope.toml"),
        "{}",
        run.stderr
    );
}

#[test]
fn check_reports_a_template_error_with_its_cause() {
    let site = Site::new();
    site.edit(
        "templates/default/digest.html",
        "{% for essay in essays %}",
        "{% for essay in essays %}{{ essay.title | no_such_filter }}",
    );
    let run = site.gazette(&["check"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("default/digest.html"), "{}", run.stderr);
    assert!(run.stderr.contains("no_such_filter"), "{}", run.stderr);
}

#[test]
fn the_shipped_configs_commented_examples_are_valid_too() {
    let site = Site::new();
    let text = site.read("config.toml");
    let uncommented: Vec<String> = text
        .lines()
        .map(|l| {
            let example = l.starts_with("# [")
                || l.strip_prefix("# ").is_some_and(|rest| {
                    rest.split_once(" = ").is_some_and(|(k, _)| {
                        !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                    })
                });
            if example {
                l[2..].to_owned()
            } else {
                l.to_owned()
            }
        })
        .collect();
    assert!(
        uncommented.iter().any(|l| l == "type = \"wordpress\""),
        "the examples were found"
    );
    site.write("config.toml", &uncommented.join("\n"));
    // The examples name a DKIM key file and a password variable; supply both.
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dkim/rsa.pem"),
        site.path("dkim.pem"),
    )
    .unwrap();
    let run = site.gazette_env(&["check"], &[("GAZETTE_SMTP_PASSWORD", "example")]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("3 sources, 2 digests, 3 subscribers"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_mistyped_command_exits_with_the_usage_code_not_the_partial_one() {
    let site = Site::new();
    let run = site.gazette(&["sned"]);
    assert_eq!(run.code, 64, "{run:?}");
    assert!(
        run.stderr.contains("unrecognized subcommand 'sned'"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("'send'"),
        "clap suggests the command: {}",
        run.stderr
    );
    let run = site.gazette(&["send", "--digets", "essays"]);
    assert_eq!(run.code, 64, "{run:?}");
    // Nothing was done: no database, no outbox.
    assert!(!site.path("gazette.db").exists());
    assert!(site.outbox().is_empty());
    // Asking for help or the version is not an error.
    let help = site.gazette(&["--help"]);
    assert_eq!(help.code, 0, "{help:?}");
    assert!(
        help.stdout.contains("64 the command line was wrong"),
        "{}",
        help.stdout
    );
    assert_eq!(site.gazette(&["--version"]).code, 0);
}

#[test]
fn completions_and_the_man_page_come_from_the_command_definitions() {
    let site = Site::new();
    let bash = site.gazette(&["completions", "bash"]);
    assert_eq!(bash.code, 0, "{bash:?}");
    site.write("gazette.bash", &bash.stdout);
    // bash itself loads it and registers the completion.
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg("source ./gazette.bash && complete -p gazette")
        .current_dir(site.dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("_gazette"));
    for cmd in ["send", "init", "subscribers", "store"] {
        assert!(bash.stdout.contains(cmd), "bash completion lacks {cmd}");
    }
    let zsh = site.gazette(&["completions", "zsh"]);
    assert!(
        zsh.stdout.starts_with("#compdef gazette"),
        "{:.80}",
        zsh.stdout
    );
    let bad = site.gazette(&["completions", "tcsh"]);
    assert_eq!(bad.code, 64, "an unknown shell is a usage error");

    let man = site.gazette(&["man"]);
    assert_eq!(man.code, 0, "{man:?}");
    assert!(man.stdout.contains(".TH gazette 1"), "{:.300}", man.stdout);
    for cmd in ["send", "init", "check", "completions"] {
        assert!(man.stdout.contains(cmd), "the man page lacks {cmd}");
    }
    // Neither needs (or reads) a config.
    std::fs::remove_file(site.path("config.toml")).unwrap();
    assert_eq!(site.gazette(&["man"]).code, 0);
}

#[test]
fn check_json_reports_validity_errors_and_counts_for_scripts() {
    let site = Site::new();
    let ok = site.gazette(&["check", "--json"]);
    assert_eq!(ok.code, 0, "{ok:?}");
    let v: serde_json::Value = serde_json::from_str(&ok.stdout).unwrap();
    assert_eq!(v["valid"], true);
    assert_eq!(v["sources"], 1);
    assert_eq!(v["digests"], 2);
    assert_eq!(v["subscribers"], 3);
    assert_eq!(v["errors"].as_array().unwrap().len(), 0);
    assert!(ok.stderr.is_empty(), "{}", ok.stderr);

    // A broken config: the same errors as the text, with file and line, and exit 1.
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/invalid/bad_cron.toml");
    site.write("config.toml", &fs::read_to_string(fixture).unwrap());
    let text = site.gazette(&["check"]);
    let bad = site.gazette(&["check", "--json"]);
    assert_eq!(bad.code, 1);
    let v: serde_json::Value = serde_json::from_str(&bad.stdout).unwrap();
    assert_eq!(v["valid"], false);
    let errors: Vec<&str> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert!(!errors.is_empty());
    assert!(
        errors.iter().any(|e| e.contains("config.toml:")),
        "{errors:?}"
    );
    for e in &errors {
        assert!(
            text.stderr.contains(e),
            "{e} is not in the text report:\n{}",
            text.stderr
        );
    }
}
