-- drop.lua tells the instances holding a client's stream to end it. It
-- returns how many instances heard, or -1 for an unknown client.
--
-- KEYS: hash. ARGV: channel.
if redis.call('EXISTS', KEYS[1]) == 0 then
	return -1
end
return redis.call('PUBLISH', ARGV[1], msg_dropped)
