//! The trait implementations, once per tower-sessions-core release: the
//! releases differ in their crate, not in the trait, so one body serves all.

macro_rules! bridge {
    ($feature:literal, $module:ident, $core:ident) => {
        #[cfg(feature = $feature)]
        mod $module {
            use session_core::async_trait;
            use $core::{
                session::{Id, Record},
                session_store::{Error, Result},
                ExpiredDeletion, SessionStore,
            };

            use crate::{
                error::{describe, Kind},
                TowerSessionsStore,
            };

            fn theirs(error: session_core::Error) -> Error {
                match describe(&error) {
                    (Kind::Encode, message) => Error::Encode(message),
                    (Kind::Decode, message) => Error::Decode(message),
                    (Kind::Backend, message) => Error::Backend(message),
                }
            }

            #[cfg_attr(docsrs, doc(cfg(feature = $feature)))]
            #[async_trait]
            impl<S: session_core::SessionStore> SessionStore for TowerSessionsStore<S> {
                async fn create(&self, record: &mut Record) -> Result<()> {
                    let mut id = session_core::Id(record.id.0);
                    self.create_parts(&mut id, &record.data, record.expiry_date)
                        .await
                        .map_err(theirs)?;
                    record.id = Id(id.0);
                    Ok(())
                }

                async fn save(&self, record: &Record) -> Result<()> {
                    self.save_parts(
                        session_core::Id(record.id.0),
                        &record.data,
                        record.expiry_date,
                    )
                    .await
                    .map_err(theirs)
                }

                async fn load(&self, session_id: &Id) -> Result<Option<Record>> {
                    let record = self
                        .load_record(&session_core::Id(session_id.0))
                        .await
                        .map_err(theirs)?;
                    Ok(record.map(|record| Record {
                        id: Id(record.id.0),
                        data: record.data,
                        expiry_date: record.expiry_date,
                    }))
                }

                async fn delete(&self, session_id: &Id) -> Result<()> {
                    self.delete_record(&session_core::Id(session_id.0))
                        .await
                        .map_err(theirs)
                }
            }

            #[cfg_attr(docsrs, doc(cfg(feature = $feature)))]
            #[async_trait]
            impl<S: session_core::ExpiredDeletion> ExpiredDeletion for TowerSessionsStore<S> {
                /// The store's own sweep. How many it removed is logged at
                /// debug level: tower-sessions' trait has no room for it.
                async fn delete_expired(&self) -> Result<()> {
                    let removed = self.store().delete_expired().await.map_err(theirs)?;
                    tracing::debug!(removed, "deleted expired sessions");
                    Ok(())
                }
            }
        }
    };
}

bridge!("tower-sessions-0-15", v0_15, tower_sessions_core_0_15);
bridge!("tower-sessions-0-14", v0_14, tower_sessions_core_0_14);
