//! The bridge over `PostgresStore` (session-sqlx), on the PostgreSQL at
//! `POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`).

#[macro_use]
mod common;

bridge_suite!(crate::common::postgres);
