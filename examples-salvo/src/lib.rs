#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

use salvo::prelude::*;
use session_tower::{Session, SessionManagerLayer};

/// The application: `/visit` counts visits, `/login` (form field `name`)
/// logs in with a new session id and ties the session to the user, `/me`
/// says who is logged in (401 for nobody), `/logout` ends the session.
pub fn router(sessions: SessionManagerLayer) -> Router {
    Router::new()
        .hoop(sessions.compat())
        .push(Router::with_path("visit").get(visit))
        .push(Router::with_path("login").post(login))
        .push(Router::with_path("me").get(me))
        .push(Router::with_path("logout").post(logout))
}

/// The session the layer put on the request.
fn session(req: &Request) -> Result<Session, StatusError> {
    req.extensions()
        .get::<Session>()
        .cloned()
        .ok_or_else(|| StatusError::internal_server_error().brief("no session layer"))
}

fn unavailable(error: session_tower::Error) -> StatusError {
    StatusError::service_unavailable()
        .brief("sessions are unavailable")
        .cause(error)
}

#[handler]
async fn visit(req: &mut Request) -> Result<String, StatusError> {
    let session = session(req)?;
    let visits: u64 = session
        .get("visits")
        .await
        .map_err(unavailable)?
        .unwrap_or(0)
        + 1;
    session
        .insert("visits", visits)
        .await
        .map_err(unavailable)?;
    Ok(format!("visit number {visits}"))
}

#[handler]
async fn login(req: &mut Request) -> Result<String, StatusError> {
    let name: String = req
        .form("name")
        .await
        .ok_or_else(StatusError::bad_request)?;
    let session = session(req)?;
    // A new id at login: an id planted before it is worth nothing after.
    session.cycle_id().await.map_err(unavailable)?;
    session
        .set_user_id(Some(name.clone()))
        .await
        .map_err(unavailable)?;
    session.insert("name", &name).await.map_err(unavailable)?;
    Ok(format!("welcome {name}"))
}

#[handler]
async fn me(req: &mut Request) -> Result<String, StatusError> {
    let name: Option<String> = session(req)?.get("name").await.map_err(unavailable)?;
    name.ok_or_else(StatusError::unauthorized)
}

#[handler]
async fn logout(req: &mut Request) -> Result<(), StatusError> {
    // Ends the session in the store: its cookie is worth nothing after.
    session(req)?.flush().await.map_err(unavailable)
}
