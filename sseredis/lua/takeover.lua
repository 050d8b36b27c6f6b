-- takeover.lua deals with a run whose owner went away: its claim is gone
-- (let go by a handover, or expired after a crash) and its run not
-- finished. With mode 'claim' it claims the run for token, so that this
-- instance continues it, and returns {1, name, data}: the last event the
-- run logged, or {1} if it logged none. With mode 'lose' (no instance can
-- continue the run) it logs a final gap event whose data is ARGV[4], as
-- the run's last, so that its streams hear of it and a new run may start.
-- It returns {0} if a run holds the claim (its owner is alive, or another
-- instance was first), and {-1} if there is nothing left to do: the client
-- is gone, or its run is finished.
--
-- KEYS: hash, log, run. ARGV: token, lease in ms, mode, lost data,
-- channel.
if redis.call('EXISTS', KEYS[3]) == 1 then
	return {0}
end
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('HGET', KEYS[1], 'finished') == '1' then
	return {-1}
end
if ARGV[3] == 'lose' then
	local seq = num(redis.call('HINCRBY', KEYS[1], 'next', 1) - 1)
	redis.call('XADD', KEYS[2], '0-' .. seq, 'n', 'gap', 'd', ARGV[4])
	redis.call('PEXPIRE', KEYS[2], redis.call('PTTL', KEYS[1]))
	redis.call('HSET', KEYS[1], 'finished', '1')
	redis.call('PUBLISH', ARGV[5], msg_event(seq, '1', 'gap', ARGV[4]))
	return {-1}
end
redis.call('SET', KEYS[3], ARGV[1], 'PX', ARGV[2])
local c = redis.call('HMGET', KEYS[1], 'next', 'first')
if tonumber(c[1]) > tonumber(c[2]) then
	local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
	if #last == 1 then
		local fields, name, data = last[1][2], '', ''
		for i = 1, #fields, 2 do
			if fields[i] == 'n' then name = fields[i + 1] end
			if fields[i] == 'd' then data = fields[i + 1] end
		end
		return {1, name, data}
	end
end
return {1}
