//! Set-up shared by the integration tests: where the server is and a store
//! on a collection of its own.
#![allow(dead_code, unreachable_pub)]

use session_core::Id;
use session_mongodb::MongoDBStore;

/// The server the test command started, unless `MONGODB_URL` names another.
pub const DEFAULT_URL: &str = "mongodb://127.0.0.1:27117";

/// The database every test collection lives in.
pub const DATABASE: &str = "session_mongodb_tests";

pub fn url() -> String {
    std::env::var("MONGODB_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

/// A collection name no other test uses.
pub fn unique_collection(topic: &str) -> String {
    format!("{topic}_{}", Id::default())
}

/// A store on a fresh collection, connected with the crate's bounded
/// timeouts.
pub async fn fresh_store(topic: &str) -> MongoDBStore {
    MongoDBStore::connect(&url(), DATABASE)
        .await
        .unwrap_or_else(|error| panic!("connect to {}: {error}", url()))
        .with_collection_name(&unique_collection(topic))
}
