//! Tree names: a store's name must never make its trees another store's.

use session_core::{
    time::{Duration, OffsetDateTime},
    ExpiredDeletion, Record, SessionStore,
};
use session_sled::{sled, InvalidTreeName, SledStore};

fn temporary_db() -> sled::Db {
    sled::Config::new()
        .temporary(true)
        .open()
        .expect("open a temporary sled database")
}

fn tree_names(db: &sled::Db) -> Vec<Vec<u8>> {
    let mut names: Vec<Vec<u8>> = db.tree_names().into_iter().map(|n| n.to_vec()).collect();
    names.sort();
    names
}

fn refusal(db: &sled::Db, name: &str) -> InvalidTreeName {
    let error = SledStore::with_tree_name(db, name).expect_err(name);
    assert!(error.is_backend(), "{name}: {error:?}");
    InvalidTreeName::find(&error)
        .unwrap_or_else(|| panic!("{name}: {error:?}"))
        .clone()
}

#[test]
fn names_of_index_trees_are_refused_before_anything_is_opened() {
    let db = temporary_db();
    let before = tree_names(&db);
    for (name, suffix, store) in [
        ("x.expiry", ".expiry", "x"),
        ("x.users", ".users", "x"),
        ("sessions.expiry", ".expiry", "sessions"),
        ("sessions.users", ".users", "sessions"),
        (".expiry", ".expiry", ""),
        ("a.users.expiry", ".expiry", "a.users"),
        ("a.expiry.users", ".users", "a.expiry"),
    ] {
        assert_eq!(
            refusal(&db, name),
            InvalidTreeName::IndexSuffix {
                name: name.to_owned(),
                suffix,
                store: store.to_owned(),
            }
        );
    }
    assert_eq!(refusal(&db, ""), InvalidTreeName::Empty);
    for name in ["__sled__default", "__sled__mine"] {
        assert_eq!(
            refusal(&db, name),
            InvalidTreeName::Reserved {
                name: name.to_owned()
            }
        );
    }
    assert_eq!(tree_names(&db), before, "a refused name opened no tree");
    assert_eq!(
        refusal(&db, "x.expiry").to_string(),
        "the session tree name `x.expiry` ends with `.expiry`: that is an index tree of the store named `x`"
    );
}

#[tokio::test]
async fn a_store_beside_another_cannot_take_its_index_tree() {
    let db = temporary_db();
    let x = SledStore::with_tree_name(&db, "x").unwrap();
    let expired = Record::new(OffsetDateTime::now_utc() - Duration::hours(1));
    x.save(&expired).await.unwrap();
    let active = Record::new(OffsetDateTime::now_utc() + Duration::hours(1));
    x.save(&active).await.unwrap();

    // Whether the other store is opened after `x` or before it.
    for name in ["x.expiry", "x.users", "y.expiry"] {
        refusal(&db, name);
    }
    assert_eq!(x.delete_expired().await.unwrap(), 1);
    assert_eq!(x.load(&active.id).await.unwrap(), Some(active));
}

#[test]
fn names_that_only_look_alike_are_accepted() {
    let db = temporary_db();
    for name in [
        "x",
        "sessions",
        "expiry",
        "users",
        "x.expiryx",
        "x.expiry.old",
        "x.Expiry",
        "x_users",
        "a.b",
        "__sled",
        "ünïcode",
    ] {
        SledStore::with_tree_name(&db, name).unwrap_or_else(|error| panic!("{name}: {error}"));
    }
    // The default name works as before.
    SledStore::new(&db).unwrap();
}
