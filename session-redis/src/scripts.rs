//! The Lua scripts that make each session write one atomic step in Redis,
//! and the replies they give.
//!
//! Every script touches the keys of one hash slot only: the session scripts
//! the session's key, the index scripts the user's index key. That is what
//! lets the same scripts run on Redis Cluster, and also why no script changes
//! a session and its user's index together (see the crate docs for how the
//! index stays exact anyway).
//!
//! Scripts run with `EVALSHA`; a server that does not have one cached yet
//! (`NOSCRIPT`: a restart, a failover, `SCRIPT FLUSH`, a new cluster node)
//! gets it with `EVAL`, which caches it for the next call.

use std::sync::LazyLock;

use fred::{
    bytes_utils::Str,
    prelude::{LuaInterface, Value},
    types::scripts::Script,
};
use session_core::{Error, Result};

use crate::{
    error::{backend, RedisStoreError},
    value,
};

/// Reply codes shared by the scripts and the store.
pub(crate) mod code {
    pub(crate) const FALSE: i64 = 0;
    pub(crate) const TRUE: i64 = 1;
    pub(crate) const WRITTEN: i64 = 1;
    pub(crate) const TAKEN: i64 = 2;
    pub(crate) const GONE: i64 = 3;
    pub(crate) const CONFLICT: i64 = 4;
    pub(crate) const LEGACY: i64 = 5;
    pub(crate) const CORRUPT: i64 = 6;
    pub(crate) const NEED_INDEX: i64 = 7;
}

/// The reserved member of each user's index whose score is the last score
/// handed out. It keeps scores increasing even after every session member
/// was pruned, and is never a session id (those are 22 characters).
pub(crate) const SCORE_MEMBER: &str = "#";

/// Helpers every session script starts with. Offsets are those of
/// `value.rs`, 1-based as Lua counts.
const PRELUDE: &str = r"
local FIXED = 31
local WRITTEN, TAKEN, GONE, CONFLICT, LEGACY, CORRUPT, NEED_INDEX = 1, 2, 3, 4, 5, 6, 7

local function u32(s, i)
  local a, b, c, d = string.byte(s, i, i + 3)
  return ((a * 256 + b) * 256 + c) * 256 + d
end

-- Compares two big-endian byte strings of one length: -1, 0 or 1. Not `<`,
-- which compares with the server's locale.
local function cmp(a, b)
  for i = 1, #a do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then
      if x < y then return -1 end
      return 1
    end
  end
  return 0
end

local function be32(n)
  return string.char(math.floor(n / 16777216) % 256, math.floor(n / 65536) % 256,
    math.floor(n / 256) % 256, n % 256)
end

-- Now as the header stores expiry dates (microseconds, sign bit flipped,
-- big-endian), and as Unix milliseconds. Both fit a double exactly.
local function now()
  local t = redis.call('TIME')
  local s, us = tonumber(t[1]), tonumber(t[2])
  local micros = s * 1000000 + us
  local stamp = be32(2147483648 + math.floor(micros / 4294967296)) .. be32(micros % 4294967296)
  return stamp, s * 1000 + math.floor(us / 1000)
end

-- The header of the value at `key`: nil when there is no key, 'legacy' for a
-- value without header (the previous release's), 'corrupt' for one that
-- starts like a header but is not one, else a table.
local function header(key)
  local h = redis.call('GETRANGE', key, 0, FIXED - 1)
  if h == '' then
    if redis.call('EXISTS', key) == 0 then return nil end
    return 'corrupt'
  end
  if string.byte(h, 1) ~= 193 then return 'legacy' end
  -- A version past 2^63 - 1 is as unreadable as a truncated header.
  if #h < FIXED or string.byte(h, 2) ~= 1 or string.byte(h, 3) >= 128 then return 'corrupt' end
  local flag, len = string.byte(h, 27), u32(h, 28)
  local user = false
  if flag == 1 then
    user = ''
    if len > 0 then
      user = redis.call('GETRANGE', key, FIXED, FIXED + len - 1)
      if #user ~= len then return 'corrupt' end
    end
  elseif flag ~= 0 or len ~= 0 then
    return 'corrupt'
  end
  return { version = string.sub(h, 3, 10), expiry = string.sub(h, 11, 18),
    horizon = string.sub(h, 19, 26), user = user }
end
";

/// `create`, `save` and `update` of one session.
///
/// KEYS: the session key. ARGV: mode (`create`, `save` or `update`), the
/// new value, its PXAT (decimal), its PXAT (8 bytes big-endian), the version
/// an update expects (8 bytes), and `1` when the writer has already added the
/// session to the new user's index up to the horizon in the value, else `0`.
///
/// Replies `{WRITTEN, 1 if the session just came to its user else 0}`,
/// `{TAKEN}` (create), `{GONE}`, `{CONFLICT, stored value}`, `{LEGACY}`,
/// `{CORRUPT}` (update), or `{NEED_INDEX}` when the value names a user whose
/// index is not known to hold this session until its expiry: nothing is
/// written then, and the writer extends the index and tries again.
const WRITE: &str = r"
local key = KEYS[1]
local mode, value, pxat, pxat_be, expected, pre = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local stamp, now_ms = now()
local cur = header(key)
if mode == 'create' then
  if cur ~= nil then return { TAKEN } end
elseif mode == 'update' then
  if cur == nil then return { GONE } end
  if cur == 'legacy' then return { LEGACY } end
  if cur == 'corrupt' then return { CORRUPT } end
  if cmp(cur.expiry, stamp) <= 0 then return { GONE } end
  if cur.version ~= expected then return { CONFLICT, redis.call('GET', key) } end
end
local user = false
if string.byte(value, 27) == 1 then user = string.sub(value, FIXED + 1, FIXED + u32(value, 28)) end
-- Only an active session of the same user is known to be in its index.
local same = type(cur) == 'table' and cur.user == user and cmp(cur.expiry, stamp) > 0
local indexed = user ~= false and tonumber(pxat) > now_ms
if indexed and pre ~= '1' and not (same and cmp(cur.horizon, pxat_be) >= 0) then
  return { NEED_INDEX }
end
redis.call('SET', key, value, 'PXAT', pxat)
if same and user ~= false and cmp(cur.horizon, string.sub(value, 19, 26)) > 0 then
  redis.call('SETRANGE', key, 18, cur.horizon)
end
if indexed and not same then return { WRITTEN, 1 } end
return { WRITTEN, 0 }
";

/// `touch` of one session.
///
/// KEYS: the session key. ARGV: the new expiry (8 bytes as in the header),
/// its PXAT (decimal), its PXAT (8 bytes), `1` when the writer has extended
/// the index of the user in ARGV[5] to the horizon in ARGV[6] (8 bytes), else
/// `0`.
///
/// Replies `{FALSE}` (no active session), `{TRUE}`, `{LEGACY}`, `{CORRUPT}`,
/// or `{NEED_INDEX, user}` (nothing written) when the session's user index is
/// not known to live until the new expiry.
const TOUCH: &str = r"
local key = KEYS[1]
local expiry, pxat, pxat_be, pre, pre_user, pre_horizon = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local stamp = now()
local cur = header(key)
if cur == nil then return { 0 } end
if cur == 'legacy' then return { LEGACY } end
if cur == 'corrupt' then return { CORRUPT } end
if cmp(cur.expiry, stamp) <= 0 then return { 0 } end
if cmp(expiry, cur.expiry) <= 0 then return { 1 } end
local extended = pre == '1' and cur.user == pre_user
if cur.user ~= false and cmp(cur.horizon, pxat_be) < 0 and not extended then
  return { NEED_INDEX, cur.user }
end
redis.call('SETRANGE', key, 10, expiry)
redis.call('PEXPIREAT', key, pxat)
if extended and cmp(pre_horizon, cur.horizon) > 0 then
  redis.call('SETRANGE', key, 18, pre_horizon)
end
return { 1 }
";

/// One session of `delete_sessions_of_user`.
///
/// KEYS: the session key. ARGV: the user id. Deletes the session only if
/// its stored user is exactly that user. Replies 1 (deleted, was active), 2
/// (deleted, had expired), 0 (not that user's, or no session) or -1 (the
/// value starts like a header but is not one: left alone).
const DELETE_OF_USER: &str = r"
local stamp = now()
local cur = header(KEYS[1])
if cur == nil or cur == 'legacy' then return 0 end
if cur == 'corrupt' then return -1 end
if cur.user ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
if cmp(cur.expiry, stamp) > 0 then return 1 end
return 2
";

/// Adds a session to a user's index.
///
/// KEYS: the user's index key. ARGV: the session id, and the Unix
/// milliseconds the index must live at least until. The member's score is
/// larger than every score handed out before in this index (and at least the
/// server's clock in microseconds, so it keeps growing when the index expired
/// and came back). Extends the key's expiry, never shortens it (by hand
/// rather than `PEXPIREAT .. GT`, which needs Redis 7). Replies the number
/// of members.
const INDEX_ADD: &str = r"
local key, member, until_ms = KEYS[1], ARGV[1], ARGV[2]
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local score = now_us
local last = redis.call('ZSCORE', key, '#')
if last then score = math.max(score, tonumber(last) + 1) end
score = string.format('%.0f', score)
redis.call('ZADD', key, score, '#', score, member)
local ttl = redis.call('PTTL', key)
if ttl < 0 or math.floor(now_us / 1000) + ttl < tonumber(until_ms) then
  redis.call('PEXPIREAT', key, until_ms)
end
return redis.call('ZCARD', key)
";

/// Removes members a lookup found stale from a user's index.
///
/// KEYS: the user's index key. ARGV: pairs of member and the score the
/// lookup read. A member is removed only if its score is still at most the
/// one read: a writer that added it again since (with a larger score) keeps
/// it. Replies how many were removed.
const INDEX_PRUNE: &str = r"
local removed = 0
for i = 1, #ARGV, 2 do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if score and tonumber(score) <= tonumber(ARGV[i + 1]) then
    removed = removed + redis.call('ZREM', KEYS[1], ARGV[i])
  end
end
return removed
";

/// Rewrites a value of the previous release in this release's format.
///
/// KEYS: the session key. ARGV: the old value exactly as read, the new
/// value. Writes only if the key still holds the old value, keeping its
/// expiry. Replies 1 when rewritten, 0 when the value had changed.
const UPGRADE: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
return 1
";

/// A script's source and its SHA-1, the name `EVALSHA` knows it by.
pub(crate) struct Lua {
    source: Str,
    sha1: Str,
}

impl Lua {
    fn new(body: &str, with_prelude: bool) -> Self {
        let source = if with_prelude {
            format!("{PRELUDE}{body}")
        } else {
            body.to_owned()
        };
        let sha1 = Script::from_lua(source.clone()).sha1().clone();
        Self {
            source: Str::from(source),
            sha1,
        }
    }

    /// Runs the script: `EVALSHA`, then `EVAL` if the server does not have
    /// it cached. The keys all hash to one slot, so fred sends it to the node
    /// that owns them.
    pub(crate) async fn run<C: LuaInterface + Send + Sync>(
        &self,
        client: &C,
        keys: Vec<String>,
        args: Vec<Value>,
    ) -> Result<Value> {
        // Each fred future is boxed on its own: see `RedisStore::set_value`.
        let reply = Box::pin(client.evalsha::<Value, _, _, _>(
            self.sha1.clone(),
            keys.clone(),
            args.clone(),
        ))
        .await;
        match reply {
            Err(error) if is_noscript(&error) => {
                Box::pin(client.eval::<Value, _, _, _>(self.source.clone(), keys, args))
                    .await
                    .map_err(backend)
            }
            reply => reply.map_err(backend),
        }
    }
}

/// Whether Redis answered `NOSCRIPT`: the error code, the first word of an
/// error reply, not its message.
fn is_noscript(error: &fred::error::Error) -> bool {
    error.details().split_whitespace().next() == Some("NOSCRIPT")
}

pub(crate) static WRITE_SCRIPT: LazyLock<Lua> = LazyLock::new(|| Lua::new(WRITE, true));
pub(crate) static TOUCH_SCRIPT: LazyLock<Lua> = LazyLock::new(|| Lua::new(TOUCH, true));
pub(crate) static DELETE_OF_USER_SCRIPT: LazyLock<Lua> =
    LazyLock::new(|| Lua::new(DELETE_OF_USER, true));
pub(crate) static INDEX_ADD_SCRIPT: LazyLock<Lua> = LazyLock::new(|| Lua::new(INDEX_ADD, false));
pub(crate) static INDEX_PRUNE_SCRIPT: LazyLock<Lua> =
    LazyLock::new(|| Lua::new(INDEX_PRUNE, false));
pub(crate) static UPGRADE_SCRIPT: LazyLock<Lua> = LazyLock::new(|| Lua::new(UPGRADE, false));

/// A script reply as `{code, extra...}`.
pub(crate) struct Reply {
    pub(crate) code: i64,
    rest: std::vec::IntoIter<Value>,
}

impl Reply {
    /// Splits `value`, an array whose first element is an integer code.
    pub(crate) fn parse(value: Value) -> Result<Self> {
        let Value::Array(items) = value else {
            return Err(unexpected("an array"));
        };
        let mut rest = items.into_iter();
        let code = rest
            .next()
            .and_then(|code| integer(&code))
            .ok_or_else(|| unexpected("an integer code"))?;
        Ok(Self { code, rest })
    }

    /// The next element as bytes.
    pub(crate) fn bytes(&mut self) -> Result<fred::bytes::Bytes> {
        match self.rest.next() {
            Some(Value::Bytes(bytes)) => Ok(bytes),
            Some(Value::String(text)) => Ok(text.into_inner()),
            _ => Err(unexpected("a string")),
        }
    }

    /// The next element as an integer.
    pub(crate) fn integer(&mut self) -> Result<i64> {
        self.rest
            .next()
            .as_ref()
            .and_then(integer)
            .ok_or_else(|| unexpected("an integer"))
    }
}

/// An integer reply. Not `Value::as_i64`, which turns a nil into 0 under
/// fred's `default-nil-types` feature.
pub(crate) fn integer(value: &Value) -> Option<i64> {
    match value {
        Value::Integer(n) => Some(*n),
        _ => None,
    }
}

/// A reply the store's own scripts never give: a bug or something else
/// answering on the connection.
pub(crate) fn unexpected(expected: &'static str) -> Error {
    RedisStoreError::UnexpectedReply { expected }.into()
}

/// The header offsets the Lua prelude hard-codes, checked against
/// `value.rs` so the two cannot drift apart.
const _: () = {
    assert!(value::FIXED_LEN == 31);
    assert!(value::EXPIRY_AT == 10);
    assert!(value::HORIZON_AT == 18);
    assert!(value::MAGIC == 193);
    assert!(value::FORMAT == 1);
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_have_distinct_names() {
        let names: std::collections::HashSet<_> = [
            &WRITE_SCRIPT,
            &TOUCH_SCRIPT,
            &DELETE_OF_USER_SCRIPT,
            &INDEX_ADD_SCRIPT,
            &INDEX_PRUNE_SCRIPT,
            &UPGRADE_SCRIPT,
        ]
        .iter()
        .map(|script| script.sha1.to_string())
        .collect();
        assert_eq!(names.len(), 6);
        assert!(names.iter().all(|sha| sha.len() == 40));
    }

    #[test]
    fn noscript_is_told_by_its_code() {
        let error = fred::error::Error::new(
            fred::error::ErrorKind::Unknown,
            "NOSCRIPT No matching script. Please use EVAL.",
        );
        assert!(is_noscript(&error));
        let other = fred::error::Error::new(
            fred::error::ErrorKind::Unknown,
            "ERR something mentions NOSCRIPT",
        );
        assert!(!is_noscript(&other));
    }
}
