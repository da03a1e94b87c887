//! Checks of the suite itself: the macro lists every function of the
//! suite's files, and the suite runs on a shared store.

use super::*;

/// The suite's source files, as compiled: every function of the suite
/// is in one of them.
const SOURCES: [(&str, &str); 16] = [
    ("mod.rs", include_str!("mod.rs")),
    ("deaths.rs", include_str!("deaths.rs")),
    ("history.rs", include_str!("history.rs")),
    ("imports.rs", include_str!("imports.rs")),
    ("keys.rs", include_str!("keys.rs")),
    ("ledger.rs", include_str!("ledger.rs")),
    ("ledger_races.rs", include_str!("ledger_races.rs")),
    ("listing.rs", include_str!("listing.rs")),
    ("members.rs", include_str!("members.rs")),
    ("names.rs", include_str!("names.rs")),
    ("pages.rs", include_str!("pages.rs")),
    ("pid_input.rs", include_str!("pid_input.rs")),
    ("reopen.rs", include_str!("reopen.rs")),
    ("segments.rs", include_str!("segments.rs")),
    ("sets.rs", include_str!("sets.rs")),
    ("tests.rs", include_str!("tests.rs")),
];

/// The suite's functions that take something else than a store, and
/// that each backend calls itself.
const CALLED_BY_BACKENDS: [&str; 1] = ["reopened_store_keeps_everything"];

/// Every `pub fn` at the start of a line of `source`: its name, and
/// whether it takes a store and nothing else.
fn pub_fns(source: &str) -> Vec<(String, bool)> {
    let mut found = Vec::new();
    for (at, _) in source.match_indices("\npub fn ") {
        let rest = &source[at + "\npub fn ".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let params: String = rest[name.len()..]
            .split_inclusive(')')
            .next()
            .unwrap_or_default()
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        let takes_a_store = matches!(
            params.as_str(),
            "(store:&dynSegmentStore)" | "(store:&dynSegmentStore,)"
        );
        found.push((name, takes_a_store));
    }
    found
}

/// The names listed in `conformance_tests!`, in order.
fn listed_in_the_macro() -> Vec<String> {
    let source = SOURCES[0].1;
    let at = source
        .find("macro_rules! conformance_tests")
        .expect("mod.rs defines conformance_tests!");
    let body = &source[at..];
    let list_start = body
        .find("{ $args")
        .map(|i| i + "{ $args".len())
        .expect("the macro's list follows `{ $args`");
    let list = &body[list_start..];
    let list = &list[..list.find('}').expect("the list ends with a brace")];
    list.lines()
        .map(|line| line.split("//").next().unwrap_or_default())
        .flat_map(|line| line.split(','))
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
        .collect()
}

/// "A test fails when `conformance_tests!` misses one of the suite's
/// `pub fn`s" (SPEC §7.1): a function left out of the macro would pass
/// on every backend without ever running.
#[test]
fn the_macro_runs_every_function_of_the_suite() {
    let listed = listed_in_the_macro();
    assert!(
        listed.len() > 40,
        "the macro's list was read whole: {listed:?}"
    );
    for name in &listed {
        assert!(
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "the macro's list holds names only, got {name:?}"
        );
        assert_eq!(
            listed.iter().filter(|n| *n == name).count(),
            1,
            "conformance_tests! lists {name} once"
        );
    }
    let mut defined = Vec::new();
    for (file, source) in SOURCES {
        for (name, takes_a_store) in pub_fns(source) {
            if CALLED_BY_BACKENDS.contains(&name.as_str()) {
                assert!(
                    !listed.contains(&name),
                    "conformance_tests! must not list {name} ({file}): it takes an opener, \
                     not a store, and each durable backend calls it itself"
                );
            } else {
                assert!(
                    takes_a_store,
                    "{file}: pub fn {name} takes something else than \
                     `(store: &dyn SegmentStore)`, so conformance_tests! cannot run it"
                );
                assert!(
                    listed.contains(&name),
                    "conformance_tests! misses {name} ({file}): add it to the macro's list"
                );
            }
            defined.push(name);
        }
    }
    for name in &listed {
        assert!(
            defined.contains(name),
            "conformance_tests! lists {name}, which no file of the suite defines"
        );
    }
    for name in CALLED_BY_BACKENDS {
        assert!(
            defined.iter().any(|d| d == name),
            "{name} is still a function of the suite"
        );
    }
}

/// The check above reads the files named in [`SOURCES`]: a new area
/// file must be named there too, or its functions go unchecked.
#[test]
fn every_file_of_the_suite_is_read() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/conformance");
    let entries = std::fs::read_dir(dir).expect("the suite's directory can be read");
    for entry in entries {
        let name = entry
            .expect("the suite's directory can be listed")
            .file_name()
            .into_string()
            .expect("the suite's file names are UTF-8");
        if name.ends_with(".rs") {
            assert!(
                SOURCES.iter().any(|(file, _)| *file == name),
                "src/conformance/{name} is not in SOURCES: the macro check skips its functions"
            );
        }
    }
}

/// The checker itself: it finds a function whose signature rustfmt
/// broke over lines, tells a store's function from another, and sees a
/// name missing from the list.
#[test]
fn the_checker_reads_signatures_and_finds_what_is_missing() {
    let source = "//! `pub fn`s here\n\
                  pub fn one(store: &dyn SegmentStore) {}\n\
                  pub fn two(\n    store: &dyn SegmentStore,\n) {}\n\
                  pub fn three(open: &dyn Fn() -> Box<dyn SegmentStore>) {}\n\
                  fn private(store: &dyn SegmentStore) {}\n";
    assert_eq!(
        pub_fns(source),
        [
            ("one".to_owned(), true),
            ("two".to_owned(), true),
            ("three".to_owned(), false)
        ],
        "public functions at the start of a line, with whether they take a store"
    );
    let listed = listed_in_the_macro();
    assert!(
        listed
            .iter()
            .any(|n| n == "create_returns_an_empty_segment"),
        "the first name of the list is read"
    );
    assert!(
        listed
            .iter()
            .any(|n| n == "a_record_that_names_another_person_is_new_to_them"),
        "the last name of the list is read"
    );
}

/// Every function of the suite, as `conformance_tests!` lists them.
macro_rules! suite {
    (($unused:tt) $($case:ident),* $(,)?) => {
        [$((stringify!($case), super::$case as fn(&dyn SegmentStore))),*]
    };
}

/// The suite runs on a database shared by every test, in parallel and
/// again on what earlier runs left: here every function runs twice at
/// once on one store, then once more.
fn run_the_suite_on_one_store(store: &dyn SegmentStore) {
    let suite = crate::conformance_tests!(@cases [suite] (()));
    for copies in [2, 1] {
        std::thread::scope(|scope| {
            for _ in 0..copies {
                for (name, case) in suite {
                    std::thread::Builder::new()
                        .name(name.to_owned())
                        .spawn_scoped(scope, move || case(store))
                        .expect("a thread starts");
                }
            }
        });
    }
}

#[test]
fn the_suite_runs_twice_at_once_on_one_memory_store() {
    run_the_suite_on_one_store(&crate::MemoryStore::new());
}

#[cfg(feature = "sqlite")]
#[test]
fn the_suite_runs_twice_at_once_on_one_sqlite_file() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = crate::SqliteStore::open(dir.path().join("shared.db")).expect("the file opens");
    run_the_suite_on_one_store(&store);
}
