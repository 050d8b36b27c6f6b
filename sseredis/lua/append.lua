-- append.lua logs an event of the run that token owns, renews the claim (or
-- lets it go with the final event) and publishes the event. It returns the
-- event's number, or -1 if the run no longer holds the claim or the client
-- is gone.
--
-- KEYS: hash, log, run. ARGV: token, name, data, final (0 or 1), lease in
-- ms, channel.
if redis.call('GET', KEYS[3]) ~= ARGV[1] then
	return -1
end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
	redis.call('DEL', KEYS[2], KEYS[3])
	return -1
end
local seq = num(redis.call('HINCRBY', KEYS[1], 'next', 1) - 1)
redis.call('XADD', KEYS[2], '0-' .. seq, 'n', ARGV[2], 'd', ARGV[3])
redis.call('PEXPIRE', KEYS[2], ttl)
if ARGV[4] == '1' then
	redis.call('HSET', KEYS[1], 'finished', '1')
	redis.call('DEL', KEYS[3])
else
	redis.call('PEXPIRE', KEYS[3], ARGV[5])
end
redis.call('PUBLISH', ARGV[6], msg_event(seq, ARGV[4], ARGV[2], ARGV[3]))
return tonumber(seq)
