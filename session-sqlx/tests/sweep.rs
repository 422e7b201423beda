//! Expiry: batched sweeps that count exactly, concurrent sweepers, and ids
//! of expired records being free for `create`.

#![cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]

mod common;

use common::checks;

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sweep_counts_across_batches() {
        let (store, _table) = common::postgres::store().await;
        let store = store.with_delete_batch_size(3);
        checks::sweep_counts_across_batches(&store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_sweeps_count_each_record_once() {
        let (store, _table) = common::postgres::store().await;
        let store = store.with_delete_batch_size(4);
        checks::concurrent_sweeps_count_each_record_once(&store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn create_takes_over_only_expired_ids() {
        let (store, _table) = common::postgres::store().await;
        checks::create_takes_over_only_expired_ids(&store).await;
    }
}

#[cfg(feature = "mysql")]
mod mysql {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sweep_counts_across_batches() {
        let (store, _table) = common::mysql::store().await;
        let store = store.with_delete_batch_size(3);
        checks::sweep_counts_across_batches(&store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_sweeps_count_each_record_once() {
        let (store, _table) = common::mysql::store().await;
        let store = store.with_delete_batch_size(4);
        checks::concurrent_sweeps_count_each_record_once(&store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn create_takes_over_only_expired_ids() {
        let (store, _table) = common::mysql::store().await;
        checks::create_takes_over_only_expired_ids(&store).await;
    }
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sweep_counts_across_batches() {
        let (store, _table) = common::sqlite::store().await;
        let store = store.with_delete_batch_size(3);
        checks::sweep_counts_across_batches(&store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_sweeps_count_each_record_once() {
        let (store, _table) = common::sqlite::store().await;
        let store = store.with_delete_batch_size(4);
        checks::concurrent_sweeps_count_each_record_once(&store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn create_takes_over_only_expired_ids() {
        let (store, _table) = common::sqlite::store().await;
        checks::create_takes_over_only_expired_ids(&store).await;
    }
}
