//! The import direction ARCHITECTURE.md promises, checked on the source
//! text: the lower rooms (`src/fleet/`, `src/store/`, `src/tenant.rs`) never
//! reach up into the rooms that serve requests, the fleet domain stays free
//! of I/O, and only `src/clock.rs` reads the wall clock. A new `use` or call
//! that breaks a rule fails here, naming the file and line.

use std::path::{Path, PathBuf};

/// The crate's top-level modules the lower rooms must not import.
const UPPER: &[&str] = &["auth", "mcp", "edge", "cli", "app", "console", "routing"];

/// Crates and std modules that mean I/O or a protocol, kept out of the
/// fleet domain (it is rules and types only).
const NOT_IN_FLEET: &[&str] = &[
    "sqlx", "rmcp", "tokio", "axum", "hyper", "reqwest", "std::fs", "std::net", "std::io",
];

/// What reads the wall clock. Only `src/clock.rs` may: everything else
/// takes the time from a `Clock`, or as an argument from a caller holding
/// one, so that a test's manual clock reaches every time the server stamps
/// or judges (issue 10).
const WALL_CLOCK_READS: &[&str] = &[
    "Utc::now",
    "Utc::today",
    "Local::now",
    "Local::today",
    "SystemTime::now",
];

#[test]
fn store_fleet_and_tenant_import_no_upper_room() {
    let mut broken = Vec::new();
    for file in sources("src/store")
        .into_iter()
        .chain(sources("src/fleet"))
        .chain([src().join("tenant.rs")])
    {
        for (line, module) in crate_modules_used(&file) {
            if UPPER.contains(&module.as_str()) {
                broken.push(format!("{}:{line}: crate::{module}", shown(&file)));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "imports from an upper room:\n{}",
        broken.join("\n")
    );
}

#[test]
fn fleet_imports_no_store_and_does_no_io() {
    let mut broken = Vec::new();
    for file in sources("src/fleet") {
        // The store wraps the fleet's error: the other way would be a cycle.
        for (line, module) in crate_modules_used(&file) {
            if module == "store" {
                broken.push(format!("{}:{line}: crate::store", shown(&file)));
            }
        }
        for (i, line) in code(&file).lines().enumerate() {
            for name in NOT_IN_FLEET {
                if names_path(line, name) {
                    broken.push(format!("{}:{}: {name}", shown(&file), i + 1));
                }
            }
        }
    }
    assert!(
        broken.is_empty(),
        "the fleet domain reaches out:\n{}",
        broken.join("\n")
    );
}

/// The command line is the top room: what a web page or a tool needs from
/// it (the Claude Desktop entry, say) lives in a module both import, such as
/// `desktop_config`, so serving a request never depends on the CLI's code.
#[test]
fn only_the_command_line_imports_cli() {
    let cli = src().join("cli");
    let mut broken = Vec::new();
    for file in sources("src").into_iter().filter(|f| !f.starts_with(&cli)) {
        for (line, module) in crate_modules_used(&file) {
            if module == "cli" {
                broken.push(format!("{}:{line}: crate::cli", shown(&file)));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "imports of the command line from another room:\n{}",
        broken.join("\n")
    );
}

/// A key's limits are columns of its row, so the store reads their values
/// (`limits/mod.rs`); that file must stay as low as the store, importing
/// nothing of this crate but `net`, while the enforcement beside it
/// (`limits::gate`, which needs `auth`) stays out of the store's reach.
#[test]
fn the_store_reaches_only_the_limit_values() {
    let mut broken = Vec::new();
    let values = src().join("limits").join("mod.rs");
    for (line, module) in crate_modules_used(&values) {
        if module != "net" {
            broken.push(format!("{}:{line}: crate::{module}", shown(&values)));
        }
    }
    for file in sources("src/store") {
        for (i, line) in code(&file).lines().enumerate() {
            // `crate::limits::X` and `crate::limits::{X, Y}` with X, Y
            // types of mod.rs; a path into a submodule starts lower-case.
            let Some((_, rest)) = line.split_once("limits::") else {
                continue;
            };
            let names = rest.trim_start_matches('{');
            if names.starts_with(|c: char| c.is_ascii_lowercase())
                || names.contains("::")
                || names
                    .split(',')
                    .any(|name| name.trim().starts_with(|c: char| c.is_ascii_lowercase()))
            {
                broken.push(format!("{}:{}: {}", shown(&file), i + 1, line.trim()));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "the store reaches past the limit values:\n{}",
        broken.join("\n")
    );
}

#[test]
fn only_the_clock_reads_the_wall_clock() {
    let clock = src().join("clock.rs");
    let mut broken = Vec::new();
    for file in sources("src").into_iter().filter(|f| *f != clock) {
        for (i, line) in code(&file).lines().enumerate() {
            for read in WALL_CLOCK_READS {
                if calls(line, read) {
                    broken.push(format!("{}:{}: {read}", shown(&file), i + 1));
                }
            }
        }
    }
    broken.sort();
    assert!(
        broken.is_empty(),
        "the wall clock read outside src/clock.rs (take the time from a Clock, \
         or as an argument):\n{}",
        broken.join("\n")
    );
}

/// The checker itself: each way of naming a top-level module is seen.
#[test]
fn the_checker_sees_every_form_of_import() {
    let dir = tempfile::tempdir().expect("temp dir");
    let deep = dir.path().join("store/fleet");
    std::fs::create_dir_all(&deep).expect("dirs");
    let file = deep.join("mod.rs");
    std::fs::write(
        &file,
        "use crate::auth::Caller;\n\
         use crate::{keys, mcp::policy};\n\
         // use crate::edge; (a comment is not an import)\n\
         fn f() { super::super::edge::serve(); crate::tenant::UserId::new(1); }\n\
         use super::keys;\n\
         use crate::{\n    plural,\n    console::Page,\n};\n",
    )
    .expect("write");
    let found = crate_modules_used_from(&file, dir.path());
    assert_eq!(
        found,
        [
            (1, "auth".to_owned()),
            (2, "keys".to_owned()),
            (2, "mcp".to_owned()),
            (4, "edge".to_owned()),
            (4, "tenant".to_owned()),
            (6, "console".to_owned()),
            (6, "plural".to_owned()),
        ]
    );
    assert!(names_path("let x = tokio::spawn(f);", "tokio"));
    assert!(names_path("use std::fs;", "std::fs"));
    assert!(!names_path("let my_tokio::x = 1;", "tokio"));
    assert!(!names_path("use std::fsx;", "std::fs"));
    assert!(calls("let t = chrono::Utc::now();", "Utc::now"));
    assert!(calls("at: Utc::now().trunc_subsecs(6),", "Utc::now"));
    assert!(calls(
        "let t = std::time::SystemTime::now();",
        "SystemTime::now"
    ));
    assert!(!calls("let t = MyUtc::now();", "Utc::now"));
    assert!(!calls("let t = Utc::now_local();", "Utc::now"));
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn shown(file: &Path) -> String {
    file.strip_prefix(env!("CARGO_MANIFEST_DIR"))
        .unwrap_or(file)
        .display()
        .to_string()
}

/// Every `.rs` file below `src/<room>`.
fn sources(room: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join(room)];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read a source dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                found.push(path);
            }
        }
    }
    assert!(!found.is_empty(), "no sources under {room}");
    found
}

/// The file's text with comments left out (`//` to the end of the line: doc
/// links may name any room), line breaks kept so offsets give line numbers.
fn code(file: &Path) -> String {
    let text = std::fs::read_to_string(file).expect("read source");
    text.lines()
        .map(|line| line.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Whether `code` names the path `name` (`tokio::…`, `use std::fs;`), not
/// as the tail of a longer name.
fn names_path(code: &str, name: &str) -> bool {
    code.match_indices(name).any(|(at, _)| {
        let before = code[..at].chars().next_back();
        let after = code[at + name.len()..].chars().next();
        !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
            && !after.is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

/// Whether `code` names the function `name` (`Utc::now`, also as
/// `chrono::Utc::now`), not a longer name ending or starting with it.
fn calls(code: &str, name: &str) -> bool {
    code.match_indices(name).any(|(at, _)| {
        let before = code[..at].chars().next_back();
        let after = code[at + name.len()..].chars().next();
        !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
            && !after.is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

fn crate_modules_used(file: &Path) -> Vec<(usize, String)> {
    crate_modules_used_from(file, &src())
}

/// The top-level modules of the crate that `file` (below `root`) names:
/// `crate::x`, `crate::{x, y::z}`, and `super::…` chains long enough to
/// climb to the crate root.
fn crate_modules_used_from(file: &Path, root: &Path) -> Vec<(usize, String)> {
    let relative = file.strip_prefix(root).expect("file below root");
    // The module depth: src/store/mod.rs is `store` (1), src/store/keys.rs
    // is `store::keys` (2), src/tenant.rs is `tenant` (1).
    let mut depth = relative.components().count();
    if relative.file_name().is_some_and(|n| n == "mod.rs") {
        depth -= 1;
    }
    let climb = "super::".repeat(depth);
    let code = code(file);
    let mut found = Vec::new();
    for prefix in ["crate::", climb.as_str()] {
        for (at, _) in code.match_indices(prefix) {
            if prefix != "crate::" && code[..at].ends_with("super::") {
                continue; // part of a longer chain, seen from its start
            }
            let line = code[..at].matches('\n').count() + 1;
            for module in top_names(&code[at + prefix.len()..]) {
                found.push((line, module));
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

/// The first path segment after `crate::`, or each first segment inside a
/// `{…}` group.
fn top_names(rest: &str) -> Vec<String> {
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    match rest.strip_prefix('{') {
        None => vec![ident(rest)],
        Some(group) => {
            let mut names = Vec::new();
            let mut level = 0;
            let mut start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => level += 1,
                    '}' if level == 0 => break,
                    '}' => level -= 1,
                    ',' if level == 0 => start = true,
                    _ if start && !c.is_whitespace() => {
                        names.push(ident(&group[i..]));
                        start = false;
                    }
                    _ => {}
                }
            }
            names
        }
    }
    .into_iter()
    .filter(|n| !n.is_empty())
    .collect()
}
