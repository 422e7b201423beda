//! `bridge_suite!(factory)`: every check of this crate against the store
//! `factory().await` makes, once per tower-sessions release and once for
//! axum-login. `factory` is an async function returning `Some((store,
//! guard))`, or `None` to skip (a backend the test command did not start).

macro_rules! bridge_suite {
    ($factory:path) => {
        /// tower-sessions 0.15 (tower-sessions-core 0.15).
        mod tower_sessions_0_15 {
            bridge_suite!(@release $factory, v0_15);
        }

        /// tower-sessions 0.14 (tower-sessions-core 0.14), axum-login's.
        mod tower_sessions_0_14 {
            bridge_suite!(@release $factory, v0_14);
        }

        /// axum-login 0.18 on tower-sessions 0.14, through HTTP.
        mod axum_login_0_18 {
            bridge_suite!(@tests $factory, login, axum_login_0_18, [
                login_protects_and_logout_ends,
                login_cycles_the_session_id,
                logout_everywhere_through_the_user_index,
                logout_stays_final_for_requests_in_flight,
                a_failed_write_is_a_500_and_loses_nothing,
            ]);
        }
    };

    (@release $factory:path, $release:ident) => {
        bridge_suite!(@tests $factory, checks, $release, [
            // The store through tower-sessions' trait.
            ids_and_records_map_faithfully,
            create_never_overwrites,
            save_writes_back_with_one_update,
            save_without_a_remembered_version_reads_it_first,
            save_over_a_concurrent_write_keeps_the_last,
            save_never_brings_back_an_ended_session,
            user_id_is_kept_as_stored,
            user_id_is_read_from_the_data,
            expired_deletion_is_the_stores_own,
            errors_keep_their_kind_and_message,
            // tower-sessions' own layer over the store, through HTTP: the
            // checks tower-sessions runs on its stores, and what the store
            // holds after each.
            no_session_no_cookie_no_store_call,
            unknown_session_cookie_gets_a_fresh_session,
            malformed_session_cookie_gets_a_fresh_session,
            insert_sets_the_cookie_and_stores_the_record,
            no_expiry_is_a_session_cookie,
            get_reads_the_stored_session,
            get_without_a_session,
            remove_last_value,
            cycle_id_moves_the_session,
            flush_ends_the_session,
            flush_with_domain,
            set_expiry_moves_the_stored_expiry,
            change_expiry_type,
            concurrent_writes_all_go_through,
        ]);
    };

    (@tests $factory:path, $group:ident, $release:ident, [$($check:ident),* $(,)?]) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $check() {
            let Some((store, _guard)) = $factory().await else {
                return;
            };
            crate::common::$group::$release::$check(crate::common::shared(store)).await;
        }
    )*};
}
