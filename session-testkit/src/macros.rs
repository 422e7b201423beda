/// Generates the whole conformance suite as `#[test]` functions in the
/// current module.
///
/// The first argument is a factory: something callable with no arguments that
/// returns a future of a fresh store, e.g. `|| async { MyStore::new() }`. It
/// is called once per check, so give each call its own table, key prefix or
/// file if the checks must not see each other (they run in parallel).
///
/// The second argument says how the store handles expired records:
///
/// - `sweep = exact` (the default): the store implements
///   [`ExpiredDeletion`](session_core::ExpiredDeletion) and `delete_expired`
///   returns exactly how many it removed.
/// - `sweep = native`: the backend expires records itself (a TTL);
///   `delete_expired` may return 0, but never more than there were.
/// - `sweep = none`: the store does not implement `ExpiredDeletion`.
///
/// Invoke it once per module; put each store in a module of its own.
///
/// ```
/// mod memory {
///     session_testkit::conformance_suite!(|| async { session_memory::MemoryStore::default() });
/// }
/// ```
#[macro_export]
macro_rules! conformance_suite {
    ($factory:expr $(,)?) => {
        $crate::conformance_suite!($factory, sweep = exact);
    };
    ($factory:expr, sweep = none $(,)?) => {
        $crate::__conformance_checks!($factory;
            create_stores_a_loadable_record,
            round_trip_keeps_nested_json,
            create_never_overwrites_an_existing_id,
            concurrent_creates_with_one_id_get_distinct_ids,
            save_inserts_without_create,
            save_upserts_data_and_expiry,
            load_of_missing_id_is_none,
            load_of_expired_record_is_none,
            expiry_boundary_is_respected,
            expiry_dates_with_non_utc_offsets,
            timestamps_keep_microseconds,
            delete_is_idempotent,
            delete_leaves_other_sessions,
            payloads_from_empty_to_one_mib,
            concurrent_saves_leave_one_whole_version,
            version_and_user_round_trip,
            update_writes_and_bumps_the_version,
            update_with_a_stale_version_conflicts,
            update_never_creates,
            concurrent_updates_of_one_version_write_once,
            concurrent_update_and_delete_never_resurrect,
            versions_stop_at_the_maximum,
            touch_moves_expiry_forward_only,
            touch_of_missing_or_expired_is_false,
            touch_many_answers_in_order,
            sessions_of_user_lists_exactly_theirs,
            user_index_follows_changes,
            delete_sessions_of_user_keeps_one,
            concurrent_user_changes_leave_the_index_exact,
            no_session_id_in_traces,
        );
    };
    ($factory:expr, sweep = exact $(,)?) => {
        $crate::conformance_suite!($factory, sweep = none);
        $crate::__conformance_checks!(@sweep $factory, $crate::Sweep::Exact);
    };
    ($factory:expr, sweep = native $(,)?) => {
        $crate::conformance_suite!($factory, sweep = none);
        $crate::__conformance_checks!(@sweep $factory, $crate::Sweep::Native);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_checks {
    (@sweep $factory:expr, $mode:expr) => {
        $crate::__conformance_checks!(@sweep $factory, $mode;
            delete_expired_removes_exactly_the_expired,
            delete_expired_of_nothing_is_zero,
            delete_expired_cleans_the_user_index,
        );
    };
    (@sweep $factory:expr, $mode:expr; $($check:ident),+ $(,)?) => {$(
        #[test]
        fn $check() {
            $crate::__private::run(async {
                let store = ::std::sync::Arc::new(($factory)().await);
                $crate::suite::$check(store, $mode).await;
            });
        }
    )+};
    ($factory:expr; $($check:ident),+ $(,)?) => {$(
        #[test]
        fn $check() {
            $crate::__private::run(async {
                let store = ::std::sync::Arc::new(($factory)().await);
                $crate::suite::$check(store).await;
            });
        }
    )+};
}
