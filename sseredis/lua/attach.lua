-- attach.lua registers a stream for a client, creating the client if it is
-- new, keeps its keys for the hold time, and returns {gen, cursor, finished,
-- events, gap}: the attach's number, the number of the first event to send,
-- whether the run has finished, the logged events from cursor on, and why
-- the stream cannot continue from lastEventID (see resume_gap). It returns
-- {0} if the client has seen the final event of a finished run.
--
-- KEYS: hash, log. ARGV: lastEventID, hold time in ms, channel.
local last = tonumber(ARGV[1])
local isNew = redis.call('EXISTS', KEYS[1]) == 0
if isNew then
	-- Numbering goes on from the client's last id, as after a restart.
	redis.call('HSET', KEYS[1], 'next', num(last + 1), 'first', num(last + 1),
		'finished', '0', 'finalSent', '0', 'gen', '0')
end
local c = redis.call('HMGET', KEYS[1], 'next', 'first', 'finished', 'finalSent')
local nxt, first = tonumber(c[1]), tonumber(c[2])
local finished, finalSent = c[3] == '1', c[4] == '1'
if finished and last > 0 and last >= nxt - 1 then
	return {0}
end
local gap = gap_none
if last > 0 then
	gap, nxt, first = resume_gap(KEYS[1], KEYS[2], last, nxt, first, isNew)
end
local cursor = first
if last > 0 then
	cursor = last + 1
elseif finished and finalSent then
	cursor = nxt
end
if cursor < first then
	cursor = first
end
local gen = redis.call('HINCRBY', KEYS[1], 'gen', 1)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('PUBLISH', ARGV[3], msg_attached(gen))
local events = {}
if cursor < nxt then
	events = redis.call('XRANGE', KEYS[2], '0-' .. num(cursor), '+')
end
return {gen, cursor, finished and 1 or 0, events, gap}
