"""The Lua scripts of the dispatch layer. Each runs atomically inside Redis.

Every script starts with :data:`PRELUDE` (key prefixes from :mod:`service.dispatch.keys` and two
helpers). Keys an item's fields point to (its queue, team, history) are derived inside the script;
that is fine on one Redis server or a Sentinel pair, and RQ itself does not support Redis Cluster.
Times are epoch milliseconds passed in by the caller, so one clock orders a run.

:func:`scripts_for` registers them once per connection.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import redis
from redis.commands.core import Script

from service.dispatch import keys
from service.dispatch.replicas import ConfirmedScript

__all__ = [
    "ARCHIVE_SCRIPT",
    "CANCEL_SCRIPT",
    "ENQUEUE_SCRIPT",
    "EXTEND_SCRIPT",
    "FINISH_POP_SCRIPT",
    "FINISH_SCRIPT",
    "LOCK_RENEW_SCRIPT",
    "LOCK_REPLACE_SCRIPT",
    "MOVE_SCRIPT",
    "POP_SCRIPT",
    "REAP_SCRIPT",
    "REBUILD_DONE_SCRIPT",
    "REBUILD_SWAP_SCRIPT",
    "REQUEUE_SCRIPT",
    "RETARGET_SCRIPT",
    "Scripts",
    "scripts_for",
]

PRELUDE = """
local JOB, QUEUE, DUE, STARTED = '@JOB@', '@QUEUE@', '@DUE@', '@STARTED@'
local WAKE, HISTORY, FAILED, FINISHED = '@WAKE@', '@HISTORY@', '@FAILED@', '@FINISHED@'
local INFLIGHT, QUEUES = '@INFLIGHT@', '@QUEUES@'
local REBUILD_LOCK, REBUILD_LOG = '@REBUILD_LOCK@', '@REBUILD_LOG@'
local REBUILD_IN, REBUILD_PENDING = '@REBUILD_IN@', '@REBUILD_PENDING@'
local function event(id, now, name, state, detail, holder)
  local e = '{"at":' .. now .. ',"event":' .. cjson.encode(name)
  e = e .. ',"state":' .. cjson.encode(state)
  if detail and detail ~= '' then e = e .. ',"detail":' .. cjson.encode(detail) end
  if holder and holder ~= '' then e = e .. ',"holder":' .. cjson.encode(holder) end
  redis.call('RPUSH', HISTORY .. id, e .. '}')
end
-- A new item's first history entry names its decision as the item's current one (a trailing
-- '\\n=', see CURRENT_DECISION in items.py): before usm_decision of job hash `job` changes,
-- the entry gets a copy of the decision it stood for.
local function keep_first_decision(job, id)
  local first = redis.call('LINDEX', HISTORY .. id, 0)
  if first and string.sub(first, -2) == '\\n=' then
    redis.call('LSET', HISTORY .. id, 0,
      string.sub(first, 1, -2) .. redis.call('HGET', job, 'usm_decision'))
  end
end
local function wake(team)
  -- One token per add. A busy worker never drains the list (the pop deletes it once empty), so
  -- past 128 tokens it is cut back to 64: one trim per 64 adds, not one per add.
  if redis.call('RPUSH', WAKE .. team, '1') > 128 then
    redis.call('LTRIM', WAKE .. team, -64, -1)
  end
end
-- While queue q's order is being rebuilt (see REBUILD_SWAP_SCRIPT), note every id added to it:
-- 'F' at the front, 'B' at the back, so the rebuilt list gets them too.
local function track(q, kind, id)
  if redis.call('EXISTS', REBUILD_LOCK .. q) == 1 then
    redis.call('RPUSH', REBUILD_LOG .. q, kind .. id)
  end
end
"""

ENQUEUE_SCRIPT = """
-- Create an item and queue it, unless (source, external id) already names a live item.
-- With ARGV[18] the id of an ended item (its ticket was re-opened), that item is replaced: the
-- new one takes over (source, external id), unless the old one is no longer ended or another
-- item already took over (two re-opening events at once give one new item).
-- The job hash gets RQ's fields (status, origin, description, data, timestamps, TTLs) and the
-- item's; its queue, due zset, history and the team's wake list are named by those fields.
-- KEYS: 1 idempotency key, 2 job hash
-- ARGV: 1 result TTL (s), 2 failure TTL (s) (RQ's fields), 3 item id, 4 queue name,
--       5 team, 6 priority, 7 source, 8 external id, 9 call, 10 decision (packed),
--       11 payload (JSON), 12 enqueued at (ms), 13 the same in RQ's format,
--       14 response target (epoch s), 15 history event, 16 RQ's job data (the pickled call of
--       the job function), 17 call type (for RQ's description), 18 id of the ended item
--       replaced ('' for none)
-- Returns: {1, id} when created, {0, existing id} when the item already exists.
local id, q, team = ARGV[3], ARGV[4], ARGV[5]
if not redis.call('SET', KEYS[1], id, 'NX') then
  -- Known key: a live item answers, unless it is the ended item this one replaces; one that
  -- expired (its key outlived it) is replaced.
  local existing = redis.call('GET', KEYS[1])
  if redis.call('EXISTS', JOB .. existing) == 1 then
    local state = redis.call('HGET', JOB .. existing, 'usm_state')
    if existing ~= ARGV[18] or (state ~= 'completed' and state ~= 'cancelled') then
      return {0, existing}
    end
  end
  redis.call('SET', KEYS[1], id)
end
redis.call('HSET', KEYS[2], 'created_at', ARGV[13], 'data', ARGV[16],
  'description', ARGV[17] .. ' ' .. ARGV[6] .. ' for ' .. team .. ': ' .. ARGV[7] .. '/' .. ARGV[8],
  'enqueued_at', ARGV[13], 'failure_ttl', ARGV[2], 'origin', q, 'result_ttl', ARGV[1],
  'status', 'queued', 'timeout', '-1', 'usm_state', 'queued', 'usm_team', team,
  'usm_priority', ARGV[6], 'usm_queue', q, 'usm_source', ARGV[7], 'usm_external_id', ARGV[8],
  'usm_call', ARGV[9], 'usm_decision', ARGV[10], 'usm_payload', ARGV[11],
  'usm_queued_ms', ARGV[12], 'usm_response_by', ARGV[14], 'usm_deliveries', '0',
  'usm_idem', KEYS[1])
redis.call('RPUSH', QUEUE .. q, id)
track(q, 'B', id)
redis.call('ZADD', DUE .. q, ARGV[14], id)
redis.call('SADD', QUEUES, QUEUE .. q)
redis.call('RPUSH', HISTORY .. id, ARGV[15])
wake(team)
return {1, id}
"""

POP_FUNCTION = """
-- Take the head of the highest non-empty level and lease it, in one step: there is no moment
-- when the item is in neither a queue nor the in-flight set, so a crash cannot lose it.
-- A claim sent with an Idempotency-Key names a record (K[4]): the hand-out writes it in the
-- same step (item, holder, requester; it lives as long as the lease), and a re-send of that
-- claim (the first copy timed out, then ran when Redis resumed) gets the lease the record names
-- while its holder still has it, instead of a second item.
-- K (keys): 1 in-flight zset, 2 RQ suspension flag, 3 RQ worker hash (any key for claims),
--       4 claim record (any key without one), 5..4+n queue lists in hand-out order, then the
--       wake lists to clear when all are empty
-- A (arguments): 1 now (ms), 2 lease deadline (ms), 3 holder name, 4 new state
--       (started|claimed), 5 n, 6 honour suspension ('1'|'0'), 7 start time in RQ's format,
--       8 '1' when K[3] is a worker's hash to mark busy ('2': also mark it idle when nothing
--       is found), 9 requester of a recorded claim ('' without a record), 10 '1' to return the
--       item's revision and history too (a worker folds the item when it completes it, see
--       FINISH_FUNCTION), '2' the same framed into one string, '0' neither
-- Returns: 'suspended', 'reused' (the record names another requester), false when empty, or
--          {id, team, priority, queued_ms, deliveries, call, decision, payload, source,
--          external_id, queue, lease deadline (ms), '1' for a re-sent claim | '0'
--          [, revision, history]}; with A[10] '2' those values (a missing one as '') and the
--          history entries as one string, each as <length in bytes>:<value>
local function pop_item(K, A)
  if A[9] ~= '' then
    local r = redis.call('HMGET', K[4], 'item', 'holder', 'requester')
    if r[1] then
      if r[3] ~= A[9] then return 'reused' end
      local h = redis.call('HMGET', JOB .. r[1], 'usm_state', 'usm_holder', 'usm_lease_ms',
        'usm_team', 'usm_priority', 'usm_queued_ms', 'usm_deliveries', 'usm_call',
        'usm_decision', 'usm_payload', 'usm_source', 'usm_external_id', 'usm_queue')
      if h[1] == A[4] and h[2] == r[2] then
        return {r[1], h[4], h[5], h[6], h[7], h[8], h[9], h[10], h[11], h[12], h[13], h[3], '1'}
      end
      -- That lease ended (given back, completed, taken back): this is a claim of its own.
    end
  end
  if A[6] == '1' and redis.call('EXISTS', K[2]) == 1 then return 'suspended' end
  local first, last = 5, 4 + tonumber(A[5])
  -- Redis 7 pops the head of the first non-empty list of several in one command (LMPOP, in key
  -- order, so strict priority holds); older ones try each level in turn.
  local LMPOP = redis.REDIS_VERSION_NUM ~= nil and redis.REDIS_VERSION_NUM >= 0x070000
  local function next_head(from)
    if from > last then return nil end
    if LMPOP then
      local args = {last - from + 1}
      for i = from, last do args[#args + 1] = K[i] end
      args[#args + 1] = 'LEFT'
      local got = redis.call('LMPOP', unpack(args))
      if not got then return nil end
      for i = from, last do
        if K[i] == got[1] then return got[2][1], i end
      end
      return nil
    end
    for i = from, last do
      local id = redis.call('LPOP', K[i])
      if id then return id, i end
    end
    return nil
  end
  local id, i = next_head(first)
  while id do
    local job = JOB .. id
    local h = redis.call('HMGET', job, 'usm_state', 'usm_queue', 'usm_team', 'status',
      'usm_priority', 'usm_queued_ms', 'usm_deliveries', 'usm_call', 'usm_decision', 'usm_payload',
      'usm_source', 'usm_external_id', 'usm_rev')
    -- 'dead' with RQ's status 'queued': re-queued by `rq requeue`. Anything else is a stale
    -- entry (handed out, finished, cancelled, or moved to another queue by a re-score whose
    -- rebuild has not dropped it yet): skip it.
    local waiting = h[1] == 'queued' or (h[1] == 'dead' and h[4] == 'queued')
    if waiting and QUEUE .. h[2] == K[i] then
      redis.call('ZREM', DUE .. h[2], id)
      if h[1] == 'dead' then redis.call('ZREM', FAILED .. h[2], id) end
      redis.call('ZADD', K[1], A[2], id)
      if A[4] == 'started' then
        redis.call('ZADD', STARTED .. h[3], A[1], id)
      end
      if A[8] ~= '0' then redis.call('HSET', K[3], 'state', 'busy', 'current_job', id) end
      local deliveries = tonumber(h[7] or '0') + 1
      redis.call('HSET', job, 'usm_state', A[4], 'status', 'started', 'started_at', A[7],
        'worker_name', A[3], 'usm_holder', A[3], 'usm_lease_ms', A[2],
        'usm_started_ms', A[1], 'usm_deliveries', deliveries)
      event(id, A[1], A[4], A[4], '', A[3])
      if A[9] ~= '' then
        redis.call('HSET', K[4], 'item', id, 'holder', A[3], 'requester', A[9])
        redis.call('PEXPIREAT', K[4], A[2])
      end
      local out = {id, h[3], h[5], h[6], deliveries, h[8], h[9], h[10], h[11], h[12], h[2],
        A[2], '0'}
      if A[10] == '0' then return out end
      out[14] = h[13] or '0'
      local history = redis.call('LRANGE', HISTORY .. id, 0, -1)
      if A[10] == '1' then
        out[15] = history
        return out
      end
      -- One string instead of a reply of ~20 parts: each value as <length>:<bytes>, the
      -- history entries last (a client parses this in a fraction of what a nested reply costs).
      for i = 1, 14 do
        local v = tostring(out[i] or '')
        out[i] = #v .. ':' .. v
      end
      for n = 1, #history do out[14 + n] = #history[n] .. ':' .. history[n] end
      return table.concat(out)
    end
    id, i = next_head(i)
  end
  -- Nothing to hand out: drop the wake tokens, each stood for an item this call would have seen.
  for k = last + 1, #K do redis.call('DEL', K[k]) end
  if A[8] == '2' then redis.call('HSET', K[3], 'state', 'idle', 'current_job', '') end
  return false
end
"""

POP_SCRIPT = (
    POP_FUNCTION
    + """
return pop_item(KEYS, ARGV)
"""
)

EXTEND_SCRIPT = """
-- Heartbeat: push the lease deadline of an item out, if the caller still holds it.
-- KEYS: 1 job hash, 2 in-flight zset
-- ARGV: 1 item id, 2 holder, 3 new deadline (ms), 4 now in RQ's format
-- Returns: 1 when extended, 0 when the lease was lost (item re-delivered, cancelled, done).
local h = redis.call('HMGET', KEYS[1], 'usm_state', 'usm_holder')
if (h[1] == 'started' or h[1] == 'claimed') and h[2] == ARGV[2] then
  redis.call('ZADD', KEYS[2], 'XX', ARGV[3], ARGV[1])
  redis.call('HSET', KEYS[1], 'usm_lease_ms', ARGV[3], 'last_heartbeat', ARGV[4])
  return 1
end
return 0
"""

FINISH_FUNCTION = """
-- End a lease: complete the item, dead-letter it, or put it back at the front of its level.
-- K (keys): 1 job hash, 2 in-flight zset, 3 RQ worker hash (any key when not a worker)
-- A (arguments): 1 item id, 2 holder (only the current holder may end its lease), 3 outcome
--       (completed|dead|queued),
--       4 now (ms), 5 now in RQ's format, 6 TTL (s) of a completed or dead item,
--       7 detail (error or reason), 8 '1' when called by a worker, 9 the item folded as it
--       ends (usm_record, packed; '' when not given), 10 the history length that record was
--       built from (the history as the pop returned it)
-- Returns: 2 completed and folded, 1 done (not folded), 0 when the caller does not hold the
--          item (lease lost or expired and handed out again, cancelled, finished): a holder
--          that was presumed gone is fenced off.
local function finish_item(K, A)
  local h = redis.call('HMGET', K[1], 'usm_state', 'usm_holder', 'usm_queue', 'usm_team',
    'usm_idem', 'usm_response_by')
  if h[1] ~= 'started' and h[1] ~= 'claimed' then return 0 end
  if h[2] ~= A[2] then return 0 end
  local id, q, team, out = A[1], h[3], h[4], A[3]
  local history = HISTORY .. id
  redis.call('ZREM', K[2], id)
  redis.call('ZREM', STARTED .. team, id)
  local expire_at = tonumber(A[4]) / 1000 + tonumber(A[6])
  local folded = false
  if out == 'completed' then
    -- The caller's record holds the history it read plus this 'completed' event; it is exact
    -- only if nothing was added since (a re-score while in hand adds an event): else the event
    -- is appended and the caller folds the item afterwards (service/dispatch/archive.py).
    folded = A[9] ~= '' and redis.call('LLEN', history) == tonumber(A[10])
    if folded then
      redis.call('HSET', K[1], 'usm_state', 'completed', 'status', 'finished', 'ended_at',
        A[5], 'usm_record', A[9])
      redis.call('HDEL', K[1], @FOLDED_FIELDS@)
      redis.call('DEL', history)
    else
      redis.call('HSET', K[1], 'usm_state', 'completed', 'status', 'finished', 'ended_at',
        A[5])
      event(id, A[4], 'completed', 'completed', A[7], h[2])
    end
    redis.call('ZADD', FINISHED .. q, expire_at, id)
  elseif out == 'dead' then
    redis.call('HSET', K[1], 'usm_state', 'dead', 'status', 'failed', 'ended_at', A[5],
      'usm_error', A[7])
    redis.call('ZADD', FAILED .. q, expire_at, id)
    event(id, A[4], 'dead_lettered', 'dead', A[7], h[2])
  else
    redis.call('HSET', K[1], 'usm_state', 'queued', 'status', 'queued', 'usm_queued_ms', A[4])
    redis.call('LPUSH', QUEUE .. q, id)
    track(q, 'F', id)
    redis.call('ZADD', DUE .. q, h[6], id)
    wake(team)
    event(id, A[4], 'released', 'queued', A[7], h[2])
  end
  if out ~= 'queued' then
    redis.call('EXPIRE', K[1], A[6])
    if not folded then redis.call('EXPIRE', history, A[6]) end
    if h[5] then redis.call('EXPIRE', h[5], A[6]) end
  end
  if A[8] == '1' then
    -- The worker stays 'busy' until a hand-out finds nothing (POP_SCRIPT marks it idle then),
    -- so a worker going from item to item costs no state write in between.
    if out == 'completed' then redis.call('HINCRBY', K[3], 'successful_job_count', 1) end
    if out == 'dead' then redis.call('HINCRBY', K[3], 'failed_job_count', 1) end
  end
  if folded then return 2 end
  return 1
end
"""

FINISH_SCRIPT = (
    FINISH_FUNCTION
    + """
return finish_item(KEYS, ARGV)
"""
)

FINISH_POP_SCRIPT = (
    FINISH_FUNCTION
    + POP_FUNCTION
    + """
-- A worker's step from one item to the next in one call: end the lease of the item in hand
-- (FINISH_SCRIPT), then lease the next item (POP_SCRIPT). Each part is what its own script does.
-- KEYS: 1 job hash of the item in hand, 2 in-flight zset, 3 RQ suspension flag, 4 RQ worker
--       hash, 5.. the queue lists and wake lists as POP_SCRIPT's KEYS[5..] (no claim record)
-- ARGV: 1..10 FINISH_SCRIPT's arguments, 11..20 POP_SCRIPT's arguments
-- Returns: {what FINISH_SCRIPT returns, what POP_SCRIPT returns}
local done = finish_item({KEYS[1], KEYS[2], KEYS[4]}, {unpack(ARGV, 1, 10)})
local k = {KEYS[2], KEYS[3], KEYS[4], KEYS[2]}
for i = 5, #KEYS do k[#k + 1] = KEYS[i] end
return {done, pop_item(k, {unpack(ARGV, 11, 20)})}
"""
)

REAP_SCRIPT = """
-- Re-deliver items whose lease expired (worker killed, claim forgotten) to the FRONT of their
-- level; an item handed out too often goes to the dead letters instead (a poison item).
-- KEYS: 1 in-flight zset
-- ARGV: 1 now (ms), 2 at most this many items, 3 max deliveries, 4 dead-letter TTL (s)
-- Returns: {{id, team, priority, 'requeued'|'dead'}, ...}
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  local job = JOB .. id
  local h = redis.call('HMGET', job, 'usm_state', 'usm_holder', 'usm_queue', 'usm_team',
    'usm_priority', 'usm_deliveries', 'usm_response_by')
  if h[1] == 'started' or h[1] == 'claimed' then
    local q, team = h[3], h[4]
    redis.call('ZREM', STARTED .. team, id)
    if tonumber(h[6] or '0') >= tonumber(ARGV[3]) then
      local why = 'lease expired ' .. h[6] .. ' times; last holder ' .. (h[2] or '?')
      redis.call('HSET', job, 'usm_state', 'dead', 'status', 'failed', 'usm_error', why)
      redis.call('ZADD', FAILED .. q, tonumber(ARGV[1]) / 1000 + tonumber(ARGV[4]), id)
      event(id, ARGV[1], 'dead_lettered', 'dead', why, h[2])
      table.insert(out, {id, team, h[5], 'dead'})
    else
      redis.call('HSET', job, 'usm_state', 'queued', 'status', 'queued', 'usm_queued_ms', ARGV[1])
      redis.call('LPUSH', QUEUE .. q, id)
      track(q, 'F', id)
      redis.call('ZADD', DUE .. q, h[7], id)
      wake(team)
      event(id, ARGV[1], 'redelivered', 'queued', 'lease expired', h[2])
      table.insert(out, {id, team, h[5], 'requeued'})
    end
  end
end
return out
"""

CANCEL_SCRIPT = """
-- Cancel an item wherever it is: out of its queue, its lease, or the dead letters. With outcome
-- 'completed' the item ends as completed instead (its ticket was resolved in the source tool).
-- KEYS: 1 job hash
-- ARGV: 1 item id, 2 now (ms), 3 now in RQ's format, 4 TTL (s) of the ended item, 5 detail,
--       6 outcome: 'cancelled' (when absent) or 'completed'
-- Returns: {1, previous state}, {0, state} when already completed or cancelled, {-1} if absent.
local h = redis.call('HMGET', KEYS[1], 'usm_state', 'usm_queue', 'usm_team', 'usm_idem')
local id, state, q = ARGV[1], h[1], h[2]
if not state then return {-1} end
if state == 'completed' or state == 'cancelled' then return {0, state} end
if state == 'queued' then
  redis.call('LREM', QUEUE .. q, 1, id)
  redis.call('ZREM', DUE .. q, id)
elseif state == 'dead' then
  redis.call('ZREM', FAILED .. q, id)
else
  redis.call('ZREM', INFLIGHT, id)
  redis.call('ZREM', STARTED .. h[3], id)
end
if ARGV[6] == 'completed' then
  redis.call('HSET', KEYS[1], 'usm_state', 'completed', 'status', 'finished', 'ended_at', ARGV[3])
  redis.call('ZADD', FINISHED .. q, tonumber(ARGV[2]) / 1000 + tonumber(ARGV[4]), id)
  event(id, ARGV[2], 'completed', 'completed', ARGV[5], '')
else
  redis.call('HSET', KEYS[1], 'usm_state', 'cancelled', 'status', 'canceled', 'ended_at', ARGV[3])
  event(id, ARGV[2], 'cancelled', 'cancelled', ARGV[5], '')
end
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('EXPIRE', HISTORY .. id, ARGV[4])
if h[4] then redis.call('EXPIRE', h[4], ARGV[4]) end
return {1, state}
"""

MOVE_SCRIPT = """
-- Store a new decision; a queued item whose team or priority changed moves to its new queue,
-- placed by original enqueue time (ids sort by time), so it keeps its seniority there.
-- Compare-and-set: the caller read the call at revision ARGV[9] and scored it; if the call or
-- decision changed since (a concurrent PATCH), nothing is written and the caller re-reads.
-- KEYS: 1 job hash, 2 RQ's queue set
-- ARGV: 1 item id, 2 new queue name, 3 team, 4 priority, 5 decision (JSON),
--       6 response target (epoch s), 7 history event (JSON, state written as '@STATE@'),
--       8 call (JSON, '' keeps it), 9 expected revision ('' skips the check)
-- Returns: {1, old queue, new revision} moved, {0, old queue, new revision} stored in place,
--          {-1} absent,
--          {-2, state} when the item is completed or cancelled, {-3, revision} when stale.
local id, new = ARGV[1], ARGV[2]
local h = redis.call('HMGET', KEYS[1], 'usm_state', 'usm_queue', 'usm_rev')
local state, old, rev = h[1], h[2], tonumber(h[3] or '0')
if not state then return {-1} end
if state == 'completed' or state == 'cancelled' then return {-2, state} end
if ARGV[9] ~= '' and tonumber(ARGV[9]) ~= rev then return {-3, rev} end
keep_first_decision(KEYS[1], id)
redis.call('HSET', KEYS[1], 'usm_decision', ARGV[5], 'usm_response_by', ARGV[6],
  'usm_rev', rev + 1)
if ARGV[8] ~= '' then redis.call('HSET', KEYS[1], 'usm_call', ARGV[8]) end
-- The event was written before the state was known: fill it in (first match is the state).
redis.call('RPUSH', HISTORY .. id, (string.gsub(ARGV[7], '@STATE@', state, 1)))
if old == new then
  if state == 'queued' then redis.call('ZADD', DUE .. old, ARGV[6], id) end
  return {0, old, rev + 1}
end
if state ~= 'queued' and state ~= 'dead' then
  -- In hand: it stays with its holder; a release or an expired lease returns it to its new
  -- queue. A worker's start entry follows it to the new team.
  local team = redis.call('HGET', KEYS[1], 'usm_team')
  local since = redis.call('ZSCORE', STARTED .. team, id)
  if since then
    redis.call('ZREM', STARTED .. team, id)
    redis.call('ZADD', STARTED .. ARGV[3], since, id)
  end
  redis.call('HSET', KEYS[1], 'usm_queue', new, 'origin', new, 'usm_team', ARGV[3],
    'usm_priority', ARGV[4])
  return {0, old, rev + 1}
end
if state == 'queued' then
  redis.call('LREM', QUEUE .. old, 1, id)
  redis.call('ZREM', DUE .. old, id)
  local qk, start, pivot = QUEUE .. new, 0, nil
  while not pivot do
    local chunk = redis.call('LRANGE', qk, start, start + 199)
    if #chunk == 0 then break end
    for _, other in ipairs(chunk) do
      if other > id then pivot = other; break end
    end
    start = start + 200
  end
  if pivot then redis.call('LINSERT', qk, 'BEFORE', pivot, id) else redis.call('RPUSH', qk, id) end
  track(new, 'B', id)
  redis.call('ZADD', DUE .. new, ARGV[6], id)
  redis.call('SADD', KEYS[2], qk)
  wake(ARGV[3])
else
  local score = redis.call('ZSCORE', FAILED .. old, id)
  redis.call('ZREM', FAILED .. old, id)
  if score then redis.call('ZADD', FAILED .. new, score, id) end
end
redis.call('HSET', KEYS[1], 'usm_queue', new, 'origin', new, 'usm_team', ARGV[3],
  'usm_priority', ARGV[4])
return {1, old, rev + 1}
"""

RETARGET_SCRIPT = """
-- A batch of a mass re-score (a table set came into force): store each item's new decision.
-- Each costs O(1), so a batch is bounded by its size whatever the queue lengths. A waiting item
-- whose queue changed is appended to its new queue at once (never in no queue) and noted for
-- the rebuild of that queue, which puts it at its seniority place; the entry left in the old
-- queue is skipped by the hand-out (the item's queue no longer matches) and dropped by that
-- queue's rebuild. An item in hand keeps its lease and holder; a release or an expired lease
-- returns it to its new queue. Compare-and-set per item as in MOVE_SCRIPT.
-- KEYS: 1 RQ's queue set
-- ARGV: 8 per item: id, expected revision, new queue name, team, priority, decision (JSON),
--       response target (epoch s), history event (JSON, state written as '@STATE@')
-- Returns: one code per item: 1 moved to another queue, 2 decision stored (same queue, or in
--          hand), 0 left alone (gone, finished, cancelled, dead), -3 stale (changed since read).
local out = {}
for i = 1, #ARGV, 8 do
  local id, new, team = ARGV[i], ARGV[i + 2], ARGV[i + 3]
  local job = JOB .. id
  local h = redis.call('HMGET', job, 'usm_state', 'usm_queue', 'usm_rev', 'usm_team')
  local state, old, rev = h[1], h[2], tonumber(h[3] or '0')
  local code = 0
  if state == 'queued' or state == 'started' or state == 'claimed' then
    if rev ~= tonumber(ARGV[i + 1]) then
      code = -3
    else
      code = 2
      keep_first_decision(job, id)
      redis.call('HSET', job, 'usm_decision', ARGV[i + 5], 'usm_response_by', ARGV[i + 6],
        'usm_rev', rev + 1)
      redis.call('RPUSH', HISTORY .. id, (string.gsub(ARGV[i + 7], '@STATE@', state, 1)))
      if old ~= new then
        if state == 'queued' then
          redis.call('ZREM', DUE .. old, id)
          redis.call('RPUSH', QUEUE .. new, id)
          track(new, 'B', id)
          redis.call('SADD', REBUILD_IN .. new, id)
          redis.call('SADD', REBUILD_PENDING, old, new)
          redis.call('SADD', KEYS[1], QUEUE .. new)
          wake(team)
          code = 1
        else
          local since = redis.call('ZSCORE', STARTED .. h[4], id)
          if since then
            redis.call('ZREM', STARTED .. h[4], id)
            redis.call('ZADD', STARTED .. team, since, id)
          end
        end
        redis.call('HSET', job, 'usm_queue', new, 'origin', new, 'usm_team', team,
          'usm_priority', ARGV[i + 4])
      end
      if state == 'queued' then redis.call('ZADD', DUE .. new, ARGV[i + 6], id) end
    end
  end
  table.insert(out, code)
end
return out
"""

REBUILD_SWAP_SCRIPT = """
-- Last step of rebuilding a queue's order: put the rebuilt list in its place, atomically.
-- Ids added to the queue since the rebuilder last read the log are added first (front or back,
-- as they were added); entries that went stale meanwhile are skipped by the hand-out. Costs
-- O(late adds) plus freeing the old list.
-- KEYS: 1 queue list, 2 rebuilt list, 3 rebuild lock, 4 rebuild log
-- ARGV: 1 rebuild token, 2 log entries already in the rebuilt list
-- Returns: number of late adds, or -1 when the lock is not ours (nothing changed).
if redis.call('GET', KEYS[3]) ~= ARGV[1] then return -1 end
local late = redis.call('LRANGE', KEYS[4], tonumber(ARGV[2]), -1)
for _, e in ipairs(late) do
  if string.sub(e, 1, 1) == 'F' then
    redis.call('LPUSH', KEYS[2], string.sub(e, 2))
  else
    redis.call('RPUSH', KEYS[2], string.sub(e, 2))
  end
end
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('RENAME', KEYS[2], KEYS[1])
  redis.call('PERSIST', KEYS[1])
else
  redis.call('DEL', KEYS[1])
end
redis.call('DEL', KEYS[3], KEYS[4])
return #late
"""

REBUILD_DONE_SCRIPT = """
-- After a rebuild placed its moved-in items (and took them out of the moved-in set): the queue
-- no longer needs a rebuild unless more items were moved in meanwhile.
-- KEYS: 1 the queue's moved-in set, 2 set of queues pending a rebuild
-- ARGV: 1 queue name
-- Returns: 1 when the queue left the pending set, 0 when it stays.
if redis.call('SCARD', KEYS[1]) > 0 then return 0 end
redis.call('SREM', KEYS[2], ARGV[1])
return 1
"""

REQUEUE_SCRIPT = """
-- Put a dead-lettered item back at the end of its queue.
-- KEYS: 1 job hash
-- ARGV: 1 item id, 2 now (ms), 3 detail
-- Returns: {1, 'dead'} done, {0, state} when the item is not dead, {-1} when absent.
local h = redis.call('HMGET', KEYS[1], 'usm_state', 'usm_queue', 'usm_team', 'usm_response_by')
local id, state, q = ARGV[1], h[1], h[2]
if not state then return {-1} end
if state ~= 'dead' then return {0, state} end
redis.call('ZREM', FAILED .. q, id)
redis.call('RPUSH', QUEUE .. q, id)
track(q, 'B', id)
redis.call('ZADD', DUE .. q, h[4], id)
redis.call('HSET', KEYS[1], 'usm_state', 'queued', 'status', 'queued', 'usm_queued_ms', ARGV[2],
  'usm_error', '', 'usm_deliveries', 0)
redis.call('PERSIST', KEYS[1])
redis.call('PERSIST', HISTORY .. id)
wake(h[3])
event(id, ARGV[2], 'requeued', 'queued', ARGV[3], '')
return {1, state}
"""


LOCK_RENEW_SCRIPT = """
-- Fencing for a long job under a lock (a mass re-score): renew the lock if it is still ours.
-- KEYS: 1 lock
-- ARGV: 1 our value, 2 new life (ms)
-- Returns: 1 renewed, 0 the lock expired or is someone else's (stop now).
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""

LOCK_REPLACE_SCRIPT = """
-- End a job under a lock: replace the lock's value (a done marker) or delete it, only if ours.
-- KEYS: 1 lock
-- ARGV: 1 our value, 2 new value ('' deletes the key), 3 life of the new value (s)
-- Returns: 1 done, 0 the lock is not ours (nothing changed).
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
end
return 1
"""


ARCHIVE_SCRIPT = """
-- Fold a completed or cancelled item into one packed record (its call, decision, history and
-- the usm fields no script reads once an item has ended), and drop the fields only a lease
-- holder or a waiting item needs. usm_state and usm_queue stay: scripts check them.
-- An ended item never changes again, so this only saves memory; it runs only if the item is
-- as the caller read it.
-- KEYS: 1 job hash
-- ARGV: 1 item id, 2 state read, 3 history length read, 4 record (packed)
-- Returns: 1 when folded, 0 when the item changed or is folded already.
local h = redis.call('HMGET', KEYS[1], 'usm_state', 'usm_record')
if h[1] ~= ARGV[2] or h[2] then return 0 end
local history = HISTORY .. ARGV[1]
if redis.call('LLEN', history) ~= tonumber(ARGV[3]) then return 0 end
redis.call('HSET', KEYS[1], 'usm_record', ARGV[4])
redis.call('HDEL', KEYS[1], @FOLDED_FIELDS@)
redis.call('DEL', history)
return 1
"""


FOLDED_FIELDS = (
    "usm_call",
    "usm_decision",
    "usm_holder",
    "usm_lease_ms",
    "usm_started_ms",
    "usm_team",
    "usm_priority",
    "usm_source",
    "usm_external_id",
    "usm_deliveries",
    "usm_response_by",
    "usm_queued_ms",
    "usm_rev",
    "usm_idem",
)
"""Fields an ended item no longer needs once folded into ``usm_record`` (what the record holds,
and the lease and queue fields only a waiting or held item uses; ``usm_idem`` names the
idempotency key only so the end of the item can give that key its TTL, done by then)."""


def _compile(body: str) -> str:
    body = body.replace("@FOLDED_FIELDS@", ", ".join(f"'{f}'" for f in FOLDED_FIELDS))
    prelude = (
        PRELUDE.replace("@JOB@", keys.JOB_PREFIX)
        .replace("@QUEUE@", keys.QUEUE_PREFIX)
        .replace("@DUE@", keys.DUE_PREFIX)
        .replace("@STARTED@", keys.STARTED_PREFIX)
        .replace("@WAKE@", keys.WAKE_PREFIX)
        .replace("@HISTORY@", keys.HISTORY_PREFIX)
        .replace("@FAILED@", keys.FAILED_PREFIX)
        .replace("@FINISHED@", keys.FINISHED_PREFIX)
        .replace("@INFLIGHT@", keys.INFLIGHT)
        .replace("@QUEUES@", keys.QUEUES_SET)
        .replace("@REBUILD_LOCK@", keys.REBUILD_LOCK_PREFIX)
        .replace("@REBUILD_LOG@", keys.REBUILD_LOG_PREFIX)
        .replace("@REBUILD_IN@", keys.REBUILD_IN_PREFIX)
        .replace("@REBUILD_PENDING@", keys.REBUILD_PENDING)
    )
    return prelude + body


@dataclass(frozen=True)
class Scripts:
    """The scripts registered on one connection (EVALSHA, loaded on first use)."""

    enqueue: Script
    pop: Script
    extend: Script
    finish: Script
    finish_pop: Script
    reap: Script
    cancel: Script
    move: Script
    requeue: Script
    retarget: Script
    rebuild_swap: Script
    rebuild_done: Script
    lock_renew: Script
    lock_replace: Script
    archive: Script


_REGISTERED: weakref.WeakKeyDictionary[redis.Redis, Scripts] = weakref.WeakKeyDictionary()


def scripts_for(conn: redis.Redis) -> Scripts:
    """The scripts for ``conn``, registered on first use and cached for the connection's life."""
    found = _REGISTERED.get(conn)
    if found is None:
        found = Scripts(
            enqueue=ConfirmedScript(conn, _compile(ENQUEUE_SCRIPT)),
            pop=ConfirmedScript(conn, _compile(POP_SCRIPT)),
            extend=ConfirmedScript(conn, _compile(EXTEND_SCRIPT)),
            finish=ConfirmedScript(conn, _compile(FINISH_SCRIPT)),
            finish_pop=ConfirmedScript(conn, _compile(FINISH_POP_SCRIPT)),
            reap=ConfirmedScript(conn, _compile(REAP_SCRIPT)),
            cancel=ConfirmedScript(conn, _compile(CANCEL_SCRIPT)),
            move=ConfirmedScript(conn, _compile(MOVE_SCRIPT)),
            requeue=ConfirmedScript(conn, _compile(REQUEUE_SCRIPT)),
            retarget=ConfirmedScript(conn, _compile(RETARGET_SCRIPT)),
            rebuild_swap=ConfirmedScript(conn, _compile(REBUILD_SWAP_SCRIPT)),
            rebuild_done=ConfirmedScript(conn, _compile(REBUILD_DONE_SCRIPT)),
            lock_renew=ConfirmedScript(conn, LOCK_RENEW_SCRIPT),
            lock_replace=ConfirmedScript(conn, LOCK_REPLACE_SCRIPT),
            archive=ConfirmedScript(conn, _compile(ARCHIVE_SCRIPT)),
        )
        _REGISTERED[conn] = found
    return found
