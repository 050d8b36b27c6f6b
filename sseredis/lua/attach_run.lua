-- attach_run.lua is attach.lua for a stream that shows a run: it resumes
-- the client's run after lastEventID if there is one, going or finished,
-- or else claims a new run for token and attaches the stream at its first
-- event. The client is made if it is new. It returns {gen, cursor,
-- finished, events, gap, started}: as attach.lua, and started 1 if the
-- caller now owns a new run, 2 if it resumed a run whose owner went away
-- (it logged events, is not finished, and its claim is gone: the caller
-- takes it over); {0} if lastEventID names the final event of a finished
-- run; {-1} if a run is going and there is no lastEventID.
--
-- KEYS: hash, log, run. ARGV: lastEventID, hold time in ms, channel,
-- token, lease in ms.
local last = tonumber(ARGV[1])
local isNew = redis.call('EXISTS', KEYS[1]) == 0
if isNew then
	redis.call('HSET', KEYS[1], 'next', num(last + 1), 'first', num(last + 1),
		'finished', '0', 'finalSent', '0', 'gen', '0')
end
local c = redis.call('HMGET', KEYS[1], 'next', 'first', 'finished')
local nxt, first, finished = tonumber(c[1]), tonumber(c[2]), c[3] == '1'
local going = redis.call('EXISTS', KEYS[3]) == 1
local orphan = not going and not finished and first < nxt
local resume = last > 0 and (going or finished or orphan)
if resume and finished and last >= nxt - 1 then
	return {0}
end
if not resume and going then
	return {-1}
end
local gap = gap_none
if last > 0 then
	gap, nxt, first = resume_gap(KEYS[1], KEYS[2], last, nxt, first, isNew)
end
local cursor, started = nxt, 0
if resume then
	cursor = math.max(last + 1, first)
	if orphan then
		started = 2
	end
else
	redis.call('SET', KEYS[3], ARGV[4], 'PX', ARGV[5])
	redis.call('HSET', KEYS[1], 'first', num(nxt), 'finished', '0', 'finalSent', '0')
	redis.call('XTRIM', KEYS[2], 'MINID', '0-' .. num(nxt))
	finished, started = false, 1
end
local gen = redis.call('HINCRBY', KEYS[1], 'gen', 1)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('PUBLISH', ARGV[3], msg_attached(gen))
local events = {}
if cursor < nxt then
	events = redis.call('XRANGE', KEYS[2], '0-' .. num(cursor), '+')
end
return {gen, cursor, finished and 1 or 0, events, gap, started}
