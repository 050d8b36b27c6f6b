-- remove.lua forgets a client and tells the instances holding its stream or
-- owning its run. It returns 1, or 0 for an unknown client.
--
-- KEYS: hash, log, run. ARGV: channel, owner channel.
local known = redis.call('EXISTS', KEYS[1])
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
if known == 1 then
	redis.call('PUBLISH', ARGV[1], msg_removed)
	redis.call('PUBLISH', ARGV[2], msg_removed)
end
return known
