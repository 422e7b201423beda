//! [`RedisStore`]: one Redis string per session, expired by Redis's TTL, and
//! one sorted set per user indexing that user's sessions.

use std::{
    fmt,
    fmt::Write as _,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
};

use fred::{
    bytes::Bytes,
    prelude::{ClientLike, Expiration, KeysInterface, LuaInterface, SortedSetsInterface, Value},
    types::SetOptions,
};
use futures_util::future::join_all;
use session_core::{
    async_trait,
    support::{next_version, store_span, FreshIds},
    time::OffsetDateTime,
    Error, ExpiredDeletion, Id, Record, Result, SessionStore, Update,
};
use tracing::Instrument as _;

use crate::{
    error::backend,
    scripts::{
        code, integer, unexpected, Reply, DELETE_OF_USER_SCRIPT, INDEX_ADD_SCRIPT,
        INDEX_PRUNE_SCRIPT, SCORE_MEMBER, TOUCH_SCRIPT, UPGRADE_SCRIPT, WRITE_SCRIPT,
    },
    value::{self, CorruptValue, Stored},
    RedisStoreError,
};

/// The key prefix a new store uses: keys look like `session:<id>`.
pub const DEFAULT_KEY_PREFIX: &str = "session";

/// What goes between the key prefix and the session id.
pub const KEY_SEPARATOR: char = ':';

/// The oldest Redis (major, minor) the store works with: `SET .. PXAT`
/// arrived in Redis 6.2.
pub const MIN_REDIS_VERSION: (u64, u64) = (6, 2);

/// How much longer than the index horizon written in a session's header its
/// user's index key is asked to live: covers the millisecond the scripts may
/// be off when they compare `PTTL` with `TIME`.
const INDEX_SLACK_MS: i64 = 1_000;

/// How many times a write goes round when it has to extend a user's index
/// or rewrite a value of the previous release first. Two suffice unless
/// other writers keep changing the session meanwhile.
const MAX_ROUNDS: u32 = 8;

/// From this many members on, an index that doubled in size since it was
/// last this large is pruned by the write that grew it: a user whose
/// sessions are never listed still keeps an index of bounded size.
const PRUNE_FROM_MEMBERS: i64 = 32;

/// A session store on Redis, through a fred [`Client`](fred::prelude::Client)
/// or [`Pool`](fred::prelude::Pool), standalone, sentinel or cluster.
///
/// Each session is one Redis string under `<prefix>:<id>` holding a small
/// fixed header (version, expiry date, index horizon, user id) and the data
/// encoded by [`session_core::codec`], with an absolute expiry (`PXAT`) at
/// the record's expiry date. Each user with sessions has a sorted set
/// `<prefix>:user:<hex of the user id>:sessions` listing their session ids.
/// Redis removes expired sessions itself, so
/// [`delete_expired`](ExpiredDeletion::delete_expired) has nothing to do and
/// returns 0.
///
/// | operation | Redis |
/// |---|---|
/// | `create` | `SET .. PXAT NX` for a session without a user; with a user, one script doing the same after checking the user's index; retried with a fresh id when the key exists |
/// | `save` | `SET .. PXAT` for a session without a user; with a user, one script (it keeps the index horizon the stored value holds) |
/// | `update` | one script: compares the stored version, writes only over an active record with that version |
/// | `touch` | one script: `SETRANGE` of the header's expiry date and `PEXPIREAT`, only forward |
/// | `load` | `GET`, then decode |
/// | `delete` | `DEL` |
/// | `sessions_of_user` | `ZRANGE` of the user's index, a `GET` per member (concurrently), a script pruning stale members |
/// | `delete_sessions_of_user` | `ZRANGE`, a script per member deleting it only if its stored user is that user, the pruning script |
///
/// A write that gives a session to a user also runs a script on the user's
/// index, before the session script and, when the user changed, again after
/// it: see the crate documentation (*What is atomic*) for why the index
/// never misses a session nor lists another user's, and what a lookup
/// repairs.
///
/// Needs Redis >= 6.2 ([`MIN_REDIS_VERSION`]); against an older server
/// writes fail with [`RedisStoreError::UnsupportedServer`] as the source of an
/// [`Error::Backend`].
pub struct RedisStore<C> {
    client: C,
    key_prefix: Arc<str>,
    // Set once the server reported a version that knows `PXAT`.
    version_checked: Arc<AtomicBool>,
}

impl<C: Clone> Clone for RedisStore<C> {
    fn clone(&self) -> Self {
        Self {
            client: self.client.clone(),
            key_prefix: Arc::clone(&self.key_prefix),
            version_checked: Arc::clone(&self.version_checked),
        }
    }
}

impl<C> fmt::Debug for RedisStore<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("key_prefix", &self.key_prefix)
            .finish_non_exhaustive()
    }
}

/// The fred client traits the store uses: key commands, sorted sets for the
/// user index, Lua scripts. fred's `Client` and `Pool` have them all.
pub trait RedisClient:
    KeysInterface + SortedSetsInterface + LuaInterface + ClientLike + Send + Sync + 'static
{
}

impl<C> RedisClient for C where
    C: KeysInterface + SortedSetsInterface + LuaInterface + ClientLike + Send + Sync + 'static
{
}

/// How a write treats what is stored.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Create,
    Save,
    Update,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Save => "save",
            Self::Update => "update",
        }
    }
}

/// What the write script did.
enum Written {
    /// Stored; `joined` when the session came to its user with this write.
    Stored {
        joined: bool,
    },
    Taken,
    Gone,
    Conflict(Bytes),
    Legacy,
    Corrupt,
    NeedIndex,
}

/// How long a user's index must live for a session expiring at `pxat`.
#[derive(Clone, Copy)]
struct Horizon {
    /// Written in the session's header: the index is known to live this long.
    header_ms: u64,
    /// Asked of the index key, a little longer.
    index_until_ms: i64,
}

impl Horizon {
    /// Twice the session's remaining lifetime, so a session whose expiry
    /// slides forward with `touch` extends its index once per half lifetime,
    /// not on every touch.
    fn for_expiry(pxat: i64) -> Self {
        let now_ms = now_millis();
        let horizon = pxat.saturating_add(pxat.saturating_sub(now_ms).max(0));
        Self {
            header_ms: u64::try_from(horizon).unwrap_or_default(),
            index_until_ms: horizon.saturating_add(INDEX_SLACK_MS),
        }
    }
}

impl<C: RedisClient> RedisStore<C> {
    /// A store on `client`, a fred `Client` or `Pool` (connected or not: fred
    /// queues commands until it connects), with keys `session:<id>`.
    ///
    /// Build the client with [`recommended_builder`](crate::recommended_builder)
    /// so calls fail within a bounded time when Redis is down.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use session_redis::{fred::prelude::*, RedisStore};
    ///
    /// let config = Config::from_url("redis://127.0.0.1:6379")?;
    /// let pool = session_redis::recommended_builder(config).build_pool(4)?;
    /// pool.init().await?;
    /// let store = RedisStore::new(pool);
    /// # let _ = store;
    /// # Ok(())
    /// # }
    /// ```
    pub fn new(client: C) -> Self {
        Self {
            client,
            key_prefix: Arc::from(DEFAULT_KEY_PREFIX),
            version_checked: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Puts the sessions under `prefix`: the key of a session is `prefix`,
    /// [`KEY_SEPARATOR`] (`:`) and the session id (22 URL-safe base64
    /// characters), e.g. `myapp:session:AAECAwQFBgcICQoLDA0ODw`. An empty
    /// prefix means keys are the bare id, with no separator. User indexes
    /// live under the same prefix (see [`user_index_key`](Self::user_index_key)).
    ///
    /// On Redis Cluster, a prefix holding a hash tag (`{...}`) sends every
    /// session to the same slot, hence the same node: leave braces out so
    /// sessions spread over the cluster.
    pub fn with_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = Arc::from(prefix.into());
        self
    }

    /// The key prefix (without the separator).
    pub fn key_prefix(&self) -> &str {
        &self.key_prefix
    }

    /// The fred client or pool the store uses.
    pub fn client(&self) -> &C {
        &self.client
    }

    /// The Redis key of the session `id`.
    pub fn key(&self, id: &Id) -> String {
        let mut key = String::with_capacity(self.key_prefix.len() + 1 + session_core::ID_TEXT_LEN);
        self.push_prefix(&mut key);
        // Writing to a String cannot fail.
        let _ = write!(key, "{id}");
        key
    }

    /// The Redis key of the sorted set indexing `user_id`'s sessions:
    /// `<prefix>:user:<user id as lowercase hex of its UTF-8>:sessions`.
    ///
    /// The hex spelling makes the key a function of the exact bytes of the
    /// user id, so ids that are prefixes or patterns of one another
    /// (`alice`, `alice*`, `alice:1`, the empty id) get keys of their own,
    /// and no user's key holds a brace that would make it a hash tag. The
    /// `:sessions` suffix holds a `:`, which no session id has, so an index
    /// key is never a session key, whatever the prefix.
    pub fn user_index_key(&self, user_id: &str) -> String {
        self.index_key(user_id.as_bytes())
    }

    fn index_key(&self, user: &[u8]) -> String {
        let mut key = String::with_capacity(self.key_prefix.len() + 15 + 2 * user.len());
        self.push_prefix(&mut key);
        key.push_str("user");
        key.push(KEY_SEPARATOR);
        for byte in user {
            // Writing to a String cannot fail.
            let _ = write!(key, "{byte:02x}");
        }
        key.push(KEY_SEPARATOR);
        key.push_str("sessions");
        key
    }

    fn push_prefix(&self, key: &mut String) {
        if !self.key_prefix.is_empty() {
            key.push_str(&self.key_prefix);
            key.push(KEY_SEPARATOR);
        }
    }

    /// An error if the server is known to be too old for `SET .. PXAT`.
    ///
    /// fred reads the server version when it connects; until then it is
    /// unknown and the command is sent anyway (an old server then rejects it
    /// and the next call reports the version).
    fn check_server_version(&self) -> Result<()> {
        if self.version_checked.load(Ordering::Relaxed) {
            return Ok(());
        }
        match self.client.server_version() {
            Some(version) if !supports_pxat(version.major, version.minor) => {
                Err(RedisStoreError::UnsupportedServer {
                    found: version.to_string(),
                }
                .into())
            }
            Some(_) => {
                self.version_checked.store(true, Ordering::Relaxed);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// `GET` of a session's value.
    ///
    /// Every fred command future here is boxed on its own: it is about 5 KB,
    /// and held inline it would make the future `#[async_trait]` boxes for
    /// each store call 5 KB too, copied whole as it moves into its box. A box
    /// of its own is one allocation of a future built once; measured at 64
    /// concurrent loads it saves about 1 µs of CPU per call (see the README's
    /// Redis figures).
    async fn get(&self, id: &Id) -> Result<Option<Bytes>> {
        Box::pin(self.client.get::<Option<Bytes>, _>(self.key(id)))
            .await
            .map_err(backend)
    }

    /// Runs the write script over the session `id`.
    async fn write(
        &self,
        mode: Mode,
        id: &Id,
        value: Vec<u8>,
        pxat: i64,
        expected_version: u64,
        indexed: bool,
    ) -> Result<Written> {
        let args = vec![
            Value::from(mode.as_str()),
            Value::Bytes(Bytes::from(value)),
            Value::Integer(pxat),
            big_endian(pxat_bytes(pxat)),
            big_endian(expected_version.to_be_bytes()),
            Value::from(if indexed { "1" } else { "0" }),
        ];
        let reply = WRITE_SCRIPT
            .run(&self.client, vec![self.key(id)], args)
            .await
            .map_err(|error| self.explain_write_error(error))?;
        let mut reply = Reply::parse(reply)?;
        Ok(match reply.code {
            code::WRITTEN => Written::Stored {
                joined: reply.integer()? == 1,
            },
            code::TAKEN => Written::Taken,
            code::GONE => Written::Gone,
            code::CONFLICT => Written::Conflict(reply.bytes()?),
            code::LEGACY => Written::Legacy,
            code::CORRUPT => Written::Corrupt,
            code::NEED_INDEX => Written::NeedIndex,
            _ => return Err(unexpected("a write reply code")),
        })
    }

    /// `create` or `save` of a session without a user: there is no index to
    /// keep and nothing stored to read first, so one `SET .. PXAT` (`NX` for
    /// `create`) does all the write script would, without running a script:
    /// the same atomic step at a fraction of the server's time.
    async fn set_plain(&self, mode: Mode, id: &Id, value: Vec<u8>, pxat: i64) -> Result<Written> {
        let only_if_absent = (mode == Mode::Create).then_some(SetOptions::NX);
        let reply: Value = Box::pin(self.client.set(
            self.key(id),
            Value::Bytes(Bytes::from(value)),
            Some(Expiration::PXAT(pxat)),
            only_if_absent,
            false,
        ))
        .await
        .map_err(|error| self.explain_write_error(backend(error)))?;
        // `NX` over an existing key replies nil; any other `SET` replies OK.
        Ok(if reply.is_null() {
            Written::Taken
        } else {
            Written::Stored { joined: false }
        })
    }

    /// A server too old for `PXAT` rejects the script's `SET`: say why.
    fn explain_write_error(&self, error: Error) -> Error {
        match self.check_server_version() {
            Err(too_old) => too_old,
            Ok(()) => error,
        }
    }

    /// Adds `id` to `user`'s index, which then lives at least until
    /// `until_ms`; returns the index's size.
    async fn index_add(&self, user: &[u8], id: &Id, until_ms: i64) -> Result<i64> {
        let args = vec![Value::from(id.to_string()), Value::Integer(until_ms)];
        let reply = INDEX_ADD_SCRIPT
            .run(&self.client, vec![self.index_key(user)], args)
            .await?;
        integer(&reply).ok_or_else(|| unexpected("the index size"))
    }

    /// Writes `record` in `mode`, extending its user's index first when the
    /// script asks for it, and adding the session to the index again after
    /// a write that gave it to its user (see the crate docs for why both).
    async fn write_record(&self, mode: Mode, record: &mut Record) -> Result<Update> {
        self.check_server_version()?;
        let pxat = expiry_millis(record.expiry_date);
        let (version, expected) = match mode {
            Mode::Update => (next_version(record.version)?, record.version),
            Mode::Create | Mode::Save => (record.version, 0),
        };
        let user = record.user_id.clone();
        // A new session with a user always needs its index: skip the round
        // trip that would only say so.
        let mut horizon = match (&user, mode) {
            (Some(_), Mode::Create) if pxat > now_millis() => Some(Horizon::for_expiry(pxat)),
            _ => None,
        };
        let mut ids = FreshIds::default();
        let mut rounds = 0;
        let mut index_size = 0;
        loop {
            if let (Some(user), Some(horizon)) = (&user, horizon) {
                index_size = self
                    .index_add(user.as_bytes(), &record.id, horizon.index_until_ms)
                    .await?;
            }
            let header_horizon = horizon.map_or(0, |horizon| horizon.header_ms);
            let bytes = value::encode(record, version, header_horizon)?;
            let written = if user.is_none() && mode != Mode::Update {
                self.set_plain(mode, &record.id, bytes, pxat).await?
            } else {
                self.write(mode, &record.id, bytes, pxat, expected, horizon.is_some())
                    .await?
            };
            match written {
                Written::Stored { joined } => {
                    record.version = version;
                    if let (Some(user), true) = (&user, joined) {
                        // Undoes a lookup that pruned the first add between
                        // it and the write (it saw the session not yet this
                        // user's): the new score outranks what it read.
                        let until = horizon.map_or(pxat, |horizon| horizon.index_until_ms);
                        index_size = self.index_add(user.as_bytes(), &record.id, until).await?;
                    }
                    if let Some(user) = &user {
                        self.prune_if_grown(user.as_bytes(), index_size).await;
                    }
                    return Ok(Update::Written);
                }
                Written::Taken if mode == Mode::Create => {
                    ids.next(record)?;
                    continue;
                }
                Written::Gone if mode == Mode::Update => return Ok(Update::Gone),
                Written::Conflict(bytes) if mode == Mode::Update => {
                    return value::decode(record.id, &bytes).map(Update::Conflict);
                }
                Written::Legacy if mode == Mode::Update => self.upgrade(&record.id).await?,
                Written::Corrupt if mode == Mode::Update => {
                    return Err(Error::decode(CorruptValue::Header));
                }
                Written::NeedIndex if horizon.is_none() && user.is_some() => {
                    horizon = Some(Horizon::for_expiry(pxat));
                }
                _ => return Err(unexpected("a write reply that fits the request")),
            }
            rounds += 1;
            if rounds >= MAX_ROUNDS {
                return Err(RedisStoreError::Contended { rounds }.into());
            }
        }
    }

    /// Rewrites the session `id`, if it still holds a value of the previous
    /// release, in this release's format: same record, same expiry, with a
    /// compare-and-set on the whole old value so a concurrent writer wins.
    async fn upgrade(&self, id: &Id) -> Result<()> {
        let Some(old) = self.get(id).await? else {
            return Ok(());
        };
        if !matches!(value::parse(&old)?, Stored::Legacy) {
            return Ok(());
        }
        let record = value::decode_legacy(*id, &old)?;
        let pxat = expiry_millis(record.expiry_date);
        // Only records of unreleased builds between the previous release and
        // this one can have a user; index it like any write giving a user.
        let horizon = match &record.user_id {
            Some(user) if pxat > now_millis() => {
                let horizon = Horizon::for_expiry(pxat);
                self.index_add(user.as_bytes(), id, horizon.index_until_ms)
                    .await?;
                Some(horizon)
            }
            _ => None,
        };
        let new = value::encode(
            &record,
            record.version,
            horizon.map_or(0, |horizon| horizon.header_ms),
        )?;
        let reply = UPGRADE_SCRIPT
            .run(
                &self.client,
                vec![self.key(id)],
                vec![Value::Bytes(old), Value::Bytes(Bytes::from(new))],
            )
            .await?;
        if let (Some(user), Some(horizon), Some(1)) = (&record.user_id, horizon, integer(&reply)) {
            self.index_add(user.as_bytes(), id, horizon.index_until_ms)
                .await?;
        }
        Ok(())
    }

    async fn touch_record(&self, id: &Id, expiry_date: OffsetDateTime) -> Result<bool> {
        let pxat = expiry_millis(expiry_date);
        let expiry = Bytes::copy_from_slice(&value::ordered_micros(expiry_date));
        let mut extended: Option<(Bytes, Horizon)> = None;
        let mut index_size = 0;
        for _ in 0..MAX_ROUNDS {
            let (flag, user, horizon) = match &extended {
                Some((user, horizon)) => (
                    "1",
                    Value::Bytes(user.clone()),
                    big_endian(horizon.header_ms.to_be_bytes()),
                ),
                None => ("0", Value::from(""), big_endian([0; 8])),
            };
            let args = vec![
                Value::Bytes(expiry.clone()),
                Value::Integer(pxat),
                big_endian(pxat_bytes(pxat)),
                Value::from(flag),
                user,
                horizon,
            ];
            let reply = TOUCH_SCRIPT
                .run(&self.client, vec![self.key(id)], args)
                .await?;
            let mut reply = Reply::parse(reply)?;
            match reply.code {
                code::FALSE => return Ok(false),
                code::TRUE => {
                    if let Some((user, _)) = &extended {
                        self.prune_if_grown(user, index_size).await;
                    }
                    return Ok(true);
                }
                code::LEGACY => self.upgrade(id).await?,
                code::CORRUPT => return Err(Error::decode(CorruptValue::Header)),
                code::NEED_INDEX => {
                    let user = reply.bytes()?;
                    let horizon = Horizon::for_expiry(pxat);
                    index_size = self.index_add(&user, id, horizon.index_until_ms).await?;
                    extended = Some((user, horizon));
                }
                _ => return Err(unexpected("a touch reply code")),
            }
        }
        Err(RedisStoreError::Contended { rounds: MAX_ROUNDS }.into())
    }

    /// The members of an index with the scores read, the score member left
    /// out.
    async fn index_members(&self, key: &str) -> Result<Vec<(Bytes, f64)>> {
        let reply = Box::pin(
            self.client
                .zrange::<Value, _, _, _>(key, 0, -1, None, false, None, true),
        )
        .await
        .map_err(backend)?;
        let items = match reply {
            Value::Array(items) => items,
            Value::Null => Vec::new(),
            _ => return Err(unexpected("an array of members and scores")),
        };
        // RESP2 answers a flat array, RESP3 pairs.
        let flat: Vec<Value> = if items.iter().all(|item| matches!(item, Value::Array(_))) {
            items.into_iter().flat_map(Value::into_array).collect()
        } else {
            items
        };
        if !flat.len().is_multiple_of(2) {
            return Err(unexpected("members paired with scores"));
        }
        let mut members = Vec::with_capacity(flat.len() / 2);
        let mut flat = flat.into_iter();
        while let (Some(member), Some(score)) = (flat.next(), flat.next()) {
            let member = match member {
                Value::Bytes(bytes) => bytes,
                Value::String(text) => text.into_inner(),
                _ => return Err(unexpected("a member")),
            };
            let score = score.as_f64().ok_or_else(|| unexpected("a score"))?;
            if member != SCORE_MEMBER.as_bytes() {
                members.push((member, score));
            }
        }
        Ok(members)
    }

    /// Removes `stale` members from the index at `key`, each only if its
    /// score is still the one read.
    async fn index_prune(&self, key: String, stale: &[(Bytes, f64)]) -> Result<()> {
        if stale.is_empty() {
            return Ok(());
        }
        let mut args = Vec::with_capacity(stale.len() * 2);
        for (member, score) in stale {
            args.push(Value::Bytes(member.clone()));
            // Integral scores below 2^53 print as their exact digits.
            args.push(Value::from(score.to_string()));
        }
        INDEX_PRUNE_SCRIPT
            .run(&self.client, vec![key], args)
            .await
            .map(drop)
    }

    /// The active records the index lists that are `user`'s; prunes the
    /// members that are not (gone, another user's, without user, or of the
    /// previous release, which had no users).
    ///
    /// A record whose expiry date has passed while Redis still holds its key
    /// (for at most the millisecond `PXAT` was rounded up) is left out but
    /// not pruned: its expiry is judged by this process's clock, and a
    /// server whose clock is behind may still let a write keep it, with its
    /// user, without adding it again. Redis drops the key right after, and
    /// the next lookup prunes it.
    async fn scan_user(&self, user: &str) -> Result<Vec<Record>> {
        let key = self.user_index_key(user);
        let members = self.index_members(&key).await?;
        let fetched = join_all(members.iter().map(|(member, _)| async move {
            match parse_member(member) {
                Some(id) => self.get(&id).await.map(|value| Some((id, value))),
                None => Ok(None),
            }
        }))
        .await;
        let now = OffsetDateTime::now_utc();
        let mut records = Vec::new();
        let mut stale = Vec::new();
        let mut unreadable = None;
        for (member, fetched) in members.into_iter().zip(fetched) {
            match fetched? {
                Some((id, Some(bytes))) => match of_user(id, &bytes, user, now) {
                    Ok(Listed::Active(record)) => records.push(*record),
                    Ok(Listed::Expired) => {}
                    Ok(Listed::Stale) => stale.push(member),
                    Err(error) => unreadable = unreadable.or(Some(error)),
                },
                Some((_, None)) | None => stale.push(member),
            }
        }
        self.index_prune(key, &stale).await?;
        match unreadable {
            Some(error) => Err(error),
            None => Ok(records),
        }
    }

    /// Prunes `user`'s index when a write just grew it to a power of two
    /// (from [`PRUNE_FROM_MEMBERS`] on): the cost is spread over the writes
    /// that doubled it. A failure is only logged: the write itself is done.
    async fn prune_if_grown(&self, user: &[u8], index_size: i64) {
        if index_size < PRUNE_FROM_MEMBERS || index_size.count_ones() != 1 {
            return;
        }
        let Ok(user) = std::str::from_utf8(user) else {
            return;
        };
        if let Err(error) = self.scan_user(user).await {
            tracing::warn!(%error, "pruning a user's session index failed");
        }
    }

    async fn delete_of_user(&self, user: &str, keep: Option<&Id>) -> Result<u64> {
        let key = self.user_index_key(user);
        let members = self.index_members(&key).await?;
        let candidates: Vec<_> = members
            .into_iter()
            .filter(|(member, _)| keep.is_none_or(|keep| parse_member(member) != Some(*keep)))
            .collect();
        let replies = join_all(candidates.iter().map(|(member, _)| async move {
            let Some(id) = parse_member(member) else {
                return Ok(0);
            };
            let reply = DELETE_OF_USER_SCRIPT
                .run(&self.client, vec![self.key(&id)], vec![Value::from(user)])
                .await?;
            integer(&reply).ok_or_else(|| unexpected("a deletion code"))
        }))
        .await;
        let mut deleted = 0;
        let mut stale = Vec::new();
        let mut unreadable = false;
        for (member, reply) in candidates.into_iter().zip(replies) {
            match reply? {
                -1 => unreadable = true,
                code => {
                    deleted += u64::from(code == 1);
                    stale.push(member);
                }
            }
        }
        self.index_prune(key, &stale).await?;
        if unreadable {
            return Err(Error::decode(CorruptValue::Header));
        }
        Ok(deleted)
    }
}

/// What a lookup found for one member of `user`'s index.
enum Listed {
    /// An active record of the user.
    Active(Box<Record>),
    /// A record of the user past its expiry date, still held by Redis.
    Expired,
    /// Not the user's: another user's, without user, or of the previous
    /// release.
    Stale,
}

/// What the value `bytes` of the session `id` is to `user`'s index.
fn of_user(id: Id, bytes: &[u8], user: &str, now: OffsetDateTime) -> Result<Listed> {
    match value::parse(bytes)? {
        Stored::Current(header) if header.user == Some(user.as_bytes()) => {
            if header.is_active_at(now) {
                value::decode(id, bytes).map(|record| Listed::Active(Box::new(record)))
            } else {
                Ok(Listed::Expired)
            }
        }
        Stored::Current(_) | Stored::Legacy => Ok(Listed::Stale),
    }
}

fn parse_member(member: &[u8]) -> Option<Id> {
    std::str::from_utf8(member).ok()?.parse().ok()
}

fn big_endian<const N: usize>(bytes: [u8; N]) -> Value {
    Value::Bytes(Bytes::copy_from_slice(&bytes))
}

/// `pxat` as the 8 big-endian bytes the scripts compare with a header's
/// index horizon; it is always positive.
fn pxat_bytes(pxat: i64) -> [u8; 8] {
    u64::try_from(pxat).unwrap_or_default().to_be_bytes()
}

/// Whether Redis `major.minor` knows `SET .. PXAT`.
fn supports_pxat(major: u64, minor: u64) -> bool {
    (major, minor) >= MIN_REDIS_VERSION
}

fn now_millis() -> i64 {
    let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos();
    i64::try_from(nanos.div_euclid(1_000_000)).unwrap_or(i64::MAX)
}

/// The record's expiry as Unix milliseconds for `PXAT`, rounded up: Redis
/// keeps a key at most one millisecond past its expiry date (and `load`
/// filters that millisecond out), never drops it early. Dates at or before
/// the epoch become 1 ms, as `PXAT` must be positive: Redis removes a key
/// whose `PXAT` has passed at once.
fn expiry_millis(expiry: OffsetDateTime) -> i64 {
    let nanos = expiry.unix_timestamp_nanos();
    let millis = nanos.div_euclid(1_000_000) + i128::from(nanos.rem_euclid(1_000_000) != 0);
    i64::try_from(millis.max(1)).unwrap_or(i64::MAX)
}

#[async_trait]
impl<C: RedisClient> SessionStore for RedisStore<C> {
    async fn create(&self, record: &mut Record) -> Result<()> {
        self.write_record(Mode::Create, record)
            .instrument(store_span("redis", "create"))
            .await
            .map(drop)
    }

    async fn save(&self, record: &Record) -> Result<()> {
        async {
            if record.user_id.is_none() {
                // One `SET`, straight from the caller's record: no index to
                // keep, so nothing the write loop would change in a copy.
                self.check_server_version()?;
                let bytes = value::encode(record, record.version, 0)?;
                let pxat = expiry_millis(record.expiry_date);
                self.set_plain(Mode::Save, &record.id, bytes, pxat).await?;
                return Ok(());
            }
            // `save` never changes the caller's record; the copy takes the
            // write's bookkeeping.
            let mut copy = record.clone();
            self.write_record(Mode::Save, &mut copy).await.map(drop)
        }
        .instrument(store_span("redis", "save"))
        .await
    }

    async fn load(&self, session_id: &Id) -> Result<Option<Record>> {
        async {
            let Some(bytes) = self.get(session_id).await? else {
                return Ok(None);
            };
            let record = value::decode(*session_id, &bytes)?;
            // Redis may keep a key up to a millisecond past the expiry date.
            Ok(record
                .is_active_at(OffsetDateTime::now_utc())
                .then_some(record))
        }
        .instrument(store_span("redis", "load"))
        .await
    }

    async fn delete(&self, session_id: &Id) -> Result<()> {
        async {
            let _removed: i64 = Box::pin(self.client.del(self.key(session_id)))
                .await
                .map_err(backend)?;
            Ok(())
        }
        .instrument(store_span("redis", "delete"))
        .await
    }

    async fn update(&self, record: &mut Record) -> Result<Update> {
        self.write_record(Mode::Update, record)
            .instrument(store_span("redis", "update"))
            .await
    }

    async fn touch(&self, session_id: &Id, expiry_date: OffsetDateTime) -> Result<bool> {
        self.touch_record(session_id, expiry_date)
            .instrument(store_span("redis", "touch"))
            .await
    }

    /// All the touches at once: fred pipelines the scripts on its
    /// connections (on a cluster, each to its slot's node), so a batch costs
    /// about one round trip rather than one per session.
    async fn touch_many(&self, touches: &[(Id, OffsetDateTime)]) -> Result<Vec<bool>> {
        async {
            join_all(
                touches
                    .iter()
                    .map(|(id, expiry_date)| self.touch_record(id, *expiry_date)),
            )
            .await
            .into_iter()
            .collect()
        }
        .instrument(store_span("redis", "touch_many"))
        .await
    }

    async fn sessions_of_user(&self, user_id: &str) -> Result<Vec<Record>> {
        self.scan_user(user_id)
            .instrument(store_span("redis", "sessions_of_user"))
            .await
    }

    async fn delete_sessions_of_user(&self, user_id: &str, keep: Option<&Id>) -> Result<u64> {
        self.delete_of_user(user_id, keep)
            .instrument(store_span("redis", "delete_sessions_of_user"))
            .await
    }
}

#[async_trait]
impl<C: RedisClient> ExpiredDeletion for RedisStore<C> {
    /// Redis expires sessions by their TTL: there is never anything to sweep.
    /// User indexes are pruned when read and expire with their last session.
    async fn delete_expired(&self) -> Result<u64> {
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use session_core::time::{macros::datetime, Duration};

    use super::*;

    #[test]
    fn expiry_rounds_up_to_the_millisecond() {
        let whole = datetime!(2030-01-01 00:00:00.123 UTC);
        let ms = whole.unix_timestamp_nanos() / 1_000_000;
        assert_eq!(i128::from(expiry_millis(whole)), ms);
        let micro_after = whole + Duration::microseconds(1);
        assert_eq!(i128::from(expiry_millis(micro_after)), ms + 1);
        let micro_before = whole - Duration::microseconds(1);
        assert_eq!(i128::from(expiry_millis(micro_before)), ms);
    }

    #[test]
    fn expiry_at_or_before_the_epoch_is_positive() {
        assert_eq!(expiry_millis(OffsetDateTime::UNIX_EPOCH), 1);
        assert_eq!(expiry_millis(datetime!(1900-01-01 0:00 UTC)), 1);
        assert_eq!(
            expiry_millis(OffsetDateTime::UNIX_EPOCH - Duration::microseconds(1)),
            1
        );
    }

    #[test]
    fn pxat_needs_redis_6_2() {
        assert!(!supports_pxat(5, 0));
        assert!(!supports_pxat(6, 0));
        assert!(supports_pxat(6, 2));
        assert!(supports_pxat(7, 0));
        assert!(supports_pxat(8, 0));
    }

    #[test]
    fn keys_have_prefix_and_separator() {
        let client = fred::prelude::Client::default();
        let id: Id = "AAECAwQFBgcICQoLDA0ODw".parse().expect("valid id");
        let store = RedisStore::new(client.clone());
        assert_eq!(store.key(&id), "session:AAECAwQFBgcICQoLDA0ODw");
        assert_eq!(
            store.user_index_key("alice"),
            "session:user:616c696365:sessions"
        );
        let store = store.with_key_prefix("app:sess");
        assert_eq!(store.key(&id), "app:sess:AAECAwQFBgcICQoLDA0ODw");
        let store = RedisStore::new(client).with_key_prefix("");
        assert_eq!(store.key(&id), "AAECAwQFBgcICQoLDA0ODw");
        assert_eq!(store.user_index_key(""), "user::sessions");
    }

    #[test]
    fn lookalike_users_get_distinct_index_keys() {
        let store = RedisStore::new(fred::prelude::Client::default());
        let users = [
            "alice",
            "Alice",
            "alice ",
            "alice*",
            "alic?",
            "alice:1",
            "",
            "*",
            "%",
            "{a}",
            "ålice",
            "alice:sessions",
        ];
        let keys: std::collections::HashSet<_> = users
            .iter()
            .map(|user| store.user_index_key(user))
            .collect();
        assert_eq!(keys.len(), users.len());
        for key in &keys {
            assert!(!key.contains('{') && !key.contains('}'), "{key}");
        }
    }

    #[test]
    fn horizons_cover_the_session_twice_over() {
        let pxat = now_millis() + 60_000;
        let horizon = Horizon::for_expiry(pxat);
        let header = i64::try_from(horizon.header_ms).expect("fits");
        assert!((pxat + 59_000..=pxat + 60_000).contains(&header));
        assert_eq!(horizon.index_until_ms, header + INDEX_SLACK_MS);
        // Past expiry dates need nothing beyond the expiry itself.
        assert_eq!(Horizon::for_expiry(1).header_ms, 1);
        assert_eq!(Horizon::for_expiry(i64::MAX).index_until_ms, i64::MAX);
    }
}
