-- start.lua claims a client's run for token, for lease ms, and drops the
-- previous run's events. It returns 1, or 0 for an unknown client, or -1 if
-- another run holds the claim.
--
-- KEYS: hash, log, run. ARGV: token, lease in ms.
if redis.call('EXISTS', KEYS[1]) == 0 then
	return 0
end
if not redis.call('SET', KEYS[3], ARGV[1], 'NX', 'PX', ARGV[2]) then
	return -1
end
local nxt = redis.call('HGET', KEYS[1], 'next')
redis.call('HSET', KEYS[1], 'first', nxt, 'finished', '0', 'finalSent', '0')
redis.call('XTRIM', KEYS[2], 'MINID', '0-' .. nxt)
return 1
