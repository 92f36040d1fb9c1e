//! The store's own tests, on a real SQLite file.
use super::*;
use crate::config::parse_address;
use chrono::TimeZone;

fn store_with_one_delivery() -> (tempfile::TempDir, Store, i64) {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("t.db")).unwrap();
    let now = Utc.with_ymd_and_hms(2026, 11, 26, 8, 0, 0).unwrap();
    store
        .sync_subscribers(
            &[config::Subscriber {
                email: parse_address("a@example.org").unwrap(),
                name: None,
                digests: vec!["d".into()],
                timezone: None,
            }],
            now,
        )
        .unwrap();
    let sub = store.active_subscribers("d").unwrap()[0].id;
    let ed = store
        .create_edition(
            &NewEdition {
                digest: "d".into(),
                audience: String::new(),
                number: 1,
                scheduled_for: now,
                window_from: now,
                window_to: now,
                essays: vec![],
                replies: vec![],
                subscribers: vec![sub],
                more_essays: 0,
                threads: Default::default(),
            },
            now,
        )
        .unwrap()
        .unwrap();
    (dir, store, ed.id)
}

fn claim(id: i64, stale: Option<&str>) -> Claim {
    Claim {
        id,
        message_id: "<m@x>".into(),
        stale_claim: stale.map(str::to_owned),
    }
}

#[test]
fn two_processes_opening_a_new_database_at_once_migrate_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("race.db");
    let opened: Vec<_> = (0..4)
        .map(|_| {
            let p = path.clone();
            std::thread::spawn(move || Store::open(&p).map(|_| ()))
        })
        .collect();
    for o in opened {
        o.join().unwrap().unwrap();
    }
    let store = Store::open(&path).unwrap();
    let v: i64 = store
        .conn
        .sqlite()
        .expect("a SQLite store")
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(v, MIGRATIONS.len() as i64);
}

#[test]
fn a_row_claimed_by_a_live_process_is_never_claimed_again() {
    let (_dir, mut store, ed) = store_with_one_delivery();
    let now = crate::time::now();
    let listed = store.pending_deliveries(ed, now, &|_| false).unwrap();
    assert_eq!(listed.len(), 1);
    // Another process claims it between our listing and our claim.
    assert_eq!(
        store
            .step(&[], &[claim(listed[0].id, None)], "1:other")
            .unwrap(),
        vec![true]
    );
    assert_eq!(
        store
            .step(
                &[],
                &[claim(listed[0].id, listed[0].stale_claim.as_deref())],
                "2:us"
            )
            .unwrap(),
        vec![false]
    );
    // While that process lives, the row is not even listed.
    assert!(store
        .pending_deliveries(ed, now, &|_| false)
        .unwrap()
        .is_empty());
}

#[test]
fn a_dead_processs_row_is_taken_over_once() {
    let (_dir, mut store, ed) = store_with_one_delivery();
    let now = crate::time::now();
    let id = store.pending_deliveries(ed, now, &|_| false).unwrap()[0].id;
    store.step(&[], &[claim(id, None)], "1:dead").unwrap();
    let listed = store
        .pending_deliveries(ed, now, &|c| c == "1:dead")
        .unwrap();
    assert_eq!(listed[0].stale_claim.as_deref(), Some("1:dead"));
    let stale = listed[0].stale_claim.clone();
    assert_eq!(
        store
            .step(&[], &[claim(id, stale.as_deref())], "2:a")
            .unwrap(),
        vec![true]
    );
    // A second taker with the same stale view loses.
    assert_eq!(
        store
            .step(&[], &[claim(id, stale.as_deref())], "3:b")
            .unwrap(),
        vec![false]
    );
}
