-- append.lua logs an event of the run that token owns, lets go of the
-- claim with the final event, and publishes the event. It returns the
-- event's number, or -1 if the run no longer holds the claim or the client
-- is gone.
--
-- The claim is renewed by the owner's keep rounds, not here: an event
-- costs Redis a call fewer. So is the log's expiry, set with the client's
-- on each attach and detach; fresh (the run's first event on its owner)
-- sets it here too, for a log that did not exist when the client attached.
--
-- KEYS: hash, log, run. ARGV: token, name, data, final (0 or 1), fresh (0
-- or 1), channel.
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
if ARGV[5] == '1' then
	redis.call('PEXPIRE', KEYS[2], ttl)
end
if ARGV[4] == '1' then
	redis.call('HSET', KEYS[1], 'finished', '1')
	redis.call('DEL', KEYS[3])
end
redis.call('PUBLISH', ARGV[6], msg_event(seq, ARGV[4], ARGV[2], ARGV[3]))
return tonumber(seq)
