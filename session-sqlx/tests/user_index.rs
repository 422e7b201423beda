//! The user index as the database holds it, which the conformance suite
//! cannot see: rows leave with their sessions, user ids are stored whole or
//! refused, never cut, and a user's lookup is served by the index rather
//! than a scan of every session.

#![cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]

mod common;

use common::checks;
use session_core::{
    time::{Duration, OffsetDateTime},
    Record, SessionStore,
};

/// Sessions of many users, so that a scan would cost more than the index.
async fn populate_users<S: SessionStore>(store: &S) {
    for user in 0..200 {
        let mut record = Record::new(OffsetDateTime::now_utc() + Duration::hours(1));
        record.user_id = Some(format!("user-{user}"));
        store.create(&mut record).await.expect("create");
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn user_rows_leave_with_their_sessions() {
        let (store, _table) = common::postgres::store().await;
        checks::user_rows_leave_with_their_sessions(&store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn user_ids_are_bounded_never_cut() {
        let (store, _table) = common::postgres::store().await;
        checks::user_ids_are_bounded_never_cut(&store).await;
    }

    /// The store's lookup, planned with scans made as costly as possible:
    /// the partial index on `user_id` serves `user_id = $1`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lookup_uses_the_user_index() {
        let (store, _table) = common::postgres::store().await;
        populate_users(&store).await;
        let table = common::postgres::qualified(&store);
        sqlx::raw_sql(&format!("ANALYZE {table}"))
            .execute(store.pool())
            .await
            .expect("analyze");
        let mut transaction = store.pool().begin().await.expect("begin");
        sqlx::raw_sql("SET LOCAL enable_seqscan = off")
            .execute(&mut *transaction)
            .await
            .expect("set");
        let plan: Vec<String> = sqlx::query_scalar(&format!(
            "EXPLAIN SELECT id, data, expiry_date, version, user_id FROM {table} \
             WHERE user_id = 'user-7' AND expiry_date > now()"
        ))
        .fetch_all(&mut *transaction)
        .await
        .expect("explain");
        let index = format!("{}_user_id_idx", store.table_name());
        assert!(
            plan.iter().any(|line| line.contains(&index)),
            "the lookup does not use {index}: {plan:#?}"
        );
    }
}

#[cfg(feature = "mysql")]
mod mysql {
    use sqlx::Row as _;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn user_rows_leave_with_their_sessions() {
        let (store, _table) = common::mysql::store().await;
        checks::user_rows_leave_with_their_sessions(&store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn user_ids_are_bounded_never_cut() {
        let (store, _table) = common::mysql::store().await;
        checks::user_ids_are_bounded_never_cut(&store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lookup_uses_the_user_index() {
        let (store, _table) = common::mysql::store().await;
        populate_users(&store).await;
        let table = common::mysql::qualified(&store);
        sqlx::raw_sql(&format!("ANALYZE TABLE {table}"))
            .execute(store.pool())
            .await
            .expect("analyze");
        let plan = sqlx::query(&format!(
            "EXPLAIN SELECT id, data, expiry_date, version, user_id FROM {table} \
             WHERE user_id = ? AND expiry_date > ?"
        ))
        .bind(b"user-7".as_slice())
        .bind(OffsetDateTime::now_utc())
        .fetch_one(store.pool())
        .await
        .expect("explain");
        let key: Option<String> = plan.try_get("key").expect("the plan's key");
        assert_eq!(key.as_deref(), Some("user_id_idx"), "the lookup's plan");
    }
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn user_rows_leave_with_their_sessions() {
        let (store, _table) = common::sqlite::store().await;
        checks::user_rows_leave_with_their_sessions(&store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn user_ids_are_bounded_never_cut() {
        let (store, _table) = common::sqlite::store().await;
        checks::user_ids_are_bounded_never_cut(&store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lookup_uses_the_user_index() {
        let (store, _table) = common::sqlite::store().await;
        populate_users(&store).await;
        let plan: Vec<(i64, i64, i64, String)> = sqlx::query_as(&format!(
            "EXPLAIN QUERY PLAN SELECT id, data, expiry_date, version, user_id FROM \"{}\" \
             WHERE user_id = ?1 AND expiry_date > ?2",
            store.table_name()
        ))
        .bind("user-7")
        .bind(0_i64)
        .fetch_all(store.pool())
        .await
        .expect("explain");
        let index = format!("{}_user_id_idx", store.table_name());
        assert!(
            plan.iter().any(|(_, _, _, detail)| detail.contains(&index)),
            "the lookup does not use {index}: {plan:#?}"
        );
    }
}
